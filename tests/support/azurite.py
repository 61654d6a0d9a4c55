"""Run the project's own Azurite (node_modules) on free loopback ports for a test session."""

import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .ports import free_port, wait_for_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
AZURITE = PROJECT_ROOT / "node_modules" / ".bin" / "azurite"
ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, documented by Microsoft).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass(frozen=True)
class Azurite:
    """A running Azurite: its ports and the connection string that reaches it."""

    blob_port: int
    queue_port: int
    table_port: int

    @property
    def connection_string(self) -> str:
        base = "http://127.0.0.1"
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint={base}:{self.blob_port}/{ACCOUNT};"
            f"QueueEndpoint={base}:{self.queue_port}/{ACCOUNT};"
            f"TableEndpoint={base}:{self.table_port}/{ACCOUNT};"
        )


@contextmanager
def running_azurite() -> Iterator[Azurite]:
    """Start Azurite in memory on free ports; always stop it."""
    if not AZURITE.exists():
        raise RuntimeError(f"{AZURITE} is missing: run `npm ci` (make test does it).")
    ports = Azurite(free_port(), free_port(), free_port())
    with tempfile.TemporaryDirectory(prefix="azurite-") as location:
        command = [
            str(AZURITE),
            "--silent",
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--inMemoryPersistence",
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(ports.blob_port),
            "--queueHost",
            "127.0.0.1",
            "--queuePort",
            str(ports.queue_port),
            "--tableHost",
            "127.0.0.1",
            "--tablePort",
            str(ports.table_port),
        ]
        log_path = Path(location) / "azurite.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, cwd=location, start_new_session=True
            )
            try:
                wait_for_port(ports.blob_port, 60, alive=lambda: process.poll() is None)
                yield ports
            except Exception:
                print(log_path.read_text(errors="replace")[-2000:])
                raise
            finally:
                _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
