"""A private MariaDB for Azurite's SQL metadata store (``AZURITE_DB``), for benchmarks of many blobs.

Azurite keeps blob metadata in its in-memory LokiJS database unless ``AZURITE_DB`` names a MySQL/MariaDB
database; a million blobs are too many for LokiJS on this machine (docs/benchmarks.md). The server runs from
Debian's ``mariadb-server`` (``make bench-setup``) with its data in a temporary folder, on a free loopback port,
and is always stopped.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from backup_cli.processes import free_port

DATABASE = "azurite_blob"


@contextmanager
def running_mariadb(parent: Path) -> Iterator[str]:
    """Start MariaDB with a fresh data directory under ``parent``; yield Azurite's ``AZURITE_DB`` URL."""
    server, install = shutil.which("mariadbd"), shutil.which("mariadb-install-db")
    if not server or not install:
        raise SystemExit("MariaDB is not installed: run `make bench-setup` (Debian's mariadb-server)")
    data = parent / "mariadb"
    data.mkdir(parents=True)
    subprocess.run(
        [install, f"--datadir={data}", "--auth-root-authentication-method=normal", "--skip-test-db", "--user=root"],
        check=True,
        capture_output=True,
    )
    port = free_port()
    socket = data / "mariadb.sock"
    log = (data / "server.log").open("w")
    process = subprocess.Popen(
        [
            server,
            "--no-defaults",
            f"--datadir={data}",
            f"--socket={socket}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            "--user=root",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=2G",
            "--innodb-flush-log-at-trx-commit=2",  # a benchmark's store: no fsync per commit
            "--max-connections=500",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        client = shutil.which("mariadb") or "mysql"
        deadline = time.monotonic() + 60
        while True:
            ready = subprocess.run(
                [client, f"--socket={socket}", "-uroot", "-e", f"CREATE DATABASE IF NOT EXISTS {DATABASE}"],
                capture_output=True,
            )
            if ready.returncode == 0:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"MariaDB did not start: {(data / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield f"mysql://root@127.0.0.1:{port}/{DATABASE}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
