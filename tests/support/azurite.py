"""Run the project's own Azurite (node_modules) on free loopback ports for a test session."""

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from backup_cli.processes import free_port
from backup_cli.services import AzuritePorts, start_azurite

ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, documented by Microsoft).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass(frozen=True)
class Azurite:
    """A running Azurite: its ports, its process id and the connection string that reaches it."""

    blob_port: int
    queue_port: int
    table_port: int
    pid: int = 0

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.blob_port}/{ACCOUNT}"

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
def running_azurite(in_memory: bool = True, parent: Path | None = None) -> Iterator[Azurite]:
    """Start the project's Azurite on free ports, in memory or on disk (in a fresh folder); always stop it."""
    ports = AzuritePorts(free_port(), free_port(), free_port())
    with tempfile.TemporaryDirectory(prefix="azurite-", dir=parent) as location:
        child = start_azurite(Path(location), Path(location) / "azurite.log", ports, in_memory=in_memory)
        try:
            yield Azurite(ports.blob, ports.queue, ports.table, child.process.pid)
        finally:
            child.stop()
