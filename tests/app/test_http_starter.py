"""The HTTP starter, called as the worker calls it, against a recording RPC endpoint.

The RPC endpoint is a small real HTTP server standing in for the Durable extension's
``rpcBaseUrl``: these tests cover the starter alone and must see whether anything was started
(the end-to-end tests run the same starter under devhost).
"""

import asyncio
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import azure.functions as func
import pytest
from aiohttp import web

from backup_cli.processes import free_port
from tests.support.worker import app_functions, close_connections

WEBHOOK = "http://127.0.0.1:7071/runtime/webhooks/durabletask"


@dataclass
class RecordingRpc:
    """Records every request; answers start requests like the extension (202 + check-status body)."""

    port: int
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    fail: bool = False

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        self.requests.append((request.method, request.path, body))
        if self.fail:
            return web.json_response({"Message": "Something went wrong while processing your request"}, status=500)
        return web.json_response({"id": "0123456789abcdef0123456789abcdef"}, status=202)

    def binding(self) -> str:
        query = "taskHub=SiteBackupHub&connection=Storage"
        management = {
            "id": "INSTANCEID",
            "statusQueryGetUri": f"{WEBHOOK}/instances/INSTANCEID?{query}",
            "sendEventPostUri": f"{WEBHOOK}/instances/INSTANCEID/raiseEvent/{{eventName}}?{query}",
            "terminatePostUri": f"{WEBHOOK}/instances/INSTANCEID/terminate?reason={{text}}&{query}",
            "rewindPostUri": f"{WEBHOOK}/instances/INSTANCEID/rewind?reason={{text}}&{query}",
            "purgeHistoryDeleteUri": f"{WEBHOOK}/instances/INSTANCEID?{query}",
            "restartPostUri": f"{WEBHOOK}/instances/INSTANCEID/restart?{query}",
            "suspendPostUri": f"{WEBHOOK}/instances/INSTANCEID/suspend?reason={{text}}&{query}",
            "resumePostUri": f"{WEBHOOK}/instances/INSTANCEID/resume?reason={{text}}&{query}",
        }
        return json.dumps(
            {
                "taskHubName": "SiteBackupHub",
                "connectionName": None,
                "creationUrls": {
                    "createNewInstancePostUri": f"{WEBHOOK}/orchestrators/{{functionName}}[/{{instanceId}}]",
                    "createAndWaitOnNewInstancePostUri": f"{WEBHOOK}/orchestrators/{{functionName}}[/{{instanceId}}]"
                    "?timeout={timeoutInSeconds}&pollingInterval={intervalInSeconds}",
                },
                "managementUrls": management,
                "baseUrl": WEBHOOK,
                "requiredQueryStringParameters": "",
                "rpcBaseUrl": f"http://127.0.0.1:{self.port}/durabletask/",
                "httpBaseUrl": None,
            }
        )


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One loop for the module: the SDK's HTTP session is bound to the first loop that uses it, and so are
    the app's storage connections; both are closed with it."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.run_until_complete(close_connections())
    loop.close()


@pytest.fixture(scope="module")
def rpc(loop) -> Iterator[RecordingRpc]:
    recorder = RecordingRpc(free_port())
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recorder.handle)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", recorder.port).start())
    yield recorder
    loop.run_until_complete(runner.cleanup())


@pytest.fixture
def roots(tmp_path, monkeypatch, rpc) -> Path:
    (tmp_path / "site" / "wwwroot").mkdir(parents=True)
    (tmp_path / "site" / "wwwroot" / "index.html").write_text("<h1>hi</h1>")
    monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", str(tmp_path / "site"))
    rpc.requests.clear()
    rpc.fail = False
    return tmp_path / "site"


def call_starter(
    loop, rpc: RecordingRpc, body: bytes, function_name: str = "E2_BackupSiteContent", method: str = "POST"
) -> func.HttpResponse:
    request = func.HttpRequest(
        method=method,
        url=f"http://localhost:7071/orchestrators/{function_name}",
        body=body,
        headers={"Content-Type": "application/json"},
        route_params={"functionName": function_name},
    )
    starter = app_functions()["http_start"].get_user_function()
    return loop.run_until_complete(starter(req=request, client=rpc.binding()))


def error_of(response: func.HttpResponse) -> str:
    assert response.mimetype == "application/json"
    body = json.loads(response.get_body())
    assert list(body) == ["error"]
    assert "Traceback" not in body["error"]
    return body["error"]


