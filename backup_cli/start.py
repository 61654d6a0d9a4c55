"""The ``start`` command: run Azurite and the host in the foreground until Ctrl-C.

`func start` is used when Azure Functions Core Tools are installed, devhost otherwise;
the host's output goes to the terminal, Azurite's to its log file.
"""

from __future__ import annotations

from contextlib import ExitStack

from rich.console import Console

from .autostart import AZURITE_LOG
from .output import say
from .processes import ServiceError, port_open
from .project import AZURITE_DIR, HUB_FILE, check_project_root
from .services import LOOPBACK, azurite_listening, func_path, start_azurite, start_devhost, start_func

EXIT_INTERRUPTED = 130


def run_start(port: int, out: Console, err: Console) -> int:
    """Start what is missing, wait for the host to exit or for Ctrl-C, then stop everything started here."""
    root = check_project_root()
    if port_open(LOOPBACK, port):
        say(err, f"Error: something already listens on {LOOPBACK}:{port}; is the host already running?", "red")
        return 1
    with ExitStack() as stack:
        try:
            if azurite_listening():
                say(out, "Azurite already listens on port 10000; using it.", "dim")
            else:
                say(out, f"Starting Azurite (data in {AZURITE_DIR}, log {AZURITE_LOG}) ...", "dim")
                stack.callback(start_azurite(AZURITE_DIR, AZURITE_LOG).stop)
            func = func_path()
            if func:
                say(out, f"Starting `func start` on port {port} ...", "dim")
                host = start_func(func, root, port)
            else:
                say(out, f"Azure Functions Core Tools not found; starting devhost on port {port} ...", "dim")
                host = start_devhost(root, port, log_path=None, hub=HUB_FILE)
            stack.callback(host.stop)
            say(
                out,
                f"Host ready at http://{LOOPBACK}:{port}. Run `make backup DIR=<path>` elsewhere; "
                "Ctrl-C stops everything started here.",
                "green",
            )
            code = host.process.wait()
        except ServiceError as exc:
            say(err, f"Error: {exc}", "red")
            return 1
        except KeyboardInterrupt:
            say(out, "Stopping ...", "yellow")
            return EXIT_INTERRUPTED
    say(err, f"The host exited with code {code}.", "red" if code else "")
    return code or 0
