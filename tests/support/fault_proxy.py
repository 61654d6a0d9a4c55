"""A loopback HTTP proxy between the app and Azurite that injects the faults real networks and services have.

Each request is, at the given rates: answered 503 or 500 without being forwarded; cut off (connection reset)
before its body is read, so storage never sees it; forwarded and then cut off before the answer, so storage
did it but the client cannot know; or answered only after a delay. Everything else is forwarded unchanged.
It runs in a thread with its own event loop, on a free port, and counts what it did.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from backup_cli.processes import free_port

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "content-encoding"}


@dataclass
class Faults:
    """Rates per request (0-1), and how long a slow answer takes."""

    status_503: float = 0.0
    status_500: float = 0.0
    reset_before_body: float = 0.0
    reset_after_body: float = 0.0
    slow: float = 0.0
    slow_seconds: float = 2.0
    seed: int = 1


@dataclass
class FaultProxy:
    target: str  # e.g. http://127.0.0.1:10000
    faults: Faults
    port: int = field(default_factory=free_port)
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        roll = self._random.random()
        faults = self.faults
        self.counts["requests"] += 1
        edges = [
            ("503", faults.status_503),
            ("500", faults.status_500),
            ("reset_before_body", faults.reset_before_body),
            ("reset_after_body", faults.reset_after_body),
            ("slow", faults.slow),
        ]
        chosen = None
        for name, rate in edges:
            if roll < rate:
                chosen = name
                break
            roll -= rate
        if chosen in ("503", "500"):
            self.counts[chosen] += 1
            await request.read()
            code = "ServerBusy" if chosen == "503" else "InternalError"
            body = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>injected</Message></Error>"
            return web.Response(status=int(chosen), body=body, headers={"x-ms-error-code": code})
        if chosen == "reset_before_body":
            self.counts[chosen] += 1
            assert request.transport is not None
            request.transport.abort()
            raise ConnectionResetError("injected reset before the body")
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with self._session.request(
            request.method, self.target + request.path_qs, headers=headers, data=body, allow_redirects=False
        ) as upstream:
            payload = await upstream.read()
            if chosen == "reset_after_body":
                self.counts[chosen] += 1
                assert request.transport is not None
                request.transport.abort()
                raise ConnectionResetError("injected reset after the body")
            if chosen == "slow":
                self.counts[chosen] += 1
                await asyncio.sleep(faults.slow_seconds)
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
            return web.Response(status=upstream.status, body=payload, headers=out)

    async def _serve(self, ready: threading.Event, stop: asyncio.Event) -> None:
        self._random = random.Random(self.faults.seed)
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=512 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        ready.set()
        await stop.wait()
        await runner.cleanup()
        await self._session.close()


@contextmanager
def fault_proxy(target: str, faults: Faults) -> Iterator[FaultProxy]:
    """Run a FaultProxy in a background thread for the duration of the block."""
    proxy = FaultProxy(target, faults)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()
    thread = threading.Thread(
        target=loop.run_until_complete, args=(proxy._serve(ready, stop),), name="fault-proxy", daemon=True
    )
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("the fault proxy did not start")
    try:
        yield proxy
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
