"""The errors devhost raises and the texts it shows, each written once, in the host's and extension's words."""

from __future__ import annotations

from collections.abc import Iterable

ENTITIES_UNSUPPORTED = "Durable entities are not supported by devhost"
CALL_HTTP_UNSUPPORTED = "Durable HTTP (context.call_http) is not supported by devhost"


class InstanceExists(Exception):
    """Starting an id whose instance is still live (the extension answers 500)."""

    def __init__(self, status: str) -> None:
        super().__init__(f"An Orchestration instance with the status {status} already exists.")


class StaleEpisode(Exception):
    """The instance was purged or replaced while its episode ran; the episode's writes are discarded."""


class FunctionTimeoutException(Exception):
    """An activity ran longer than host.json's functionTimeout (the host's own exception name and wording)."""

    def __init__(self, name: str, seconds: float) -> None:
        super().__init__(f"Timeout value of {timespan(seconds)} was exceeded by function: Functions.{name}")


def timespan(seconds: float) -> str:
    """Seconds as a .NET TimeSpan, hh:mm:ss."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


def function_not_found(name: str, kind: str, known: Iterable[str] | None = None) -> str:
    """The extension's wording for a function name it cannot find; with the known ones where it lists them."""
    text = f"The function '{name}' doesn't exist, is disabled, or is not an {kind} function."
    if known is None:
        return text
    listing = ", ".join(f"'{n}'" for n in sorted(known))
    return f"{text} Additional info: The following are the known {kind} functions: {listing}."


def child_exists(instance_id: str) -> str:
    """Why a sub-orchestration start with the id of a live instance failed."""
    return f"An orchestration with the instance ID '{instance_id}' already exists."
