"""How the orchestrator paces the fan-out and reports progress. Pure and deterministic.

Files are copied in waves: every copy of a wave runs in parallel (one ``task_all``), and the
progress in ``customStatus`` moves on after each wave. About ``TARGET_WAVES`` waves keep the
progress fresh on a big tree without starving the workers; small trees go in one wave.
"""

from __future__ import annotations

import math
from typing import Any

TARGET_WAVES = 20
MIN_WAVE = 100
MAX_WAVE = 5_000


def waves(files: list[str]) -> list[list[str]]:
    """Split the file list into consecutive waves, in listing order."""
    if not files:
        return []
    size = min(MAX_WAVE, max(MIN_WAVE, math.ceil(len(files) / TARGET_WAVES)))
    return [files[i : i + size] for i in range(0, len(files), size)]


def progress(phase: str, files_total: int = 0, files_done: int = 0, bytes_done: int = 0) -> dict[str, Any]:
    """The customStatus document: phase is listing, copying or completed."""
    return {"phase": phase, "filesTotal": files_total, "filesDone": files_done, "bytesDone": bytes_done}
