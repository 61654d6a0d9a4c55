"""HTTP starter: ``POST /orchestrators/{functionName}`` validates the request, then starts it.

It starts a backup (E2_BackupSiteContent), a restore (E2_RestoreSiteContent), a verify
(E2_VerifySiteBackup) or a prune (E2_PruneBackups). Everything is checked before anything starts, and every
error is a JSON body ``{"error": "..."}`` with a status a client can act on.
"""

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from site_backup.errors import DirectoryNotAllowed, InvalidBackupRequest
from site_backup.prune import checked_prune
from site_backup.recovery import checked_restore, checked_verify
from site_backup.recovery_messages import RestoreRequest, VerifyRequest
from site_backup.request import parse_json_body
from site_backup.runs import BackupNotFound, find_run
from site_backup.service import checked_request

from .names import BACKUP_ORCHESTRATOR, PRUNE_ORCHESTRATOR, RESTORE_ORCHESTRATOR, STARTER_ROUTE, VERIFY_ORCHESTRATOR

bp = df.Blueprint()
log = logging.getLogger(__name__)

# Orchestrators meant to be started over HTTP, and how each one's request is checked; looked up by lower-case
# name (function names are case-insensitive).
CHECKS: dict[str, Callable[[object], Any]] = {
    BACKUP_ORCHESTRATOR: checked_request,
    RESTORE_ORCHESTRATOR: checked_restore,
    VERIFY_ORCHESTRATOR: checked_verify,
    PRUNE_ORCHESTRATOR: checked_prune,
}
STARTABLE = {name.lower(): name for name in CHECKS}
# A request is a directory and a few patterns: anything bigger is refused before it is parsed.
MAX_BODY_BYTES = 32 * 1024
# Checking the directory touches the file system; a hung mount answers 503 instead of holding the request.
CHECK_SECONDS = 30.0


# Every method is routed here, so that a wrong one gets a JSON answer saying what to do instead of the host's
# empty 404.
METHODS = ["POST", "GET", "PUT", "PATCH", "DELETE"]


@bp.route(route=STARTER_ROUTE, methods=METHODS, auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Start a backup of a directory (a JSON string or object), or a restore or a verify of a backup."""
    if req.method.upper() != "POST":
        response = json_error(405, f"Use POST to start a backup; {req.method.upper()} does nothing here.")
        response.headers["Allow"] = "POST"
        return response
    requested = req.route_params.get("functionName", "")
    name = STARTABLE.get(requested.lower())
    if name is None:
        known = ", ".join(repr(n) for n in CHECKS)
        return json_error(404, f"No orchestrator {requested!r} can be started here; use one of {known}.")
    body = req.get_body()
    if len(body) > MAX_BODY_BYTES:
        return json_error(
            413, f"The request body is {len(body)} bytes; a backup request may have at most {MAX_BODY_BYTES}."
        )
    try:
        # Parsing and the directory checks run off the event loop, so nothing a request holds stalls the host.
        request = await asyncio.wait_for(asyncio.to_thread(_check, CHECKS[name], body), CHECK_SECONDS)
    except InvalidBackupRequest as exc:
        return json_error(400, str(exc))
    except DirectoryNotAllowed as exc:
        return json_error(403, str(exc))
    except TimeoutError:
        return json_error(503, "Checking the directory took too long (is its file system responding?). Try again.")
    except Exception:
        log.exception("Checking a backup request failed.")
        return json_error(500, "The request could not be checked because of an internal error; it was logged.")
    if isinstance(request, (RestoreRequest, VerifyRequest)):
        # A backup that does not exist is a 404 now, not a failed orchestration later.
        try:
            await asyncio.wait_for(find_run(request.root, request.backup), CHECK_SECONDS)
        except BackupNotFound as exc:
            return json_error(404, str(exc))
        except Exception:
            log.exception("Reading the backup catalog failed.")
            return json_error(503, "The backup catalog could not be read (is the storage reachable?). Try again.")
    try:
        instance_id = await client.start_new(name, client_input=request.to_json())
    except Exception:
        log.exception("Starting %s failed.", name)
        return json_error(
            503,
            "The backup could not be started: the Durable Functions runtime did not accept it. Try again in a moment.",
        )
    log.info("Started %s instance %s: %s.", name, instance_id, json.dumps(request.to_json()))
    return client.create_check_status_response(req, instance_id)


def _check(check: Callable[[object], Any], body: bytes) -> Any:
    return check(parse_json_body(body))


def json_error(status: int, message: str) -> func.HttpResponse:
    """An error response with a JSON body and no internals."""
    return func.HttpResponse(json.dumps({"error": message}), status_code=status, mimetype="application/json")
