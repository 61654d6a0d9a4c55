"""End-to-end backup time under devhost: this app against the seed sample's design, same run.

Both apps run under devhost with the same host.json concurrency, against the same in-memory
Azurite, on the same generated tree, into fresh containers:
- baseline: the seed's Python orchestrator (one ``task_all`` over every file, no retries) and its
  activities, with only the defects that stop it from running fixed (the file filter that lists
  nothing, the colliding blob names, the missing ``overwrite=True``);
- site_backup: this app (function_app.py), first run and an unchanged re-run.
Prints wall seconds from POST to Completed, files/s, and the ratio baseline/site_backup.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import requests

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from tests.support.azurite import running_azurite  # noqa: E402
from tests.support.devhost_process import running_devhost  # noqa: E402

SEED_APP = textwrap.dedent("""
    import os
    import azure.durable_functions as df
    import azure.functions as func
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.blob import BlobServiceClient

    app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="orchestrators/{functionName}", methods=["POST"])
    @app.durable_client_input(client_name="client")
    async def http_start(req: func.HttpRequest, client) -> func.HttpResponse:
        instance_id = await client.start_new(req.route_params["functionName"], None, req.get_json())
        return client.create_check_status_response(req, instance_id)

    @app.orchestration_trigger(context_name="context")
    def E2_BackupSiteContent(context: df.DurableOrchestrationContext):
        root_directory: str = context.get_input()
        if not root_directory:
            raise Exception("A directory path is required as input")
        files = yield context.call_activity("E2_GetFileList", root_directory)
        tasks = []
        for file in files:
            tasks.append(context.call_activity("E2_CopyFileToBlob", file))
        results = yield context.task_all(tasks)
        return sum(results)

    @app.activity_trigger(input_name="rootDirectory")
    def E2_GetFileList(rootDirectory: str):
        all_file_paths = []
        for path, _, files in os.walk(rootDirectory):
            for name in files:
                all_file_paths.append(os.path.join(path, name))
        return all_file_paths

    @app.activity_trigger(input_name="filePath")
    def E2_CopyFileToBlob(filePath: str):
        blob_service_client = BlobServiceClient.from_connection_string(os.getenv("AzureWebJobsStorage"))
        container_name = os.getenv("BACKUP_CONTAINER")
        try:
            blob_service_client.create_container(container_name)
        except ResourceExistsError:
            pass
        blob_client = blob_service_client.get_blob_client(container=container_name, blob=filePath.lstrip("/"))
        byte_count = os.path.getsize(filePath)
        with open(filePath, "rb") as data:
            blob_client.upload_blob(data, overwrite=True)
        return byte_count
""")


def make_tree(root: Path, count: int) -> int:
    total = 0
    for i in range(count):
        path = root / f"d{i % 25}" / f"file {i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = os.urandom(2_000 + (i * 37) % 5_000)
        path.write_bytes(data)
        total += len(data)
    return total


def backup_seconds(base_url: str, directory: str, expected: int) -> float:
    started = time.perf_counter()
    response = requests.post(f"{base_url}/orchestrators/E2_BackupSiteContent", data=json.dumps(directory), timeout=60)
    response.raise_for_status()
    while True:
        status = requests.get(response.headers["Location"], timeout=60).json()
        if status["runtimeStatus"] == "Completed":
            assert status["output"] == expected, status["output"]
            return time.perf_counter() - started
        if status["runtimeStatus"] in ("Failed", "Terminated"):
            raise RuntimeError(status["output"])
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=3_000)
    args = parser.parse_args()
    with running_azurite() as azurite, tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        expected = make_tree(tree, args.files)
        seed_dir = Path(tmp) / "seed-app"
        seed_dir.mkdir()
        (seed_dir / "function_app.py").write_text(SEED_APP)
        shutil.copy(PROJECT_ROOT / "host.json", seed_dir / "host.json")
        env = {
            **os.environ,
            "AzureWebJobsStorage": azurite.connection_string,
            "BACKUP_STORAGE": azurite.connection_string,
            "BACKUP_ALLOWED_ROOTS": tmp,
            "FUNCTIONS_WORKER_RUNTIME": "python",
        }
        rows = []
        env["BACKUP_CONTAINER"] = f"seed{uuid.uuid4().hex[:12]}"
        with running_devhost(seed_dir, hub=Path(tmp) / "seed.sqlite", env=env) as host:
            baseline = backup_seconds(host.base_url, str(tree), expected)
        rows.append(("seed sample design", baseline))
        env["BACKUP_CONTAINER"] = f"ours{uuid.uuid4().hex[:12]}"
        with running_devhost(PROJECT_ROOT, hub=Path(tmp) / "ours.sqlite", env=env) as host:
            rows.append(("site_backup", backup_seconds(host.base_url, str(tree), expected)))
            rows.append(("site_backup re-run (unchanged)", backup_seconds(host.base_url, str(tree), expected)))
        print(f"devhost + in-memory Azurite, {args.files} files of 2-7 KB, {expected / 1e6:.1f} MB")
        print(f"{'case':34} {'seconds':>8} {'files/s':>9} {'ratio':>7}")
        for name, seconds in rows:
            print(f"{name:34} {seconds:8.2f} {args.files / seconds:9.1f} {baseline / seconds:6.2f}x")


if __name__ == "__main__":
    main()
