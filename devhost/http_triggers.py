"""Serve the app's HTTP triggers: route templates, declared methods, real azure.functions requests."""

from __future__ import annotations

import asyncio
import json
import re
import time
import traceback
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from aiohttp import web

from . import logs
from .addresses import rpc_base, webhook_base
from .indexing import FunctionIndex, FunctionInfo
from .invoke import InvocationContext

_PARAM = re.compile(r"\{([^{}]+)\}")
_CONSTRAINTS = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "alpha": r"[A-Za-z]+",
    "bool": r"(?:true|false)",
    "guid": r"[0-9A-Fa-f-]{32,36}",
}


@dataclass
class Route:
    """One compiled route template."""

    info: FunctionInfo
    pattern: re.Pattern[str]
    methods: set[str] | None


def compile_template(template: str) -> re.Pattern[str]:
    """`{name}`, `{name?}`, `{name:constraint}`, `{*rest}` → a case-insensitive full-match regex."""
    out: list[str] = []
    pos = 0
    for match in _PARAM.finditer(template):
        literal = template[pos : match.start()]
        spec = match.group(1)
        optional = spec.endswith("?")
        spec = spec.rstrip("?")
        catch_all = spec.startswith("*")
        spec = spec.lstrip("*")
        name, _, constraint = spec.partition(":")
        name = name.split("=", 1)[0]
        body = r".*" if catch_all else _CONSTRAINTS.get(constraint.split("(")[0].lower(), r"[^/]+")
        group = f"(?P<{name}>{body})"
        if optional and literal.endswith("/"):
            out.append(re.escape(literal[:-1]))
            out.append(f"(?:/{group})?")
        else:
            out.append(re.escape(literal))
            out.append(f"{group}?" if optional else group)
        pos = match.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out), re.IGNORECASE)


def client_binding(port: int, rpc_port: int, hub: str) -> dict[str, Any]:
    """The durable client binding JSON (§10) for a keyless local host."""
    w = webhook_base(port)
    q = f"taskHub={hub}&connection=Storage"
    inst = f"{w}/instances/INSTANCEID"
    return {
        "taskHubName": hub,
        "connectionName": None,
        "creationUrls": {
            "createNewInstancePostUri": f"{w}/orchestrators/{{functionName}}[/{{instanceId}}]",
            "createAndWaitOnNewInstancePostUri": f"{w}/orchestrators/{{functionName}}[/{{instanceId}}]"
            "?timeout={timeoutInSeconds}&pollingInterval={intervalInSeconds}",
        },
        "managementUrls": {
            "id": "INSTANCEID",
            "statusQueryGetUri": f"{inst}?{q}",
            "sendEventPostUri": f"{inst}/raiseEvent/{{eventName}}?{q}",
            "terminatePostUri": f"{inst}/terminate?reason={{text}}&{q}",
            "rewindPostUri": f"{inst}/rewind?reason={{text}}&{q}",
            "purgeHistoryDeleteUri": f"{inst}?{q}",
            "restartPostUri": f"{inst}/restart?{q}",
            "suspendPostUri": f"{inst}/suspend?reason={{text}}&{q}",
            "resumePostUri": f"{inst}/resume?reason={{text}}&{q}",
        },
        "baseUrl": w,
        "requiredQueryStringParameters": "",
        "rpcBaseUrl": rpc_base(rpc_port),
        "httpBaseUrl": None,
    }


class HttpTriggers:
    """Matches /<routePrefix>/<route> and invokes the function like the worker."""

    def __init__(self, index: FunctionIndex, route_prefix: str, binding: dict[str, Any]) -> None:
        self.prefix = "/" + route_prefix.strip("/") if route_prefix.strip("/") else ""
        self.binding_json = json.dumps(binding)
        self.routes: list[Route] = []
        for info in index.http:
            template = (info.trigger.get("route") or info.name).strip("/")
            methods = info.trigger.get("methods")
            self.routes.append(
                Route(info, compile_template(template), {str(m).upper() for m in methods} if methods else None)
            )

    def match(self, path: str) -> tuple[Route, dict[str, str]] | None:
        if self.prefix:
            if path.lower() != self.prefix.lower() and not path.lower().startswith(self.prefix.lower() + "/"):
                return None
            path = path[len(self.prefix) :]
        rest = path.strip("/")
        for route in self.routes:
            found = route.pattern.fullmatch(rest)
            if found:
                return route, {k: v for k, v in found.groupdict().items() if v is not None}
        return None

    async def handle(self, request: web.Request) -> web.Response:
        matched = self.match(request.path)
        if matched is None:
            return web.Response(status=404)
        route, params = matched
        if route.methods is not None and request.method.upper() not in route.methods:
            return web.Response(status=404)
        body = await request.read()
        http_request = func.HttpRequest(
            method=request.method.upper(),
            url=str(request.url),
            headers=dict(request.headers),
            params={k: v for k, v in request.query.items()},
            route_params=params,
            body=body,
        )
        return await self._invoke(route.info, http_request)

    def _kwargs(self, info: FunctionInfo, http_request: func.HttpRequest, invocation: str) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        for binding in info.bindings:
            name = str(binding.get("name"))
            if name == "$return":
                continue
            if binding.get("type") == "httpTrigger":
                kwargs[name] = http_request
            elif binding.get("type") == "durableClient":
                kwargs[name] = self.binding_json
            else:
                kwargs[name] = None
        if info.wants_context:
            kwargs["context"] = InvocationContext(info.name, invocation)
        return kwargs

    async def _invoke(self, info: FunctionInfo, http_request: func.HttpRequest) -> web.Response:
        invocation = str(InvocationContext(info.name).invocation_id)
        kwargs = self._kwargs(info, http_request, invocation)
        started = time.perf_counter()
        try:
            if info.is_async:
                result = await info.callable(**kwargs)
            else:
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(None, lambda: info.callable(**kwargs))
        except Exception as exc:
            logs.executed(info.name, invocation, time.perf_counter() - started, f"{type(exc).__name__}: {exc}")
            logs.error(f"function '{info.name}' raised:\n{traceback.format_exc()}")
            return web.Response(status=500)
        logs.executed(info.name, invocation, time.perf_counter() - started)
        return to_aiohttp(result)


def to_aiohttp(result: Any) -> web.Response:
    """Return the function's HttpResponse unchanged (status, headers, body)."""
    if isinstance(result, func.HttpResponse):
        headers = {k: v for k, v in result.headers.items()}
        if not any(k.lower() == "content-type" for k in headers):
            mimetype = result.mimetype or "text/plain"
            charset = result.charset
            headers["Content-Type"] = f"{mimetype}; charset={charset}" if charset else mimetype
        return web.Response(status=result.status_code, body=result.get_body() or b"", headers=headers)
    if result is None:
        return web.Response(status=204)
    if isinstance(result, bytes):
        return web.Response(status=200, body=result)
    return web.Response(status=200, text=str(result))
