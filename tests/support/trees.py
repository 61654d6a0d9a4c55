"""Trees of files for the storage tests: write one, and read one back as it is (bytes and mtimes)."""

from __future__ import annotations

from pathlib import Path


def write_files(root: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` (relative name → bytes) below ``root``, making directories as needed."""
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def snapshot_of(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file below ``root``: its relative name → its bytes and modification time (ns)."""
    files = (p for p in root.rglob("*") if p.is_file())
    return {p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