BAD_BODIES = [
    (b"", 400, "body is empty"),
    (b"   ", 400, "body is empty"),
    (b"/home/site/wwwroot", 400, "not valid JSON"),
    (b"\xff\xfe", 400, "not valid JSON"),
    (b"42", 400, "got a JSON number"),
    (b'["/x"]', 400, "got a JSON array"),
    (b"null", 400, "directory to back up is required"),
    (b"{}", 400, "needs a 'rootDirectory' key"),
    (b'{"rootDirectory": 7}', 400, "must be a string"),
    (b'{"rootDirectory": "/x", "recurse": true}', 400, "Unknown option(s) 'recurse'"),
    (b'{"rootDirectory": "/x", "include": "  "}', 400, "'include' must be a list"),
    (b'""', 400, "directory is empty"),
    (b'"site/wwwroot"', 400, "must be an absolute path"),
    (b"[" * 30_000, 400, "nests JSON too deeply"),
    (b'"/tmp/\\ud800"', 400, "cannot be used"),
    (b'{"rootDirectory": "/x", "verify": "yes"}', 400, "'verify' must be true or false"),
    (b'{"rootDirectory": "/x", "exclude": ["' + b"*a" * 300 + b'"]}', 400, "at most 512"),
    (json.dumps({"rootDirectory": "/x", "exclude": ["x" * 500] * 80}).encode(), 413, "at most 32768"),
]


@pytest.mark.parametrize(("body", "status", "message"), BAD_BODIES)
def test_bad_bodies_get_400_and_start_nothing(loop, rpc, roots, body, status, message):
    response = call_starter(loop, rpc, body)
    assert response.status_code == status
    assert message in error_of(response)
    assert rpc.requests == []


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_other_methods_get_a_json_405_that_says_to_post(loop, rpc, roots, method):
    response = call_starter(loop, rpc, b"", method=method)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert "Use POST" in error_of(response)
    assert rpc.requests == []


def test_directory_checks(loop, rpc, roots):
    cases = [
        (json.dumps(str(roots / "missing")), 400, "does not exist"),
        (json.dumps(str(roots / "wwwroot" / "index.html")), 400, "is not a directory"),
        (json.dumps("/etc"), 403, "outside the allowed roots"),
        (json.dumps(f"{roots}/wwwroot/../.."), 403, "outside the allowed roots"),
        (json.dumps("/"), 403, "BACKUP_ALLOWED_ROOTS"),
    ]
    cases.append((json.dumps(str(roots / ("x" * 300))), 400, "cannot be used"))
    cases.append((json.dumps(str(roots) + "/d" * 2_500), 400, "cannot be used"))
    (roots / "wwwroot" / "link-out").symlink_to(roots.parent)
    cases.append((json.dumps(str(roots / "wwwroot" / "link-out")), 403, "outside the allowed roots"))
    for body, status, message in cases:
        response = call_starter(loop, rpc, body.encode())
        assert response.status_code == status, body
        assert message in error_of(response), body
    assert rpc.requests == []


@contextmanager
def checked_as_an_ordinary_user() -> Iterator[None]:
    """Within the block, access checks answer as for an ordinary user, also when the tests run as root.

    The starter asks ``os.access``, which the kernel answers for the process's *real* user id, and for root its
    capabilities let it read and search any directory whatever its mode. So when running as root, only the real
    user id is set to ``nobody`` for the block: the kernel itself then refuses a mode-0 directory, as it does for
    an app running as an ordinary user, while the effective (and saved) user id stays root, so everything else in
    this process (files, sockets, threads) works as before and the real id can be set back. Nothing is mocked.
    """
    if os.geteuid() != 0:
        yield  # an ordinary user already: its own access checks are the real ones
        return
    real = os.getuid()
    os.setresuid(NOBODY, -1, -1)
    try:
        yield
    finally:
        os.setresuid(real, -1, -1)
    assert os.getresuid() == (real, 0, 0)


NOBODY = 65534


@pytest.fixture
def searchable_roots(roots, monkeypatch) -> Iterator[Path]:
    """An allowed root that an ordinary user can reach: pytest's own temp folders are private to their owner."""
    top = Path(tempfile.mkdtemp(prefix="starter-"))
    try:
        top.chmod(0o755)
        (top / "site").mkdir(mode=0o755)
        monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", str(top / "site"))
        yield top / "site"
    finally:
        shutil.rmtree(top)


