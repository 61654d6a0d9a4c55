"""The CLI against the real app: each command starts Azurite and devhost itself (on free ports, with its
state in a temporary directory), does its work and stops them, as `make backup` does on a fresh machine."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from backup_cli.processes import free_port, port_open
from backup_cli.services import AzuritePorts, start_azurite
from site_backup.copier import RACY_SECONDS
from tests.support.azurite import ACCOUNT, KEY
from tests.support.trees import write_files

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FILES = {"index.html": b"<h1>hi</h1>", "a b/ünï #%.txt": b"awkward\n", "docs/readme.md": b"# docs\n"}


@pytest.fixture
def cli(tmp_path):
    """Runs `python -m backup_cli ...` with storage on free ports nobody listens on yet."""
    blob, queue, table = free_port(), free_port(), free_port()
    endpoints = "".join(
        f"{kind}Endpoint=http://127.0.0.1:{port}/{ACCOUNT};"
        for kind, port in (("Blob", blob), ("Queue", queue), ("Table", table))
    )
    connection = f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};{endpoints}"
    env = {
        **os.environ,
        "SITE_BACKUP_LOCAL_DIR": str(tmp_path / "state"),
        "AzureWebJobsStorage": connection,
        "BACKUP_STORAGE": connection,
        "BACKUP_ALLOWED_ROOTS": str(tmp_path),
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    url = f"http://127.0.0.1:{free_port()}"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "backup_cli", *args, "--url", url, "--no-progress"],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert not port_open("127.0.0.1", blob), "Azurite was left running"
        return result

    run.connection = connection  # type: ignore[attr-defined]
    run.blob_port = blob  # type: ignore[attr-defined]
    return run


def test_backup_backups_verify_restore_through_services_the_cli_starts(cli, tmp_path):
    site = tmp_path / "site"
    write_files(site, FILES)
    time.sleep(RACY_SECONDS + 0.2)
    backed = cli("backup", str(site))
    assert backed.returncode == 0, backed.stdout + backed.stderr
    assert "Backup completed" in backed.stdout and "Starting Azurite" in backed.stdout

    listed = cli("backups", str(site))
    assert listed.returncode == 0 and "completed" in listed.stdout, listed.stdout + listed.stderr

    verified = cli("verify", str(site), "--compare")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "everything is as recorded" in verified.stdout and "0 changed, 0 deleted, 0 added" in verified.stdout

    restored = cli("restore", str(site), "--target", str(tmp_path / "restored"))
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert {
        p.relative_to(tmp_path / "restored").as_posix(): p.read_bytes()
        for p in (tmp_path / "restored").rglob("*")
        if p.is_file()
    } == FILES

    again = cli("restore", str(site), "--target", str(tmp_path / "restored"))
    assert "0 restored, 3 already identical" in again.stdout

    # Damage one stored copy behind the app's back, with Azurite running only for that. The launcher waits for
    # all three services: Azurite handles SIGTERM (and saves its database) only once they all listen.
    azurite = start_azurite(
        tmp_path / "state" / ".azurite", None, AzuritePorts(cli.blob_port, free_port(), free_port())
    )
    try:
        blobs = BlobServiceClient.from_connection_string(cli.connection).get_container_client("backups")
        blobs.delete_blob(str(site / "index.html").lstrip("/"))
    finally:
        azurite.stop()
    broken = cli("verify", str(site))
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "1 missing" in broken.stderr and "index.html" in broken.stderr

    partial = cli("restore", str(site), "--target", str(tmp_path / "partial"))
    assert partial.returncode == 1, partial.stdout + partial.stderr
    assert "Restore failed" in partial.stderr and "index.html" in partial.stderr
    assert not (tmp_path / "partial" / "index.html").exists()


def test_a_function_key_is_sent_as_the_functions_host_expects(tmp_path):
    from tests.cli.fake_host import Scenario, ended, fake_host

    scenario = Scenario(statuses=[ended("Completed", 5)])
    with fake_host(scenario) as url:
        result = subprocess.run(
            [sys.executable, "-m", "backup_cli", "backup", str(tmp_path), "--url", url, "--key", "s3cret"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        )
    assert result.returncode == 0, result.stderr
    assert scenario.keys == ["s3cret"] * len(scenario.keys) and scenario.keys


def test_prune_says_what_it_would_remove_then_removes_it(cli, tmp_path):
    site = tmp_path / "site"
    write_files(site, FILES)
    time.sleep(RACY_SECONDS + 0.2)
    for _ in range(2):
        backed = cli("backup", str(site))
        assert backed.returncode == 0, backed.stdout + backed.stderr
    first = runs_listed(cli, site)[-1].split("\t")[0]  # newest first

    refused = cli("prune", str(site))
    assert refused.returncode == 2 and "BACKUP_RETENTION" in refused.stderr, refused.stdout + refused.stderr

    dry = cli("prune", str(site), "--keep", "last=1", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "kept 1 backup(s) and would remove 1" in dry.stdout and f"would remove: {first}" in dry.stdout
    assert len(runs_listed(cli, site)) == 2

    pruned = cli("prune", str(site), "--keep", "last=1")
    assert pruned.returncode == 0 and f"removed: {first}" in pruned.stdout, pruned.stdout + pruned.stderr
    remaining = runs_listed(cli, site)
    assert len(remaining) == 1 and first not in remaining[0]


def runs_listed(cli, site) -> list[str]:
    """The rows of `backups` (piped: one per run, after the lines about the services it started)."""
    return [line for line in cli("backups", str(site)).stdout.splitlines() if "\tcompleted\t" in line]
