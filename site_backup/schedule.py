"""Scheduled backups: which roots a timer tick backs up, and the ids that make each root a singleton.

The timer's schedule is the app setting ``BACKUP_SCHEDULE`` (six-field NCRONTAB, read by the host). Each tick
backs up the roots in ``BACKUP_SCHEDULE_ROOTS`` (``os.pathsep``-separated), each one checked like a request,
with the options in ``BACKUP_SCHEDULE_OPTIONS`` (a JSON object: ``include``, ``exclude``, ``verify``), and then
prunes them by ``BACKUP_RETENTION`` if it is set. A root's scheduled runs share one orchestration instance id,
derived from the root, so a tick that finds it still running skips that root.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .catalog import root_key
from .errors import BackupError
from .messages import _object, _optional
from .prune import RETENTION_SETTING
from .request import BackupRequest, parse_backup_request
from .retention import RetentionPolicy
from .service import checked_request

ROOTS_SETTING = "BACKUP_SCHEDULE_ROOTS"
OPTIONS_SETTING = "BACKUP_SCHEDULE_OPTIONS"
SINGLETON_PREFIX = "scheduled-"


@dataclass(frozen=True)
class ScheduledRun:
    """E2_BackupAndPrune's input: the backup request of one root, and the policy to prune it by (if any)."""

    request: BackupRequest
    retention: str | None = None

    @property
    def instance_id(self) -> str:
        return singleton_id(self.request.root_directory)

    def to_json(self) -> dict[str, Any]:
        return {"request": self.request.to_json(), "retention": self.retention}

    @classmethod
    def from_json(cls, value: object) -> ScheduledRun:
        data = _object(value, "scheduled run")
        return cls(parse_backup_request(data.get("request")), _optional(data, "retention", str, "scheduled run"))


def singleton_id(root: str) -> str:
    """The orchestration instance id of a root's scheduled runs (the same root, the same id)."""
    return SINGLETON_PREFIX + root_key(root)


def backup_run_id(instance_id: str, started: datetime) -> str:
    """The id of one scheduled backup (its sub-orchestration, and its run in the catalog): unique per tick."""
    return f"{instance_id}-{started.strftime('%Y%m%dT%H%M%S%fZ')}"


def scheduled_runs(env: Mapping[str, str] | None = None) -> tuple[list[ScheduledRun], list[str]]:
    """The runs a tick starts, and what is wrong with the settings (each problem skips only what it concerns);
    blocking (file system)."""
    env = os.environ if env is None else env
    problems: list[str] = []
    options: dict[str, Any] = {}
    text = env.get(OPTIONS_SETTING, "").strip()
    if text:
        try:
            parsed = json.loads(text)
            if not isinstance(parsed, dict) or "rootDirectory" in parsed:
                raise ValueError("expected an object of include, exclude and verify")
            options = parsed
        except ValueError as exc:
            problems.append(f"{OPTIONS_SETTING} is not a JSON object of backup options ({exc}); it is ignored.")
    retention: str | None = env.get(RETENTION_SETTING, "").strip() or None
    if retention is not None:
        try:
            retention = str(RetentionPolicy.parse(retention))
        except BackupError as exc:
            problems.append(f"{RETENTION_SETTING}: {exc} Nothing is pruned until it is fixed.")
            retention = None
    runs: list[ScheduledRun] = []
    roots = [r.strip() for r in env.get(ROOTS_SETTING, "").split(os.pathsep) if r.strip()]
    if not roots:
        problems.append(f"{ROOTS_SETTING} names no directory: a scheduled backup has nothing to back up.")
    for root in dict.fromkeys(roots):
        try:
            runs.append(ScheduledRun(checked_request({"rootDirectory": root, **options}), retention))
        except BackupError as exc:
            problems.append(f"{ROOTS_SETTING}: {root!r} is not backed up: {exc}")
    return runs, problems