def test_unreadable_directory(loop, rpc, searchable_roots):
    locked = searchable_roots / "locked"
    locked.mkdir()
    readable = searchable_roots / "readable"
    readable.mkdir(mode=0o755)
    locked.chmod(0)
    try:
        with checked_as_an_ordinary_user():
            assert os.access(readable, os.R_OK | os.X_OK) and not os.access(locked, os.R_OK | os.X_OK)
            response = call_starter(loop, rpc, json.dumps(str(locked)).encode())
            assert rpc.requests == []  # nothing started for the unreadable directory
            control = call_starter(loop, rpc, json.dumps(str(readable)).encode())
    finally:
        locked.chmod(0o755)
    assert response.status_code == 400
    assert "not readable" in error_of(response)
    assert error_of(response) == f"The directory {str(locked)!r} is not readable by the function app."
    # The same check, as the same user, lets its readable sibling through: the refusal is the directory's own.
    assert control.status_code == 202
    [(_, _, started)] = rpc.requests
    assert json.loads(json.loads(started))["rootDirectory"] == str(readable)


def test_outside_the_roots_is_403_before_any_existence_check(loop, rpc, roots, tmp_path, monkeypatch):
    """README: 403 for a path outside the allowed roots, checked after resolving '..' and symlinks and before
    existence, so that nothing leaks: what does not exist there is 403 too (not the 400 'does not exist'), and
    the answer reads the same whether the path exists or not, is a file or a directory."""
    (tmp_path / "outside-file.txt").write_text("not a directory")
    (tmp_path / "outside-dir").mkdir()
    missing = f"/nonexistent-{uuid.uuid4().hex}/site"
    (roots / "wwwroot" / "dangling-out").symlink_to(f"{tmp_path}/missing-{uuid.uuid4().hex}")
    paths = [
        str(tmp_path / "outside-dir"),  # exists, a directory
        str(tmp_path / "outside-file.txt"),  # exists, not a directory
        missing,  # does not exist at all
        f"{roots}/../missing-{uuid.uuid4().hex}",  # does not exist, reached by climbing out
        str(roots / "wwwroot" / "dangling-out"),  # a link inside the roots to nothing, outside
    ]
    answers = {}
    for path in paths:
        response = call_starter(loop, rpc, json.dumps(path).encode())
        assert response.status_code == 403, path
        answers[path] = error_of(response)
        assert "outside the allowed roots" in answers[path], path
        assert "does not exist" not in answers[path] and "not a directory" not in answers[path], path
    shown = {error.split(" is outside", 1)[1] for error in answers.values()}
    assert len(shown) == 1  # past the path itself, one and the same answer
    assert answers[missing] == (
        f"{missing!r} is outside the allowed roots ({roots}). Back up a directory under one of them, "
        "or add its root to the BACKUP_ALLOWED_ROOTS app setting."
    )
    # The same for a restore, a verify and a prune: 403 before the backup is looked for (which would be a 404).
    monkeypatch.setenv("BACKUP_RETENTION", "last=1")
    inside = str(roots / "wwwroot")
    for name, body in [
        ("E2_RestoreSiteContent", {"rootDirectory": missing, "targetDirectory": str(roots / "r"), "backup": "latest"}),
        ("E2_RestoreSiteContent", {"rootDirectory": inside, "targetDirectory": missing, "backup": "latest"}),
        ("E2_VerifySiteBackup", {"rootDirectory": missing, "backup": "latest"}),
        ("E2_PruneBackups", {"rootDirectory": missing}),
    ]:
        response = call_starter(loop, rpc, json.dumps(body).encode(), function_name=name)
        assert response.status_code == 403, (name, body)
        assert "outside the allowed roots" in error_of(response), (name, body)
    assert rpc.requests == []


def test_only_the_backup_orchestrator_can_be_started(loop, rpc, roots):
    response = call_starter(loop, rpc, json.dumps(str(roots)).encode(), function_name="E2_GetFileList")
    assert response.status_code == 404
    assert "E2_BackupSiteContent" in error_of(response)
    assert rpc.requests == []


