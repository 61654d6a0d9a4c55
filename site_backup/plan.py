"""How the orchestrator paces a backup and reports progress. Pure and deterministic.

- **Generations.** A tree is copied ``GENERATION_SIZE`` files per orchestration generation. A
  bigger tree continues as new from a cursor, so no history grows past a few thousand events
  (each episode replays the whole history) and no tree hits the action limit.
- **Groups.** Within a generation, every copy is scheduled at once, so the workers never wait
  for the orchestrator. The copies are split into about ``TARGET_GROUPS`` groups, and the
  orchestrator moves the progress in ``customStatus`` on as each whole group finishes.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

GENERATION_SIZE = 2_000
TARGET_GROUPS = 50
MIN_GROUP_SIZE = 10
MAX_FAILURES_SHOWN = 20


def groups(files: list[str]) -> list[list[str]]:
    """Split the file list into consecutive groups, in listing order."""
    if not files:
        return []
    size = max(MIN_GROUP_SIZE, math.ceil(len(files) / TARGET_GROUPS))
    return [files[i : i + size] for i in range(0, len(files), size)]


@dataclass(frozen=True)
class Tally:
    """What a backup has done so far; carried from one generation to the next.

    ``files_done`` counts every finished copy, failed or not; ``failures`` keeps the first
    ``MAX_FAILURES_SHOWN`` messages so the final error can name the files.
    """

    files_total: int = 0
    files_done: int = 0
    bytes_done: int = 0
    files_failed: int = 0
    failures: tuple[str, ...] = ()

    def add(self, sizes: Sequence[int], failures: Sequence[str] = ()) -> "Tally":
        """The tally after copies that returned ``sizes`` and copies that failed with ``failures``."""
        return replace(
            self,
            files_done=self.files_done + len(sizes) + len(failures),
            bytes_done=self.bytes_done + sum(sizes),
            files_failed=self.files_failed + len(failures),
            failures=(*self.failures, *failures)[:MAX_FAILURES_SHOWN],
        )

    def status(self, phase: str) -> dict[str, Any]:
        """The customStatus document: phase is listing, copying, completed or failed."""
        return {
            "phase": phase,
            "filesTotal": self.files_total,
            "filesDone": self.files_done,
            "bytesDone": self.bytes_done,
            "filesFailed": self.files_failed,
        }

    def to_json(self) -> dict[str, Any]:
        """The form carried in a continuation."""
        return {
            "filesTotal": self.files_total,
            "filesDone": self.files_done,
            "bytesDone": self.bytes_done,
            "filesFailed": self.files_failed,
            "failures": list(self.failures),
        }

    @classmethod
    def from_json(cls, carried: dict[str, Any]) -> "Tally":
        """Read a carried tally; raises KeyError, TypeError or ValueError if it is malformed."""
        failures = carried.get("failures", [])
        if not isinstance(failures, list) or not all(isinstance(f, str) for f in failures):
            raise TypeError("failures must be a list of strings")
        return cls(
            int(carried["filesTotal"]),
            int(carried["filesDone"]),
            int(carried["bytesDone"]),
            int(carried.get("filesFailed", 0)),
            tuple(failures),
        )

    def failure_report(self) -> str:
        """The error a backup ends with when some files could not be backed up."""
        shown = "; ".join(self.failures)
        more = f"; and {self.files_failed - len(self.failures)} more" if self.files_failed > len(self.failures) else ""
        backed_up = self.files_done - self.files_failed
        return (
            f"{self.files_failed} of {self.files_done} file(s) could not be backed up "
            f"(the other {backed_up}, {self.bytes_done} bytes, were): {shown}{more}"
        )
