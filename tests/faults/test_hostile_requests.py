"""Hostile and broken requests, through the app's starter and through the Durable webhook door: each gets the
status and message it should, as JSON, starts nothing it should not, and never hangs the host."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from harness import Scenario, scenario

WEBHOOK = "/runtime/webhooks/durabletask"
START = "/orchestrators/E2_BackupSiteContent"


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> Iterator[Scenario]:
    tmp = tmp_path_factory.mktemp("hostile")
    with scenario(tmp, {"index.html": b"<h1>hi</h1>", "a/b.txt": b"b"}) as running:
        (tmp / "afile").write_text("not a directory")
        (running.root / "link-out").symlink_to("/etc")
        running.start_host()
        yield running


def _root(case: Scenario) -> str:
    return str(case.root)


# (name, body as bytes or a function of the scenario, expected status, expected words in the error)
STARTER_CASES: list[tuple[str, object, int, str]] = [
    ("empty body", b"", 400, "body is empty"),
    ("whitespace", b"   \n", 400, "body is empty"),
    ("unquoted path", b"/home/site/wwwroot", 400, "not valid JSON"),
    ("not UTF-8", b'"\xff\xfe"', 400, "not valid JSON"),
    ("number", b"42", 400, "got a JSON number"),
    ("infinite number", b"1e999999", 400, "got a JSON number"),
    ("huge integer", b"9" * 5000, 400, "not valid JSON"),
    ("array", b'["/x"]', 400, "got a JSON array"),
    ("boolean", b"true", 400, "got a JSON boolean"),
    ("null", b"null", 400, "directory to back up is required"),
    ("empty object", b"{}", 400, "needs a 'rootDirectory' key"),
    ("root not a string", b'{"rootDirectory": 7}', 400, "must be a string"),
    ("root null", b'{"rootDirectory": null}', 400, "must be a string"),
    ("unknown option", b'{"rootDirectory": "/x", "recurse": true}', 400, "Unknown option(s) 'recurse'"),
    ("include not a list", b'{"rootDirectory": "/x", "include": 5}', 400, "'include' must be a list"),
    ("include with a number", b'{"rootDirectory": "/x", "include": ["*.txt", 3]}', 400, "non-empty glob patterns"),
    ("blank exclude", b'{"rootDirectory": "/x", "exclude": ["  "]}', 400, "non-empty glob patterns"),
    ("include of a directory", b'{"rootDirectory": "/x", "include": ["logs/"]}', 400, "'logs/**'"),
    ("reversed range", b'{"rootDirectory": "/x", "exclude": ["[z-a]"]}', 400, "is not valid"),
    (
        "too many patterns",
        json.dumps({"rootDirectory": "/x", "exclude": [f"*.{i}" for i in range(65)]}).encode(),
        400,
        "at most 64",
    ),
    ("pattern too long", json.dumps({"rootDirectory": "/x", "exclude": ["a" * 513]}).encode(), 400, "at most 512"),
    ("verify not a boolean", b'{"rootDirectory": "/x", "verify": "yes"}', 400, "'verify' must be true or false"),
    ("empty directory", b'""', 400, "directory is empty"),
    ("relative path", b'"site/wwwroot"', 400, "must be an absolute path"),
    ("NUL in the path", b'"/tmp/a\\u0000b"', 400, "NUL"),
    ("lone surrogate", b'"/tmp/\\ud800"', 400, "cannot be used"),
    ("outside the roots", b'"/etc"', 403, "outside the allowed roots"),
    ("climbing out", lambda c: json.dumps(f"{c.root}/../../..").encode(), 403, "outside the allowed roots"),
    ("the file-system root", b'"/"', 403, "outside the allowed roots"),
    ("symlink out", lambda c: json.dumps(str(c.root / "link-out")).encode(), 403, "outside the allowed roots"),
    ("missing directory", lambda c: json.dumps(str(c.root / "missing")).encode(), 400, "does not exist"),
    ("a file", lambda c: json.dumps(str(c.root.parent / "afile")).encode(), 400, "is not a directory"),
    ("name too long", lambda c: json.dumps(str(c.root / ("x" * 300))).encode(), 400, "cannot be used"),
    ("path too long", lambda c: json.dumps(str(c.root) + "/d" * 2500).encode(), 400, "cannot be used"),
    (
        "body over 32 KiB",
        json.dumps({"rootDirectory": "/x", "exclude": ["y" * 500] * 80}).encode(),
        413,
        "at most 32768",
    ),
    ("deeply nested", b"[" * 30_000, 400, "nests JSON too deeply"),
]


@pytest.mark.parametrize(("name", "body", "status", "words"), STARTER_CASES, ids=[c[0] for c in STARTER_CASES])
def test_the_starter_refuses_with_json(case, name, body, status, words):
    data = body(case) if callable(body) else body
    before = _instances(case)
    response = requests.post(case.host.base_url + START, data=data, timeout=60)
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert words in error and "Traceback" not in error
    assert _instances(case) == before  # nothing started


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_other_methods_on_the_starter(case, method):
    response = requests.request(method, case.host.base_url + START, timeout=60)
    assert (response.status_code, response.headers["Allow"]) == (405, "POST")
    assert "Use POST" in response.json()["error"]


@pytest.mark.parametrize("name", ["Other", "E2_CopyFileToBlob", "E2_GetFileList"])
def test_only_the_backup_can_be_started_through_the_starter(case, name):
    response = requests.post(f"{case.host.base_url}/orchestrators/{name}", data=b'"/x"', timeout=60)
    assert response.status_code == 404
    assert "E2_BackupSiteContent" in response.json()["error"]


def test_a_pathological_but_valid_pattern_completes_at_once(case):
    body = {"rootDirectory": _root(case), "include": ["*a*a*a*a*a*a*a*a*a*a*a*ab"]}
    (case.root / ("a" * 200)).write_text("aaaa")
    response = requests.post(case.host.base_url + START, data=json.dumps(body), timeout=60)
    assert response.status_code == 202
    final = case.wait(response.json()["id"], deadline_s=60)
    assert (final["runtimeStatus"], final["output"]) == ("Completed", 0)


# Through the webhook door: the app's starter is bypassed, so the orchestration itself must refuse.
PLAN = {
    "tuning": None,
    "cursor": {"after": None, "marker": None, "nextUnit": 0},
    "listingDone": False,
    "ready": [],
    "large": [],
    "done": {"files": 0, "bytes": 0, "uploaded": 0, "unchanged": 0, "vanished": 0, "failed": 0, "failures": []},
    "listed": {"files": 0, "bytes": 0},
    "totals": None,
    "counted": True,
    "generation": 2,
    "outage": None,
}
WEBHOOK_FAILURES: list[tuple[str, object, str]] = [
    ("outside the roots", "/etc", "outside the allowed roots"),
    ("relative path", "site", "must be an absolute path"),
    ("a number", 12, "got a JSON number"),
    ("unknown option", {"rootDirectory": "/x", "deep": True}, "Unknown option(s) 'deep'"),
    (
        "a forged tally",
        lambda c: {
            "request": {"rootDirectory": _root(c)},
            "plan": {**PLAN, "done": {**PLAN["done"], "files": 5, "bytes": 10**12}},
        },
        "more files done than listed",
    ),
    (
        "a negative tally",
        lambda c: {
            "request": {"rootDirectory": _root(c)},
            "plan": {**PLAN, "done": {**PLAN["done"], "bytes": -999999}},
        },
        "must be a non-negative integer",
    ),
    (
        "a cursor outside the root",
        lambda c: {
            "request": {"rootDirectory": _root(c)},
            "plan": {**PLAN, "cursor": {"after": "/etc/passwd", "nextUnit": 0}},
        },
        "not a name below the root",
    ),
    (
        "a forged manifest",
        lambda c: {
            "request": {"rootDirectory": _root(c)},
            "plan": {
                **PLAN,
                "listingDone": True,
                "ready": [{"number": 1, "manifest": "work/x/../../etc/passwd", "files": 1, "bytes": 1}],
                "listed": {"files": 1, "bytes": 1},
            },
        },
        "is not the name of a manifest",
    ),
]


@pytest.mark.parametrize(("name", "body", "words"), WEBHOOK_FAILURES, ids=[c[0] for c in WEBHOOK_FAILURES])
def test_the_webhook_door_starts_but_the_orchestration_refuses(case, name, body, words):
    data = body(case) if callable(body) else body
    response = requests.post(
        f"{case.host.base_url}{WEBHOOK}/orchestrators/E2_BackupSiteContent",
        data=json.dumps(data),
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 202
    final = case.wait(response.json()["id"], deadline_s=120)
    assert final["runtimeStatus"] == "Failed"
    assert words in final["output"] and "Traceback" not in final["output"]
    container = case.storage.container(case.container)
    assert not container.exists() or [b.name for b in container.list_blobs(name_starts_with="etc")] == []


@pytest.mark.parametrize(
    ("name", "data", "status"),
    [
        ("an activity", ("E2_CopyFileToBlob", b'"/etc/passwd"'), 400),
        ("a listing", ("E2_GetFileList", b'"/etc"'), 400),
        ("invalid JSON", ("E2_BackupSiteContent", b"{nope"), 400),
        ("deep JSON", ("E2_BackupSiteContent", b"[" * 100 + b"]" * 100), 400),
        ("not UTF-8", ("E2_BackupSiteContent", b'"\xff"'), 400),
    ],
)
def test_the_webhook_door_refuses_before_starting(case, name, data, status):
    function, body = data
    response = requests.post(
        f"{case.host.base_url}{WEBHOOK}/orchestrators/{function}",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == status
    assert response.json()["Message"]


def test_the_host_still_answers_after_everything(case):
    assert requests.get(case.host.base_url + "/admin/host/status", timeout=10).json()["state"] == "Running"
    final = case.wait(case.start_backup(), deadline_s=120)
    assert final["runtimeStatus"] == "Completed"
    assert os.path.exists(Path(case.root) / "index.html")


def _instances(case: Scenario) -> int:
    reply = requests.get(f"{case.host.base_url}{WEBHOOK}/instances/", timeout=60)
    return len(reply.json())


def test_the_table_is_long_enough():
    cases = len(STARTER_CASES) + 4 + 3 + 1 + len(WEBHOOK_FAILURES) + 5
    assert cases >= 45, cases
    time.sleep(0)
