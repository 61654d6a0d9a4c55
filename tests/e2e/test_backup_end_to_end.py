"""End to end over real HTTP: the app under devhost, with a real Azurite, on free ports."""

import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from azure.storage.blob import BlobServiceClient, ContainerClient

from site_backup.copier import RACY_SECONDS
from tests.support.devhost_process import DevhostProcess, running_devhost

PROJECT_ROOT = Path(__file__).resolve().parents[2]
START_URL = "/orchestrators/E2_BackupSiteContent"

AWKWARD = {
    "index.html": b"<h1>home</h1>",
    "with space/a file.txt": b"spaces\n",
    "ünïcødé/日本語.txt": "こんにちは".encode(),
    "hash#dir/100%#done.log": b"#%\n",
    "empty": b"",
    "a/b/c/d/e/f/g/h/deep.bin": bytes(range(256)) * 40,
    "large/over-one-block.bin": os.urandom(4 * 1024 * 1024 + 4097),
}


# Small work units, pages and generations, so a tree of a couple of thousand files exercises all of them.
SMALL_TUNING = {"batchFiles": 40, "pageUnits": 6, "window": 4, "unitsPerExecution": 12}


@pytest.fixture
def backup_env(azurite, tmp_path) -> dict[str, str]:
    container = f"e2e{uuid.uuid4().hex[:16]}"
    return {
        **os.environ,
        "AzureWebJobsStorage": azurite.connection_string,
        "BACKUP_STORAGE": azurite.connection_string,
        "BACKUP_CONTAINER": container,
        "BACKUP_CATALOG_CONTAINER": f"{container}-catalog",
        "BACKUP_ALLOWED_ROOTS": str(tmp_path),
        "BACKUP_TUNING": "",
    }


@pytest.fixture
def container(azurite, backup_env) -> ContainerClient:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    return service.get_container_client(backup_env["BACKUP_CONTAINER"])


@pytest.fixture
def host(backup_env, tmp_path) -> Iterator[DevhostProcess]:
    with running_devhost(PROJECT_ROOT, hub=tmp_path / "hub.sqlite", env=backup_env) as devhost:
        yield devhost


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def start(host: DevhostProcess, body: object) -> requests.Response:
    return requests.post(
        host.base_url + START_URL, data=json.dumps(body), timeout=30, headers={"Content-Type": "application/json"}
    )


