"""How the orchestrator paces a backup and reports progress. Pure and deterministic.

- **Generations.** A tree is copied ``GENERATION_SIZE`` files per orchestration generation. A
  bigger tree continues as new from a cursor, so no history grows past a few thousand events
  (each episode replays the whole history) and no tree hits the action limit.
- **Groups.** Within a generation, every copy is scheduled at once, so the workers never wait
  for the orchestrator. The copies are split into about ``TARGET_GROUPS`` groups, and the
  orchestrator moves the progress in ``customStatus`` on as each whole group finishes.
"""

import math
from dataclasses import dataclass, replace
from typing import Any

GENERATION_SIZE = 2_000
TARGET_GROUPS = 50
MIN_GROUP_SIZE = 10


def groups(files: list[str]) -> list[list[str]]:
    """Split the file list into consecutive groups, in listing order."""
    if not files:
        return []
    size = max(MIN_GROUP_SIZE, math.ceil(len(files) / TARGET_GROUPS))
    return [files[i : i + size] for i in range(0, len(files), size)]


@dataclass(frozen=True)
class Tally:
    """What a backup has done so far; carried from one generation to the next."""

    files_total: int = 0
    files_done: int = 0
    bytes_done: int = 0

    def add(self, sizes: list[int]) -> "Tally":
        """The tally after a group of copies that returned ``sizes``."""
        return replace(self, files_done=self.files_done + len(sizes), bytes_done=self.bytes_done + sum(sizes))

    def status(self, phase: str) -> dict[str, Any]:
        """The customStatus document: phase is listing, copying or completed."""
        return {
            "phase": phase,
            "filesTotal": self.files_total,
            "filesDone": self.files_done,
            "bytesDone": self.bytes_done,
        }
