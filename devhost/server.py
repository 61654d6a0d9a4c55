"""aiohttp wiring: the main port (app routes, webhooks, admin) and the local RPC port (/durabletask/)."""

from __future__ import annotations

import errno
import os
import random

from aiohttp import web

from .addresses import RPC_PATH, WEBHOOK_PATH
from .engine import Engine
from .http_triggers import HttpTriggers
from .timer_triggers import TimerTriggers
from .webhooks import WebhookApi

ADMIN_FUNCTIONS = "/admin/functions/"
MAX_REQUEST_BODY_BYTES = 100 * 1024 * 1024


class DevhostServer:
    """Owns both listeners; routing is done by hand so unmatched paths get the host's empty 404."""

    def __init__(self, engine: Engine, webhooks: WebhookApi, triggers: HttpTriggers, timers: TimerTriggers) -> None:
        self.engine = engine
        self.webhooks = webhooks
        self.triggers = triggers
        self.timers = timers
        self.runners: list[web.AppRunner] = []

    def _app(self, serve_app_routes: bool) -> web.Application:
        async def dispatch(request: web.Request) -> web.StreamResponse:
            return await self.route(request, serve_app_routes)

        # The Functions host refuses request bodies over 100 MB (maxRequestBodySize) with an empty 413.
        app = web.Application(client_max_size=MAX_REQUEST_BODY_BYTES)
        app.router.add_route("*", "/{tail:.*}", dispatch)
        return app

    async def route(self, request: web.Request, serve_app_routes: bool) -> web.StreamResponse:
        try:
            return await self._route(request, serve_app_routes)
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413)

    async def _route(self, request: web.Request, serve_app_routes: bool) -> web.StreamResponse:
        path = request.raw_path.split("?", 1)[0]
        lower = path.lower()
        for base in (WEBHOOK_PATH, RPC_PATH):
            if lower == base or lower.startswith(base + "/"):
                return await self.webhooks.handle(request, path[len(base) + 1 :])
        if lower == "/admin/host/status":
            return web.json_response({"id": "devhost", "state": "Running", "version": "devhost", "processUptime": 0})
        if lower == "/admin/devhost/stats":
            return web.json_response(self.engine.stats.as_dict(self.engine.store))
        if lower.startswith(ADMIN_FUNCTIONS) and serve_app_routes and request.method == "POST":
            return await self.timers.admin_invoke(request, path[len(ADMIN_FUNCTIONS) :].strip("/"))
        if serve_app_routes:
            return await self.triggers.handle(request)
        return web.Response(status=404)

    async def _listen(self, app: web.Application, port: int) -> None:
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port, reuse_address=os.name != "nt")
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self.runners.append(runner)

    async def start(self, port: int, rpc_port: int) -> int:
        """Start both listeners; returns the RPC port actually bound (random 30000-31000 if busy)."""
        await self._listen(self._app(True), port)
        candidates = [rpc_port] + [random.randint(30000, 31000) for _ in range(9)]
        last: OSError | None = None
        for candidate in candidates:
            try:
                await self._listen(self._app(False), candidate)
                return candidate
            except OSError as exc:
                if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                    raise
                last = exc
        raise OSError(f"could not bind the durable RPC port (tried {candidates}): {last}")

    async def stop(self) -> None:
        for runner in self.runners:
            await runner.cleanup()
