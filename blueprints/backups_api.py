"""``GET /backups?rootDirectory=...`` and ``GET /backups/{id}``: the sealed runs of a root, from the catalog."""

from __future__ import annotations

import asyncio
import json
import logging

import azure.durable_functions as df
import azure.functions as func

from site_backup.errors import DirectoryNotAllowed, InvalidBackupRequest
from site_backup.fsaccess import containing_root, normalised
from site_backup.recovery import resolved_root
from site_backup.roots import allowed_roots
from site_backup.runs import list_runs, summary_of

from .http_starter import json_error
from .names import BACKUPS_ROUTE

bp = df.Blueprint()
log = logging.getLogger(__name__)
MAX_TOP = 1000


@bp.route(route=BACKUPS_ROUTE, methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def list_backups(req: func.HttpRequest) -> func.HttpResponse:
    """The sealed backups of a root, newest first (``top``: at most that many, 50 by default)."""
    root = req.params.get("rootDirectory")
    try:
        top = int(req.params.get("top", "50"))
        if not 1 <= top <= MAX_TOP:
            raise ValueError
    except ValueError:
        return json_error(400, f"'top' must be a whole number from 1 to {MAX_TOP}.")
    try:
        checked = await asyncio.to_thread(_checked_root, root)
        runs = await list_runs(checked, top)
    except InvalidBackupRequest as exc:
        return json_error(400, str(exc))
    except DirectoryNotAllowed as exc:
        return json_error(403, str(exc))
    except Exception:
        log.exception("Listing the backups of %s failed.", root)
        return json_error(500, "The backups could not be listed because of an internal error; it was logged.")
    body = json.dumps([r.to_json() for r in runs])
    return func.HttpResponse(body, status_code=200, mimetype="application/json")


@bp.route(route=f"{BACKUPS_ROUTE}/{{id}}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def show_backup(req: func.HttpRequest) -> func.HttpResponse:
    """One sealed backup's summary, by its id."""
    run = req.route_params.get("id", "")
    if not run or len(run) > 256 or not run.isprintable() or any(c in run for c in "/\\?#"):
        return json_error(400, f"{run!r} is not a backup id; GET /backups?rootDirectory=... lists them.")
    try:
        summary = await summary_of(run)
    except Exception:
        log.exception("Reading backup %s failed.", run)
        return json_error(500, "The backup could not be read because of an internal error; it was logged.")
    if summary is None:
        return json_error(404, f"There is no backup {run!r}; GET /backups?rootDirectory=... lists them.")
    return func.HttpResponse(json.dumps(summary.to_json()), status_code=200, mimetype="application/json")


def _checked_root(root: str | None) -> str:
    if not root:
        raise InvalidBackupRequest("Say which directory: GET /backups?rootDirectory=/home/site/wwwroot.")
    try:
        resolved = resolved_root(root)
    except ValueError as exc:
        raise InvalidBackupRequest(f"'rootDirectory' must be an absolute path: {exc}") from exc
    containing_root(normalised(resolved), allowed_roots())
    return resolved