def wait_for_completion(status_url: str, limit_s: float = 240) -> dict:
    """Poll the status URL as a client would (bounded so a hang fails instead of blocking)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        response = requests.get(status_url, timeout=30)
        body = response.json()
        if body["runtimeStatus"] not in ("Pending", "Running", "ContinuedAsNew"):
            return {"httpStatus": response.status_code, **body}
        assert response.status_code == 202 and response.headers["Retry-After"] == "5"
        time.sleep(0.2)
    raise AssertionError(f"the orchestration did not finish within {limit_s} s")


def blob_state(container: ContainerClient) -> dict[str, str]:
    return {b.name: b.etag for b in container.list_blobs()}


def test_backup_of_an_awkward_tree_then_a_rerun_that_uploads_nothing(host, container, tmp_path):
    root = write_tree(tmp_path / "site", AWKWARD)
    time.sleep(RACY_SECONDS + 0.2)  # files changed just now are hashed again by the next run; these have settled
    response = start(host, str(root))
    assert response.status_code == 202
    assert response.headers["Retry-After"] == "10"
    location = response.headers["Location"]
    assert location.startswith(f"{host.base_url}/runtime/webhooks/durabletask/instances/")
    assert response.json()["statusQueryGetUri"] == location

    status = wait_for_completion(location)
    assert (status["httpStatus"], status["runtimeStatus"]) == (200, "Completed")
    assert status["output"] == sum(len(d) for d in AWKWARD.values())
    assert status["customStatus"]["phase"] == "completed"
    assert status["customStatus"]["filesDone"] == len(AWKWARD)
    for rel, data in AWKWARD.items():
        blob = container.get_blob_client(str(root / rel).lstrip("/"))
        assert blob.download_blob().readall() == data, rel
        assert bytes(blob.get_blob_properties().content_settings.content_md5) == hashlib.md5(data).digest()

    before = blob_state(container)
    again = wait_for_completion(start(host, {"rootDirectory": str(root)}).headers["Location"])
    assert again["runtimeStatus"] == "Completed"
    assert again["output"] == status["output"]
    assert (again["customStatus"]["filesUnchanged"], again["customStatus"]["filesUploaded"]) == (len(AWKWARD), 0)
    assert blob_state(container) == before


def test_bad_requests_over_http_start_nothing(host, tmp_path):
    cases = [
        (b"", 400),
        (b"/not/json", 400),
        (b"12", 400),
        (json.dumps(str(tmp_path / "missing")).encode(), 400),
        (json.dumps("/etc").encode(), 403),
    ]
    for body, status in cases:
        response = requests.post(host.base_url + START_URL, data=body, timeout=30)
        assert response.status_code == status, body
        assert response.headers["Content-Type"].startswith("application/json")
        assert set(response.json()) == {"error"}
    other = requests.post(host.base_url + "/orchestrators/E2_GetFileList", data=b'"/x"', timeout=30)
    assert other.status_code == 404
    listing = requests.get(host.base_url + "/runtime/webhooks/durabletask/instances/", timeout=30).json()
    assert listing == []


def test_sigkill_during_a_backup_then_restart_completes_the_same_instance(backup_env, container, tmp_path):
    """Many units, pages and generations: killed midway, it finishes after a restart, every file once."""
    files = {f"d{i % 10}/file-{i:04d}.txt": f"{i}\n".encode() * (1 + i % 50) for i in range(2_100)}
    root = write_tree(tmp_path / "site", files)
    hub = tmp_path / "hub.sqlite"
    backup_env = {**backup_env, "BACKUP_TUNING": json.dumps(SMALL_TUNING)}
    first = DevhostProcess(PROJECT_ROOT, hub=hub, env=backup_env).start()
    try:
        response = start(first, str(root))
        instance_id = response.json()["id"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # wait until some, but not all, files are copied
            status = requests.get(response.headers["Location"], timeout=30).json()
            if (status.get("customStatus") or {}).get("filesDone", 0) > 0:
                break
            time.sleep(0.05)
        assert status["runtimeStatus"] == "Running", status
        first.kill()
    finally:
        first.stop()
    with running_devhost(PROJECT_ROOT, hub=hub, env=backup_env) as second:
        status_url = f"{second.base_url}/runtime/webhooks/durabletask/instances/{instance_id}"
        final = wait_for_completion(status_url)
    assert final["runtimeStatus"] == "Completed"
    assert final["output"] == sum(len(d) for d in files.values())
    assert final["customStatus"]["generation"] > 2
    assert json.loads(final["input"])["plan"]["generation"] == final["customStatus"]["generation"]
    assert final["customStatus"]["filesDone"] == len(files)
    blobs = {b.name: b.size for b in container.list_blobs()}
    assert blobs == {str(root / rel).lstrip("/"): len(data) for rel, data in files.items()}


def test_a_file_that_cannot_be_backed_up_is_named_the_rest_is_backed_up_and_exclude_gets_past_it(
    host, container, tmp_path
):
    root = write_tree(tmp_path / "site", {"ok.txt": b"fine"})
    deep = root.joinpath(*["n"] * 300)  # more path segments than a blob name may have
    deep.mkdir(parents=True)
    (deep / "too-deep.txt").write_text("x")
    failed = wait_for_completion(start(host, str(root)).headers["Location"])
    assert failed["runtimeStatus"] == "Failed"
    assert failed["output"].startswith("Orchestrator function 'E2_BackupSiteContent' failed:")
    assert "1 of 2 file(s) could not be backed up (the other 1, 4 bytes, were)" in failed["output"]
    assert "cannot be a blob name" in failed["output"] and "exclude" in failed["output"]
    assert "Traceback" not in failed["output"]
    assert failed["customStatus"] == {
        "phase": "failed",
        "filesTotal": 2,
        "bytesTotal": 5,
        "filesDone": 2,
        "bytesDone": 4,
        "filesUploaded": 1,
        "filesUnchanged": 0,
        "filesVanished": 0,
        "filesFailed": 1,
        "generation": 1,
    }
    assert [b.name for b in container.list_blobs()] == [str(root / "ok.txt").lstrip("/")]  # the rest got through

    done = wait_for_completion(start(host, {"rootDirectory": str(root), "exclude": ["n"]}).headers["Location"])
    assert (done["runtimeStatus"], done["output"]) == ("Completed", 4)
    assert [b.name for b in container.list_blobs()] == [str(root / "ok.txt").lstrip("/")]
