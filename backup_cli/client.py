"""HTTP side of a backup: start the orchestration, then follow its status URL until it ends.

The host speaks the Durable Functions HTTP API: the starter answers 202 with a ``Location``
status URL, and that URL answers 202 while the backup runs and 200 once it has ended.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import requests

from blueprints.names import BACKUP_ORCHESTRATOR, BACKUPS_ROUTE, STARTER_ROUTE
from site_backup.request import BackupRequest

KEY_HEADER = "x-functions-key"  # the Functions host takes a function key here (or as ?code=)
KEY_SETTING = "SITE_BACKUP_KEY"
HOST_STATUS_PATH = "/admin/host/status"
REQUEST_TIMEOUT = 30.0
# Short, because a listener that is not an HTTP server may never answer at all.
HOST_CHECK_TIMEOUT = 5.0
# The host asks for 5-10 s between polls; a shorter wait keeps the progress bar live.
MAX_POLL_SECONDS = 1.0
TERMINAL_STATUSES = frozenset({"Completed", "Failed", "Terminated", "Canceled"})
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})


class HostError(Exception):
    """The host answered with an HTTP error; ``message`` is its JSON ``error`` text when it sent one."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(f"{message} (HTTP {status_code})")
        self.status_code = status_code
        self.message = message


class HostUnreachable(Exception):
    """No HTTP answer at all (refused, reset, timed out)."""


@dataclass(frozen=True)
class StartedBackup:
    """What the starter answered: where to follow the backup and, if sent, how to terminate it."""

    status_url: str
    terminate_url: str | None = None


@dataclass(frozen=True)
class Status:
    """One answer of the status URL, reduced to what the CLI shows."""

    runtime_status: str
    custom_status: dict[str, Any] = field(default_factory=dict)
    output: Any = None

    @property
    def finished(self) -> bool:
        """Whether the orchestration has ended and polling can stop."""
        return self.runtime_status in TERMINAL_STATUSES

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Status:
        """Read the durable status body; a missing or non-object customStatus counts as empty."""
        custom = body.get("customStatus")
        return cls(
            runtime_status=str(body.get("runtimeStatus", "Unknown")),
            custom_status=custom if isinstance(custom, dict) else {},
            output=body.get("output"),
        )


def backup_body(directory: str, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> str | dict[str, Any]:
    """The starter's JSON body: the bare directory, or the object form when patterns are given."""
    if not include and not exclude:
        return directory
    return BackupRequest(directory, tuple(include), tuple(exclude)).to_json()


def starter_url(base_url: str, orchestrator: str) -> str:
    return f"{base_url.rstrip('/')}/{STARTER_ROUTE.format(functionName=orchestrator)}"


def start_backup(
    session: requests.Session, base_url: str, body: str | dict[str, Any], orchestrator: str = BACKUP_ORCHESTRATOR
) -> StartedBackup:
    """POST a backup (or restore, or verify) request; return the absolute status URL and the check-status
    payload's terminate URL."""
    response = _send(session, "POST", starter_url(base_url, orchestrator), json=body)
    payload = _json(response)
    location = response.headers.get("Location") or payload.get("statusQueryGetUri")
    if not location or not isinstance(location, str):
        raise HostError(response.status_code, "The host accepted the backup but sent no status URL.")
    terminate = payload.get("terminatePostUri")
    return StartedBackup(
        status_url=urljoin(response.url, location),
        terminate_url=urljoin(response.url, terminate) if isinstance(terminate, str) and terminate else None,
    )


def terminate_backup(session: requests.Session, terminate_url: str, reason: str) -> None:
    """POST the durable terminate URL, with reason filled into its ``{text}`` placeholder (URL-encoded)."""
    _send(session, "POST", terminate_url.replace("{text}", quote(reason, safe="")))


def poll_status(
    session: requests.Session, status_url: str, sleep: Callable[[float], None] = time.sleep
) -> Iterator[Status]:
    """Yield each status until the orchestration ends, waiting Retry-After (capped) between polls."""
    while True:
        response = _send(session, "GET", status_url)
        status = Status.from_json(_json(response))
        yield status
        if status.finished:
            return
        sleep(retry_after(response.headers.get("Retry-After")))


def retry_after(header: str | None) -> float:
    """Seconds to wait before the next poll: the host's Retry-After, capped at MAX_POLL_SECONDS."""
    try:
        seconds = float(header) if header is not None else MAX_POLL_SECONDS
    except ValueError:
        seconds = MAX_POLL_SECONDS
    return max(0.0, min(seconds, MAX_POLL_SECONDS))


def host_ready(base_url: str) -> bool:
    """Whether the host's status endpoint answers 200, i.e. it has loaded the app."""
    try:
        with new_session(base_url) as session:
            response = session.get(base_url.rstrip("/") + HOST_STATUS_PATH, timeout=2.0)
    except requests.RequestException:
        return False
    return response.status_code == 200


def is_functions_host(base_url: str) -> bool:
    """Whether base_url answers /admin/host/status with a 2xx JSON object, as a Functions host does.

    Tells the host apart from another program on the same port before a backup is posted to it.
    """
    try:
        with new_session(base_url) as session:
            response = session.get(base_url.rstrip("/") + HOST_STATUS_PATH, timeout=HOST_CHECK_TIMEOUT)
            body = response.json()
    except (requests.RequestException, ValueError):
        return False
    return 200 <= response.status_code < 300 and isinstance(body, dict)


def list_backups(session: requests.Session, base_url: str, directory: str, top: int = 50) -> list[dict[str, Any]]:
    """The sealed backups of a directory, newest first (GET /backups)."""
    response = _send(
        session, "GET", f"{base_url.rstrip('/')}/{BACKUPS_ROUTE}", params={"rootDirectory": directory, "top": top}
    )
    try:
        body = response.json()
    except ValueError as exc:
        raise HostError(response.status_code, "The host answered /backups with something that is not JSON.") from exc
    if not isinstance(body, list):
        raise HostError(response.status_code, "The host answered /backups with something that is not a list.")
    return body


def new_session(base_url: str, key: str | None = None) -> requests.Session:
    """A session for base_url; a loopback host is addressed directly, never through a proxy. A function key
    (for an app in Azure) goes in the header the Functions host reads it from."""
    session = requests.Session()
    session.trust_env = not is_loopback(base_url)
    if key:
        session.headers[KEY_HEADER] = key
    return session


def is_loopback(base_url: str) -> bool:
    """Whether base_url names this machine, where the CLI may start the host itself."""
    return urlsplit(base_url).hostname in LOOPBACK_NAMES


def _send(session: requests.Session, method: str, url: str, **kwargs: Any) -> requests.Response:
    """One request; transport failures become HostUnreachable and HTTP errors HostError."""
    try:
        response = session.request(method, url, timeout=REQUEST_TIMEOUT, **kwargs)
    except requests.RequestException as exc:
        raise HostUnreachable(f"Could not reach {url}: {exc}") from exc
    if response.status_code >= 400:
        raise HostError(response.status_code, _error_message(response))
    return response


def _error_message(response: requests.Response) -> str:
    """The JSON ``error`` field the app sends, else the start of whatever body came back."""
    error = _json(response).get("error")
    if isinstance(error, str) and error:
        return error
    text = response.text.strip()
    return text[:500] if text else response.reason or "HTTP error"


def _json(response: requests.Response) -> dict[str, Any]:
    """The body as a JSON object, or an empty dict when it is not one."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
