"""The Durable extension's HTTP API (§13): the same handler serves /runtime/webhooks/durabletask/ and the
local RPC base /durabletask/, with the extension's status codes, headers and error bodies."""

from __future__ import annotations

import asyncio
import json
import time
import traceback
import uuid
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from aiohttp import web

from . import history as h
from . import logs
from .addresses import WEBHOOK_PATH
from .decisions import PAYLOAD_WARN_BYTES
from .engine import Engine
from .errors import ENTITIES_UNSUPPORTED, InstanceExists, function_not_found
from .model import RuntimeStatus
from .status import shape_history, status_json


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json", headers=headers)


def empty(status: int) -> web.Response:
    return web.Response(status=status)


def argument_error(text: str) -> web.Response:
    """An ArgumentException, which the extension maps to 400."""
    return json_response(
        {
            "Message": "One or more of the arguments submitted is incorrect",
            "ExceptionMessage": text,
            "ExceptionType": "System.ArgumentException",
            "StackTrace": "",
        },
        400,
    )


def server_error(text: str, exception_type: str = "System.InvalidOperationException") -> web.Response:
    return json_response(
        {
            "Message": "Something went wrong while processing your request",
            "ExceptionMessage": text,
            "ExceptionType": exception_type,
            "StackTrace": "",
        },
        500,
    )


def instance_id_problem(instance_id: str) -> str | None:
    """§13.3: ids may not start with '@', contain / \\ ? # or control characters, or exceed 256 chars."""
    if not instance_id:
        return "Instance ID must not be empty."
    if len(instance_id) > 256:
        return "Instance ID must be 256 characters or fewer."
    if instance_id.startswith("@"):
        return f"Orchestration instance ids must not start with @. InstanceId: {instance_id}"
    if any(ch in "/\\?#" or ord(ch) < 32 or 127 <= ord(ch) <= 159 for ch in instance_id):
        return f"Instance ID '{instance_id}' contains invalid characters ('/', '\\', '?', '#' or control)."
    return None


class Query:
    """Case-insensitive query keys; '+' decodes to a space; booleans fall back to their default."""

    def __init__(self, raw: str) -> None:
        self.values: dict[str, str] = {k.lower(): v for k, v in parse_qsl(raw, keep_blank_values=True)}

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.values.get(key.lower(), default)

    def flag(self, key: str, default: bool) -> bool:
        value = (self.get(key) or "").strip().lower()
        if value == "true":
            return True
        if value == "false":
            return False
        return default

    def number(self, key: str) -> float | None:
        try:
            return float(self.get(key) or "")
        except ValueError:
            return None


