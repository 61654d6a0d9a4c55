"""Read local.settings.json and host.json the way `func start` does, so the app sees the same configuration."""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_HUB = "TestHubName"


@dataclass(frozen=True)
class HostSettings:
    """The host.json values devhost honours."""

    route_prefix: str = "api"
    hub_name: str = DEFAULT_HUB
    max_concurrent_activities: int = 10 * (os.cpu_count() or 1)
    max_concurrent_orchestrators: int = 10 * (os.cpu_count() or 1)
    max_orchestration_actions: int = 100_000
    function_timeout: float | None = None  # seconds; None: no limit (host.json functionTimeout absent or -1)


def load_local_settings(app_dir: Path) -> dict[str, str]:
    """Copy local.settings.json `Values` into os.environ without overriding what is already set.

    Falls back to local.settings.json.example (with a warning) because a fresh checkout has only that file.
    """
    path = app_dir / "local.settings.json"
    if not path.exists():
        example = app_dir / "local.settings.json.example"
        if not example.exists():
            return {}
        print(f"devhost: warning: {path} not found; using {example.name}", file=sys.stderr, flush=True)
        path = example
    data = json.loads(path.read_text(encoding="utf-8") or "{}")
    values = {str(k): str(v) for k, v in (data.get("Values") or {}).items()}
    for key, value in values.items():
        os.environ.setdefault(key, value)
    return values


def _int_or(value: Any, default: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return default
    return number if number > 0 else default


_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?$")


def parse_function_timeout(value: Any) -> float | None:
    """host.json's ``functionTimeout`` (a .NET TimeSpan such as ``00:10:00``) in seconds; -1 or absent: None."""
    if value is None or str(value).strip() in ("-1", "-01:00:00"):
        return None
    found = _TIMESPAN.match(str(value).strip())
    if found is None:
        raise ValueError(f"host.json functionTimeout {value!r} is not a time span like 00:10:00")
    days, hours, minutes, seconds, fraction = found.groups()
    total = int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + int(seconds)
    return total + (float(f"0.{fraction}") if fraction else 0.0)


def load_host_settings(app_dir: Path) -> HostSettings:
    """Read host.json; missing keys keep the real host's defaults."""
    path = app_dir / "host.json"
    data: dict[str, Any] = {}
    if path.exists():
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    extensions = data.get("extensions") or {}
    http = extensions.get("http") or {}
    durable = extensions.get("durableTask") or {}
    defaults = HostSettings()
    prefix = http.get("routePrefix", defaults.route_prefix)
    return HostSettings(
        route_prefix=str(prefix if prefix is not None else "").strip("/"),
        hub_name=str(durable.get("hubName") or DEFAULT_HUB),
        max_concurrent_activities=_int_or(
            durable.get("maxConcurrentActivityFunctions"), defaults.max_concurrent_activities
        ),
        max_concurrent_orchestrators=_int_or(
            durable.get("maxConcurrentOrchestratorFunctions"), defaults.max_concurrent_orchestrators
        ),
        max_orchestration_actions=_int_or(durable.get("maxOrchestrationActions"), defaults.max_orchestration_actions),
        function_timeout=parse_function_timeout(data.get("functionTimeout")),
    )
