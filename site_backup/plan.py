"""How the orchestrator groups the fan-out and reports progress. Pure and deterministic.

Every copy is scheduled at once, so the workers never wait for the orchestrator. The copies
are split into about ``TARGET_GROUPS`` groups; the orchestrator wakes when a whole group has
finished and moves the progress in ``customStatus`` on. Small trees get groups of at least
``MIN_GROUP_SIZE`` files.
"""

import math
from typing import Any

TARGET_GROUPS = 50
MIN_GROUP_SIZE = 10


def groups(files: list[str]) -> list[list[str]]:
    """Split the file list into consecutive groups, in listing order."""
    if not files:
        return []
    size = max(MIN_GROUP_SIZE, math.ceil(len(files) / TARGET_GROUPS))
    return [files[i : i + size] for i in range(0, len(files), size)]


def progress(phase: str, files_total: int = 0, files_done: int = 0, bytes_done: int = 0) -> dict[str, Any]:
    """The customStatus document: phase is listing, copying or completed."""
    return {"phase": phase, "filesTotal": files_total, "filesDone": files_done, "bytesDone": bytes_done}
