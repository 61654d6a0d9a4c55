"""Start the local services a backup needs when nothing listens at a loopback URL, and stop them after.

A remote URL, or a loopback port where a Functions host already answers, is used as it is: the CLI
never competes with a host the user runs. A loopback port held by something else is an error, so
the backup is not posted to the wrong program.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from rich.console import Console

from .client import is_functions_host, is_loopback
from .output import say
from .processes import port_open
from .project import AZURITE_DIR, DEVHOST_DIR, HUB_FILE, check_project_root
from .services import azurite_listening, start_azurite, start_devhost, storage_ports

AZURITE_LOG = AZURITE_DIR / "azurite.log"
DEVHOST_LOG = DEVHOST_DIR / "devhost.log"


class NotAFunctionsHost(Exception):
    """Something answers on the loopback port, but not as a Functions host."""


def url_port(base_url: str) -> int:
    """The TCP port of base_url, with the scheme's default when none is written."""
    parts = urlsplit(base_url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def address(base_url: str) -> str:
    """host:port of base_url as a user would type it, for messages ('[::1]:7071' for IPv6)."""
    host = urlsplit(base_url).hostname or "127.0.0.1"
    return f"[{host}]:{url_port(base_url)}" if ":" in host else f"{host}:{url_port(base_url)}"


def host_missing(base_url: str) -> bool:
    """Whether base_url is on this machine and nothing accepts connections on its port."""
    return is_loopback(base_url) and not port_open(urlsplit(base_url).hostname or "127.0.0.1", url_port(base_url))


@contextmanager
def local_host(
    base_url: str, console: Console, allowed: bool = True, directories: Sequence[Path] = ()
) -> Iterator[bool]:
    """Yield whether this call started the host; anything it started is stopped on exit, whatever happens.

    A host started here may use ``directories`` as well as the roots the app allows anyway. Azurite is
    started where the storage setting points (the development storage ports, or a loopback BlobEndpoint) when
    nothing answers there. Raises NotAFunctionsHost when the loopback port answers but not as a Functions host.
    """
    if not is_loopback(base_url):
        yield False
        return
    if not host_missing(base_url):
        if not is_functions_host(base_url):
            raise NotAFunctionsHost(
                f"Something that is not the Functions host is listening on {address(base_url)}; stop it or pass --url."
            )
        say(console, f"Using the host already running at {base_url.rstrip('/')}", "dim")
        yield False
        return
    if not allowed:
        yield False
        return
    root = check_project_root()
    port = url_port(base_url)
    with ExitStack() as stack:
        ports = storage_ports(root, os.environ)
        if ports is not None and not azurite_listening(ports):
            say(console, f"Starting Azurite (data in {AZURITE_DIR}, log {AZURITE_LOG}) ...", "dim")
            stack.callback(start_azurite(AZURITE_DIR, AZURITE_LOG, ports).stop)
        say(console, f"Starting devhost on port {port} (log {DEVHOST_LOG}) ...", "dim")
        stack.callback(start_devhost(root, port, DEVHOST_LOG, HUB_FILE, allow=directories).stop)
        yield True
