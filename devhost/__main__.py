"""`python -m devhost`: run an Azure Functions Python app with Durable Functions, without the host."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

from . import logs
from .addresses import rpc_base
from .engine import Engine
from .http_triggers import HttpTriggers, client_binding
from .indexing import IndexingError, load_and_index
from .server import DevhostServer
from .settings import load_host_settings, load_local_settings
from .store import Store
from .timer_triggers import TimerTriggers
from .webhooks import WebhookApi


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devhost", description=__doc__)
    parser.add_argument("--port", type=int, default=7071, help="main HTTP port (default 7071)")
    parser.add_argument("--app-dir", default=".", help="directory holding function_app.py and host.json")
    parser.add_argument("--hub", default=None, help="task hub SQLite file (default <app-dir>/.devhost/<hub>.sqlite)")
    parser.add_argument("--rpc-port", type=int, default=17071, help="durable client RPC port (default 17071)")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> int:
    app_dir = Path(args.app_dir).resolve()
    load_local_settings(app_dir)
    settings = load_host_settings(app_dir)
    logs.configure_app_logging()
    try:
        index = load_and_index(app_dir)
    except IndexingError as exc:
        print(f"devhost: {exc}", file=sys.stderr, flush=True)
        return 2
    hub_path = Path(args.hub) if args.hub else app_dir / ".devhost" / f"{settings.hub_name}.sqlite"
    store = Store(hub_path)
    engine = Engine(index, settings, store)
    webhooks = WebhookApi(engine, settings.hub_name)
    # The binding needs the RPC port, which is known only after binding; it is patched in below.
    triggers = HttpTriggers(index, settings.route_prefix, client_binding(args.port, args.rpc_port, settings.hub_name))
    timers = TimerTriggers(index, engine.db, store, lambda: triggers.binding_json)
    server = DevhostServer(engine, webhooks, triggers, timers)
    rpc_port = await server.start(args.port, args.rpc_port)
    if rpc_port != args.rpc_port:
        triggers.binding_json = HttpTriggers(
            index, settings.route_prefix, client_binding(args.port, rpc_port, settings.hub_name)
        ).binding_json
    await engine.start()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    for name, info in sorted(index.all.items()):
        logs.line(f"devhost: function {name} ({info.kind})")
    timers.start()
    print(f"devhost: listening on http://127.0.0.1:{args.port} (rpc {rpc_base(rpc_port)})", flush=True)
    await stop.wait()
    logs.line("devhost: shutting down")
    await timers.stop()
    await server.stop()
    await engine.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return asyncio.run(serve(args))


if __name__ == "__main__":
    code = main()
    # Activities still running in worker threads are abandoned, as the host abandons its worker: their work
    # items stay queued in the hub and run again on the next start. Exit now instead of joining them.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
