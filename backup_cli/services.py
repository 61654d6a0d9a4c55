"""The local services a backup needs: Azurite for storage and a Functions host for the app.

Each starter returns a ready Child or raises ServiceError; the caller owns stopping it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from site_backup.roots import default_roots

from .client import host_ready
from .processes import Child, ServiceError, port_open, spawn, wait_until_ready
from .project import AZURITE_BIN, HUB_FILE

LOOPBACK = "127.0.0.1"
ALLOWED_ROOTS_SETTING = "BACKUP_ALLOWED_ROOTS"
AZURITE_TIMEOUT = 30.0
DEVHOST_TIMEOUT = 60.0
# func start may first download the extension bundle.
FUNC_TIMEOUT = 180.0


@dataclass(frozen=True)
class AzuritePorts:
    """Azurite's blob, queue and table ports; the defaults are what UseDevelopmentStorage=true means."""

    blob: int = 10000
    queue: int = 10001
    table: int = 10002

    def all(self) -> tuple[int, int, int]:
        """All three ports, for readiness checks."""
        return (self.blob, self.queue, self.table)


def azurite_listening(ports: AzuritePorts = AzuritePorts()) -> bool:
    """Whether storage already answers, so an Azurite the user runs is reused, not duplicated."""
    return port_open(LOOPBACK, ports.blob)


def start_azurite(
    location: Path, log_path: Path | None, ports: AzuritePorts = AzuritePorts(), in_memory: bool = False
) -> Child:
    """Start the project's Azurite and wait until all three ports listen.

    Data goes in ``location``, or stays in memory with ``in_memory`` (``location`` is then only
    the working directory: Azurite refuses both options together).
    """
    if not AZURITE_BIN.exists():
        raise ServiceError(f"Azurite is not installed at {AZURITE_BIN}; run `npm ci` (or `make setup`) first.")
    location.mkdir(parents=True, exist_ok=True)
    storage = ["--inMemoryPersistence"] if in_memory else ["--location", str(location)]
    argv = [
        str(AZURITE_BIN),
        "--silent",
        "--skipApiVersionCheck",
        "--disableTelemetry",
        *storage,
        "--blobHost",
        LOOPBACK,
        "--blobPort",
        str(ports.blob),
        "--queueHost",
        LOOPBACK,
        "--queuePort",
        str(ports.queue),
        "--tableHost",
        LOOPBACK,
        "--tablePort",
        str(ports.table),
    ]
    child = spawn("Azurite", argv, cwd=location, log_path=log_path)
    _ready_or_stopped(child, lambda: all(port_open(LOOPBACK, port) for port in ports.all()), AZURITE_TIMEOUT)
    return child


def start_devhost(
    app_dir: Path, port: int, log_path: Path | None, hub: Path = HUB_FILE, allow: Sequence[Path] = ()
) -> Child:
    """Start the pure-Python host for the app on port and wait until its status endpoint says ready.

    ``allow`` adds directories to the app's allowed roots for this host only: a host started for one
    backup (or restore) on the loopback interface may use the directories the user named, and everything
    the app would allow anyway stays allowed.
    """
    hub.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "devhost",
        "--port",
        str(port),
        "--app-dir",
        str(app_dir),
        "--hub",
        str(hub),
    ]
    env = dict(os.environ)
    if allow:
        env[ALLOWED_ROOTS_SETTING] = os.pathsep.join([*default_allowed_roots(app_dir, os.environ), *map(str, allow)])
    child = spawn("devhost", argv, cwd=app_dir, log_path=log_path, env=env)
    _ready_or_stopped(child, lambda: host_ready(f"http://{LOOPBACK}:{port}"), DEVHOST_TIMEOUT)
    return child


STORAGE_SETTINGS = ("BACKUP_STORAGE", "AzureWebJobsStorage")


def storage_ports(app_dir: Path, env: Mapping[str, str]) -> AzuritePorts | None:
    """Where the app's storage setting expects Azurite, or None when it names storage elsewhere.

    The development storage (``UseDevelopmentStorage=true``) is on the default ports; a connection string with a
    loopback ``BlobEndpoint`` names its own (the queue and table ports from their endpoints, or the next two).
    The environment wins over local.settings.json, as in the host.
    """
    text = ""
    for name in STORAGE_SETTINGS:
        text = env.get(name) or _local_setting(app_dir / "local.settings.json", name)
        text = text or _local_setting(app_dir / "local.settings.json.example", name)
        if text.strip():
            break
    parts = dict(item.split("=", 1) for item in text.split(";") if "=" in item)
    if parts.get("UseDevelopmentStorage", "").lower() == "true":
        return AzuritePorts()
    blob = urlsplit(parts.get("BlobEndpoint", ""))
    if blob.hostname not in ("127.0.0.1", "localhost") or blob.port is None:
        return None
    queue, table = (urlsplit(parts.get(k, "")).port for k in ("QueueEndpoint", "TableEndpoint"))
    return AzuritePorts(blob.port, queue or blob.port + 1, table or blob.port + 2)


def default_allowed_roots(app_dir: Path, env: Mapping[str, str]) -> list[str]:
    """The roots the app would allow without the CLI, so adding a directory never takes one away.

    Mirrors the host: the environment wins over local.settings.json (devhost only fills settings
    that are not set), and a blank setting means the app's defaults.
    """
    if ALLOWED_ROOTS_SETTING in env:
        configured = env[ALLOWED_ROOTS_SETTING]
    else:
        configured = _local_setting(app_dir / "local.settings.json", ALLOWED_ROOTS_SETTING)
    roots = [root.strip() for root in configured.split(os.pathsep) if root.strip()]
    return roots or [str(root) for root in default_roots()]


def _local_setting(path: Path, name: str) -> str:
    """One of the file's Values, or '' when the file, the value or valid JSON is missing."""
    try:
        values = json.loads(path.read_text(encoding="utf-8")).get("Values")
    except (OSError, ValueError, AttributeError):
        return ""
    value = values.get(name) if isinstance(values, dict) else None
    return value if isinstance(value, str) else ""


def func_path() -> str | None:
    """Azure Functions Core Tools, if installed; it is the real host and preferred when present."""
    return shutil.which("func")


def start_func(func: str, app_dir: Path, port: int) -> Child:
    """Start `func start` in the foreground (output to the terminal) and wait until the host is ready."""
    child = spawn("func start", [func, "start", "--port", str(port)], cwd=app_dir, log_path=None)
    _ready_or_stopped(child, lambda: host_ready(f"http://{LOOPBACK}:{port}"), FUNC_TIMEOUT)
    return child


def _ready_or_stopped(child: Child, ready: Callable[[], bool], timeout: float) -> None:
    """Wait for readiness; a child that never got ready is stopped before the error goes up."""
    try:
        wait_until_ready(child, ready, timeout)
    except BaseException:
        child.stop()
        raise
