"""Timer triggers, as the host's timer listener runs them, and the admin API that runs a function once.

- The schedule is the binding's ``schedule`` with ``%Setting%`` resolved from the app settings: six-field
  NCRONTAB (seconds first; five fields are minutes first) or a ``hh:mm:ss`` interval, in UTC. One that does not
  resolve or parse leaves the function "in error", logged, while everything else runs, as the host does; so
  does ``AzureWebJobs.<name>.Disabled`` (that one without an error). The cron rules are croniter's.
- The schedule monitor (on by default when occurrences are a minute or more apart, or by ``useMonitor``)
  keeps ``Last``/``Next``/``LastUpdated`` in the hub. A host that starts after a ``Next`` that has passed fires
  once with ``IsPastDue`` (``UnscheduledInvocationReason: IsPastDue``), however many occurrences it missed;
  ``runOnStartup`` fires once at start otherwise. Invocations of one timer never overlap: the next
  occurrence is taken after the invocation ends.
- ``POST /admin/functions/{name}`` with ``{"input": ...}`` answers 202 and runs the function once in the
  background (the host's "programmatically called via the host APIs").
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from azure.functions import meta
from azure.functions.timer import TimerRequestConverter
from croniter import croniter

from . import logs
from .indexing import FunctionIndex, FunctionInfo
from .invoke import InvocationContext
from .settings import parse_function_timeout
from .store import Store

_SETTING = re.compile(r"%([^%]+)%")
PROGRAMMATIC = "This function was programmatically called via the host APIs."


class ScheduleError(Exception):
    """The schedule cannot be used; the message is the host's."""