def test_valid_request_starts_the_orchestration(loop, rpc, roots):
    response = call_starter(loop, rpc, json.dumps(f"{roots}/wwwroot/").encode())
    assert response.status_code == 202
    assert response.headers["Location"].startswith(
        "http://localhost:7071/runtime/webhooks/durabletask/instances/0123456789abcdef0123456789abcdef?"
    )
    assert response.headers["Retry-After"] == "10"
    assert json.loads(response.get_body())["id"] == "0123456789abcdef0123456789abcdef"
    [(method, path, body)] = rpc.requests
    assert (method, path) == ("POST", "/durabletask/orchestrators/E2_BackupSiteContent")
    started_with = json.loads(json.loads(body))  # the client double-encodes the input (reference §6)
    assert started_with == {"rootDirectory": str(roots / "wwwroot"), "include": [], "exclude": []}


def test_object_body_and_case_insensitive_name(loop, rpc, roots):
    body = {"rootDirectory": str(roots / "wwwroot"), "exclude": ["*.tmp"]}
    response = call_starter(loop, rpc, json.dumps(body).encode(), function_name="e2_backupsitecontent")
    assert response.status_code == 202
    [(_, path, sent)] = rpc.requests
    assert path == "/durabletask/orchestrators/E2_BackupSiteContent"
    assert json.loads(json.loads(sent))["exclude"] == ["*.tmp"]


def test_runtime_refusal_is_a_json_503(loop, rpc, roots):
    rpc.fail = True
    response = call_starter(loop, rpc, json.dumps(str(roots)).encode())
    assert response.status_code == 503
    assert "could not be started" in error_of(response)


def test_a_restore_or_verify_of_a_backup_that_does_not_exist_is_a_404(loop, rpc, roots, azurite, monkeypatch):
    monkeypatch.setenv("BACKUP_STORAGE", azurite.connection_string)
    monkeypatch.setenv("BACKUP_CATALOG_CONTAINER", f"catalog-{uuid.uuid4().hex[:12]}")
    site = str(roots / "wwwroot")
    restore = {"rootDirectory": site, "targetDirectory": str(roots / "restored"), "backup": "latest"}
    verify = {"rootDirectory": site, "backup": "2020-01-01T00:00:00Z"}
    for name, body in [("E2_RestoreSiteContent", restore), ("E2_VerifySiteBackup", verify)]:
        response = call_starter(loop, rpc, json.dumps(body).encode(), function_name=name)
        assert response.status_code == 404, name
        assert f"There is no backup of {site!r}" in error_of(response)
    assert rpc.requests == []


def test_a_prune_starts_with_the_policy_written_into_its_input_or_is_refused_without_one(loop, rpc, roots, monkeypatch):
    site = str(roots / "wwwroot")
    monkeypatch.delenv("BACKUP_RETENTION", raising=False)
    refused = call_starter(loop, rpc, json.dumps({"rootDirectory": site}).encode(), function_name="E2_PruneBackups")
    assert refused.status_code == 400 and "BACKUP_RETENTION" in error_of(refused)
    outside = {"rootDirectory": "/etc", "retention": "last=1"}
    assert call_starter(loop, rpc, json.dumps(outside).encode(), function_name="E2_PruneBackups").status_code == 403
    assert rpc.requests == []
    monkeypatch.setenv("BACKUP_RETENTION", "daily=7,last=2")
    started = call_starter(loop, rpc, json.dumps({"rootDirectory": site, "dryRun": True}).encode(), "E2_PruneBackups")
    assert started.status_code == 202
    [(_, path, sent)] = rpc.requests
    assert path == "/durabletask/orchestrators/E2_PruneBackups"
    assert json.loads(json.loads(sent)) == {"rootDirectory": site, "retention": "last=2,daily=7", "dryRun": True}


def test_a_restore_target_through_a_link_out_of_the_roots_is_403_whether_or_not_it_exists(loop, rpc, roots, tmp_path):
    """The target is resolved like a backup's directory: a link inside the roots that leads out makes it
    outside, and the answer is the same for an existing and a missing path out there (nothing leaks)."""
    outside = tmp_path / "elsewhere"
    (outside / "exists").mkdir(parents=True)
    (roots / "wwwroot" / "link-out").symlink_to(outside)
    answers = []
    for target in ("link-out/exists/new", "link-out/missing/new", "link-out/exists"):
        body = {"rootDirectory": str(roots / "wwwroot"), "targetDirectory": f"{roots}/wwwroot/{target}"}
        response = call_starter(loop, rpc, json.dumps({**body, "backup": "latest"}).encode(), "E2_RestoreSiteContent")
        assert response.status_code == 403, target
        answers.append(error_of(response).split(" is outside", 1)[1])
    assert len(set(answers)) == 1
    assert rpc.requests == []