def _stored_time(text: str | None) -> str | None:
    """A createdTimeFrom/createdTimeTo value in the instance table's format, or None.

    Like the extension's TryGetDateTimeQueryParameterValue, a value that is not a date is
    treated as absent rather than as an error.
    """
    if not text:
        return None
    try:
        moment = h.parse_timestamp(text)
    except (ValueError, OverflowError):
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class WebhookApi:
    """Routes §13.2 requests to the engine."""

    def __init__(self, engine: Engine, hub_name: str) -> None:
        self.engine = engine
        self.hub_name = hub_name

    # ---- helpers ------------------------------------------------------------------------------------

    def check_status_payload(self, request: web.Request, instance_id: str) -> dict[str, str]:
        """The extension's own 202 body: no rewindPostUri, URL-encoded id, origin from the request."""
        base = f"{request.scheme}://{request.host}{WEBHOOK_PATH}"
        q = f"taskHub={quote(self.hub_name, safe='')}&connection=Storage"
        eid = quote(instance_id, safe="")
        return {
            "id": instance_id,
            "statusQueryGetUri": f"{base}/instances/{eid}?{q}",
            "sendEventPostUri": f"{base}/instances/{eid}/raiseEvent/{{eventName}}?{q}",
            "terminatePostUri": f"{base}/instances/{eid}/terminate?reason={{text}}&{q}",
            "purgeHistoryDeleteUri": f"{base}/instances/{eid}?{q}",
            "restartPostUri": f"{base}/instances/{eid}/restart?{q}",
            "suspendPostUri": f"{base}/instances/{eid}/suspend?reason={{text}}&{q}",
            "resumePostUri": f"{base}/instances/{eid}/resume?reason={{text}}&{q}",
        }

    def check_status_response(self, request: web.Request, instance_id: str) -> web.Response:
        payload = self.check_status_payload(request, instance_id)
        return json_response(payload, 202, {"Location": payload["statusQueryGetUri"], "Retry-After": "10"})

    async def _wait_or_check_status(self, request: web.Request, query: Query, instance_id: str) -> web.Response:
        timeout = query.number("timeout")
        interval = query.number("pollingInterval")
        if timeout is None or interval is None:
            return self.check_status_response(request, instance_id)
        deadline = time.monotonic() + timeout
        while True:
            row = await self.engine.get_instance(instance_id)
            if row is not None and row.status is RuntimeStatus.COMPLETED:
                return json_response(status_json(row)["output"], 200)
            if row is not None and row.status.is_terminal:
                return json_response(status_json(row), 200)
            if time.monotonic() + interval > deadline:
                return self.check_status_response(request, instance_id)
            await asyncio.sleep(max(interval, 0.01))

    # ---- routing ------------------------------------------------------------------------------------

    async def handle(self, request: web.Request, tail: str) -> web.Response:
        segments = [unquote(s) for s in tail.split("/")]
        if segments and segments[-1] == "" and len(segments) > 1:
            segments = segments[:-1]
        query = Query(request.query_string)
        method = request.method.upper()
        try:
            return await self._route(request, method, segments, query)
        except InstanceExists as exc:
            return server_error(str(exc))
        except web.HTTPException:
            raise
        except Exception as exc:
            # Like the extension's catch-all: a §13.1 500 JSON body, never aiohttp's text/plain page.
            logs.error(f"{method} {request.path} failed in devhost:\n{traceback.format_exc()}")
            return server_error(f"{type(exc).__name__}: {exc}", "System.Exception")

    async def _route(self, request: web.Request, method: str, seg: list[str], query: Query) -> web.Response:
        head = seg[0].lower() if seg else ""
        n = len(seg)
        if head == "orchestrators" and n in (2, 3):
            if method != "POST":
                return empty(404)
            return await self.start(request, query, seg[1], seg[2] if n == 3 else None)
        if head == "instances":
            if n == 1 or (n == 2 and seg[1] == ""):
                if method == "GET":
                    return await self.list_instances(request, query)
                if method == "DELETE":
                    return await self.purge_by(query)
                return empty(404)
            instance_id = seg[1]
            if n == 2:
                if method == "GET":
                    return await self.get_status(request, query, instance_id)
                if method == "DELETE":
                    return await self.purge_one(instance_id)
                return empty(404)
            if method != "POST":
                return empty(404)
            op = seg[2].lower()
            if n == 3 and op in ("terminate", "suspend", "resume"):
                return await self.lifecycle(op, instance_id, query)
            if n == 3 and op == "rewind":
                return await self.rewind(instance_id)
            if n == 3 and op == "restart":
                return await self.restart(request, query, instance_id)
            if n == 4 and op == "raiseevent":
                return await self.raise_event(request, instance_id, seg[3])
            return empty(404)
        if head == "entities":
            return json_response({"Message": ENTITIES_UNSUPPORTED}, 501)
        if head == "makeprimary" and method == "POST":
            return empty(200)
        return empty(404)

    # ---- endpoints ----------------------------------------------------------------------------------

    async def start(self, request: web.Request, query: Query, name: str, instance_id: str | None) -> web.Response:
        if name not in self.engine.index.orchestrators:
            return argument_error(function_not_found(name, "orchestrator", self.engine.index.orchestrators))
        if instance_id is None:
            instance_id = uuid.uuid4().hex
        problem = instance_id_problem(instance_id)
        if problem:
            return argument_error(problem)
        body = await request.read()
        input_text: str | None = None
        if body.strip():
            input_text = await parse_off_the_loop(body)
            if input_text is None:
                return argument_error("Invalid JSON content")
        if input_text is not None and len(input_text) > PAYLOAD_WARN_BYTES:
            logs.warn(
                f"instance {instance_id}: orchestration input is {len(input_text) // 1024} KB, over the "
                f"{PAYLOAD_WARN_BYTES // 1024} KB that Azure Storage queues accept inline"
            )
        await self.engine.start_new(name, instance_id, input_text)
        return await self._wait_or_check_status(request, query, instance_id)

    async def get_status(self, request: web.Request, query: Query, instance_id: str) -> web.Response:
        row = await self.engine.get_instance(instance_id)
        if row is None:
            return empty(404)
        show_input = query.flag("showInput", True)
        events = None
        if query.flag("showHistory", False):
            texts = await self.engine.db(self.engine.store.load_history, instance_id)
            events = shape_history([json.loads(t) for t in texts], show_input, query.flag("showHistoryOutput", False))
        body = status_json(row, show_input, events)
        status = row.status
        if status.is_live:
            return json_response(body, 202, {"Location": str(request.url), "Retry-After": "5"})
        if status is RuntimeStatus.FAILED and query.flag("returnInternalServerErrorOnFailure", False):
            return json_response(body, 500)
        return json_response(body, 200)

    async def list_instances(self, request: web.Request, query: Query) -> web.Response:
        statuses = self._statuses(query)
        top_text = query.get("top")
        top = int(top_text) if top_text and top_text.isdigit() and int(top_text) > 0 else None
        token = request.headers.get("x-ms-continuation-token") or ""
        offset = int(token) if token.isdigit() else 0
        rows = await self.engine.db(
            self.engine.store.query_instances,
            _stored_time(query.get("createdTimeFrom")),
            _stored_time(query.get("createdTimeTo")),
            statuses,
            query.get("instanceIdPrefix"),
            top + 1 if top else None,
            offset,
        )
        more = top is not None and len(rows) > top
        rows = rows[:top] if top else rows
        show_input = query.flag("showInput", False)
        next_token = str(offset + len(rows)) if more else "null"
        return json_response([status_json(r, show_input) for r in rows], 200, {"x-ms-continuation-token": next_token})

    def _statuses(self, query: Query) -> list[RuntimeStatus] | None:
        raw = query.get("runtimeStatus")
        if not raw:
            return None
        known = {s.lower(): s for s in RuntimeStatus}
        picked = [known[p.strip().lower()] for p in raw.split(",") if p.strip().lower() in known]
        return picked or None

    async def purge_one(self, instance_id: str) -> web.Response:
        deleted = await self.engine.purge([instance_id])
        if not deleted:
            return empty(404)
        return json_response({"instancesDeleted": deleted})

    async def purge_by(self, query: Query) -> web.Response:
        created_from = _stored_time(query.get("createdTimeFrom"))
        if created_from is None:  # missing or not a date: the extension answers the same for both
            return json_response("Please provide value for 'createdTimeFrom' parameter.", 400)
        created_to = _stored_time(query.get("createdTimeTo")) or _stored_time(h.format_timestamp(h.utcnow()))
        rows = await self.engine.db(
            self.engine.store.query_instances,
            created_from,
            created_to,
            self._statuses(query),
            None,
            None,
            0,
        )
        deleted = await self.engine.purge([r.instance_id for r in rows])
        if not deleted:
            return empty(404)
        return json_response({"instancesDeleted": deleted})

    async def lifecycle(self, op: str, instance_id: str, query: Query) -> web.Response:
        row = await self.engine.get_instance(instance_id)
        if row is None:
            return empty(404)
        if row.status.is_terminal:
            return empty(410)
        reason = query.get("reason")
        stamp = h.format_timestamp(h.utcnow())
        event = {
            "terminate": h.execution_terminated,
            "suspend": h.execution_suspended,
            "resume": h.execution_resumed,
        }[op](stamp, reason)
        # Not pinned to the current execution (the extension targets only the instance id), so a message sent
        # while a continue-as-new episode runs reaches the new execution.
        await self.engine.send_event(instance_id, None, event)
        return empty(202)

    async def rewind(self, instance_id: str) -> web.Response:
        row = await self.engine.get_instance(instance_id)
        if row is None:
            return empty(404)
        if row.status in (RuntimeStatus.COMPLETED, RuntimeStatus.TERMINATED, RuntimeStatus.CANCELED):
            return empty(410)
        return json_response({"Message": "Rewind is not supported by devhost"}, 501)

    async def restart(self, request: web.Request, query: Query, instance_id: str) -> web.Response:
        row = await self.engine.get_instance(instance_id)
        if row is None:
            return argument_error("InstanceId does not match a valid orchestration instance.")
        new_id = uuid.uuid4().hex if query.flag("restartWithNewInstanceId", True) else instance_id
        await self.engine.start_new(row.name, new_id, row.input)
        return await self._wait_or_check_status(request, query, new_id)

    async def raise_event(self, request: web.Request, instance_id: str, event_name: str) -> web.Response:
        row = await self.engine.get_instance(instance_id)
        if row is None:
            return empty(404)
        if row.status.is_terminal:
            return empty(410)
        if request.content_type != "application/json":
            return json_response({"Message": "Only application/json request content is supported"}, 400)
        input_text = await parse_off_the_loop(await request.read())
        if input_text is None:
            return json_response({"Message": "Invalid JSON content"}, 400)
        event = h.event_raised(h.format_timestamp(h.utcnow()), event_name, input_text)
        # External events never target a particular execution id (as in the extension).
        await self.engine.send_event(instance_id, None, event)
        return empty(202)


# Json.NET, which the extension parses bodies with, refuses JSON nested deeper than this.
MAX_JSON_DEPTH = 64


async def parse_off_the_loop(body: bytes) -> str | None:
    """``parse_json_body``, on a thread for a big body, so that parsing it never stalls the event loop."""
    if len(body) < 64 * 1024:
        return parse_json_body(body)
    return await asyncio.to_thread(parse_json_body, body)


def parse_json_body(body: bytes) -> str | None:
    """A body as the extension stores it (parsed once, re-serialised), or None where it answers "Invalid JSON
    content": not UTF-8, not JSON, or nested deeper than Json.NET accepts."""
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return json.dumps(value) if _depth(value) <= MAX_JSON_DEPTH else None


def _depth(value: object) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in item)
    return deepest