@dataclass(frozen=True)
class Schedule:
    """When a timer fires: a cron expression or a fixed interval."""

    text: str
    interval: timedelta | None = None

    @classmethod
    def parse(cls, raw: str, env: dict[str, str] | os._Environ[str]) -> Schedule:
        def resolve(match: re.Match[str]) -> str:
            value = env.get(match.group(1))
            if value is None:
                raise ScheduleError(f"'%{match.group(1)}%' does not resolve to a value.")
            return value

        text = _SETTING.sub(resolve, raw).strip()
        if ":" in text and " " not in text:
            try:
                seconds = parse_function_timeout(text)
            except ValueError:
                seconds = None
            if seconds:
                return cls(text, timedelta(seconds=seconds))
        fields = text.split()
        if len(fields) in (5, 6) and croniter.is_valid(text, second_at_beginning=len(fields) == 6):
            return cls(text)
        raise ScheduleError(
            f"The schedule expression '{text}' was not recognized as a valid cron expression or timespan string."
        )

    def next_after(self, moment: datetime) -> datetime:
        if self.interval is not None:
            return moment + self.interval
        return croniter(self.text, moment, second_at_beginning=len(self.text.split()) == 6).get_next(datetime)

    def monitored_by_default(self) -> bool:
        first = self.next_after(datetime(2026, 1, 1, tzinfo=UTC))
        return self.next_after(first) - first >= timedelta(minutes=1)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _parse(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        return None


@dataclass
class Timer:
    info: FunctionInfo
    schedule: Schedule
    monitor: bool
    run_on_startup: bool


class TimerTriggers:
    """Runs the app's timer functions; ``db`` runs a store call on the hub's thread."""

    def __init__(
        self,
        index: FunctionIndex,
        db: Callable[..., Awaitable[Any]],
        store: Store,
        binding_json: Callable[[], str],
    ) -> None:
        self.index = index
        self.db = db
        self.store = store
        self.binding_json = binding_json
        self.tasks: set[asyncio.Task[None]] = set()
        self.timers: list[Timer] = []
        for info in index.all.values():
            if info.trigger.get("type") != "timerTrigger":
                continue
            try:
                schedule = Schedule.parse(str(info.trigger.get("schedule", "")), os.environ)
            except ScheduleError as exc:
                logs.error(
                    f"The '{info.name}' function is in error: Error indexing method 'Functions.{info.name}'. {exc}"
                )
                continue
            if os.environ.get(f"AzureWebJobs.{info.name}.Disabled", "").strip().lower() in ("true", "1"):
                logs.line(f"Function '{info.name}' is disabled")
                continue
            monitor = info.trigger.get("useMonitor")
            self.timers.append(
                Timer(
                    info,
                    schedule,
                    schedule.monitored_by_default() if monitor is None else bool(monitor),
                    bool(info.trigger.get("runOnStartup")),
                )
            )

    def start(self) -> None:
        for timer in self.timers:
            now = datetime.now(UTC)
            coming, moment = [], now
            for _ in range(5):
                moment = timer.schedule.next_after(moment)
                coming.append(moment.strftime("%m/%d/%Y %H:%M:%SZ"))
            logs.line(
                f"The next 5 occurrences of the '{timer.info.name}' schedule (Cron: '{timer.schedule.text}') will be:"
            )
            for item in coming:
                logs.line(item)
            self._spawn(self._run(timer))

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _status(self, timer: Timer) -> dict[str, Any] | None:
        if not timer.monitor:
            return None
        text = await self.db(self.store.timer_status, timer.info.name)
        return json.loads(text) if text else None

    async def _save(self, timer: Timer, last: datetime | None, following: datetime) -> dict[str, Any] | None:
        if not timer.monitor:
            return None
        status = {
            "Last": _iso(last) if last else "0001-01-01T00:00:00+00:00",
            "Next": _iso(following),
            "LastUpdated": _iso(datetime.now(UTC)),
        }
        await self.db(self.store.save_timer_status, timer.info.name, json.dumps(status))
        return status

    async def _run(self, timer: Timer) -> None:
        status = await self._status(timer)
        now = datetime.now(UTC)
        recorded_next = _parse((status or {}).get("Next"))
        last = _parse((status or {}).get("Last"))
        if recorded_next is not None and last is not None and last.year > 1:
            # The schedule changed since the status was written: the host takes the new schedule's next
            # occurrence after the last one as the one that was due.
            recorded_next = timer.schedule.next_after(last)
        if timer.monitor and recorded_next is not None and now > recorded_next:
            details = f"UnscheduledInvocationReason: IsPastDue, OriginalSchedule: {_iso(recorded_next)}"
            await self.invoke(timer.info, status, past_due=True, details=details)
            status = await self._save(timer, recorded_next, timer.schedule.next_after(datetime.now(UTC)))
        elif timer.run_on_startup:
            await self.invoke(timer.info, status, details="UnscheduledInvocationReason: RunOnStartup")
        upcoming = timer.schedule.next_after(datetime.now(UTC))
        if status is None or _parse(status.get("Next")) != upcoming:
            status = await self._save(timer, last, upcoming)
        while True:
            await asyncio.sleep(max(0.0, (upcoming - datetime.now(UTC)).total_seconds()))
            await self.invoke(timer.info, status)
            fired, upcoming = upcoming, timer.schedule.next_after(datetime.now(UTC))
            status = await self._save(timer, fired, upcoming)

    async def invoke(
        self,
        info: FunctionInfo,
        status: dict[str, Any] | None,
        past_due: bool = False,
        details: str = "",
        reason: str | None = None,
    ) -> None:
        """Call a timer function once, as the worker does, with the host's log lines."""
        invocation = str(uuid.uuid4())
        reason = reason or f"Timer fired at {datetime.now(UTC).isoformat()}"
        logs.line(f"Executing 'Functions.{info.name}' (Reason='{reason}', Id={invocation})")
        if details:
            logs.line(f"Trigger Details: {details}")
        payload = json.dumps({"Schedule": {"AdjustForDST": True}, "ScheduleStatus": status, "IsPastDue": past_due})
        kwargs: dict[str, Any] = {}
        for binding in info.bindings:
            name = str(binding.get("name"))
            if name == "$return":
                continue
            kind = binding.get("type")
            if kind == "timerTrigger":
                kwargs[name] = TimerRequestConverter.decode(meta.Datum(payload, "json"), trigger_metadata=None)
            elif kind == "durableClient":
                kwargs[name] = self.binding_json()
            else:
                kwargs[name] = None
        if info.wants_context:
            kwargs["context"] = InvocationContext(info.name, invocation)
        started = time.perf_counter()
        try:
            if info.is_async:
                await info.callable(**kwargs)
            else:
                await asyncio.get_running_loop().run_in_executor(None, lambda: info.callable(**kwargs))
        except Exception as exc:
            logs.executed(info.name, invocation, time.perf_counter() - started, f"{type(exc).__name__}: {exc}")
            logs.error(f"function '{info.name}' raised:\n{traceback.format_exc()}")
            return
        logs.executed(info.name, invocation, time.perf_counter() - started)

    async def admin_invoke(self, request: web.Request, name: str) -> web.Response:
        """``POST /admin/functions/{name}``: 202 and one run in the background; 404 for an unknown function."""
        info = next((i for n, i in self.index.all.items() if n.lower() == name.lower()), None)
        if info is None:
            return web.Response(status=404)
        try:
            body = json.loads(await request.read() or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return web.Response(status=400)
        if info.trigger.get("type") != "timerTrigger":
            return web.json_response(
                {"Message": f"devhost runs only timer functions through the admin API; '{info.name}' is {info.kind}."},
                status=400,
            )
        timer = next((t for t in self.timers if t.info is info), None)
        status = await self._status(timer) if timer is not None else None
        self._spawn(self.invoke(info, status, reason=PROGRAMMATIC))
        return web.Response(status=202)
