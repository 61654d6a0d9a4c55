"""Which runs a retention policy keeps: restic's ``forget --keep-*`` rule (grandfather-father-son).

``BACKUP_RETENTION`` (or a prune request's ``retention``) is a list such as ``last=7,daily=30,weekly=12,monthly=24``.
Runs are taken newest first. ``last=N`` keeps the N newest. ``hourly``, ``daily``, ``weekly``, ``monthly`` and
``yearly`` keep the newest run of each of the last N hours, days, ISO weeks, months or years that have a run.
A run is kept if any rule keeps it. Times are UTC. A run that no rule keeps changes no rule's count, so removing
it never changes what the policy keeps of the others: a prune interrupted and run again decides the same.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from .errors import InvalidBackupRequest

EXAMPLE = "last=7,daily=30,weekly=12,monthly=24"


def _week(t: datetime) -> object:
    year, week, _ = t.isocalendar()
    return (year, week)


BUCKETS: dict[str, Callable[[datetime], object]] = {
    "hourly": lambda t: (t.year, t.month, t.day, t.hour),
    "daily": lambda t: (t.year, t.month, t.day),
    "weekly": _week,
    "monthly": lambda t: (t.year, t.month),
    "yearly": lambda t: t.year,
}
RULES = ("last", *BUCKETS)
MAX_COUNT = 100_000


@dataclass(frozen=True)
class RetentionPolicy:
    """How many runs each rule keeps (0: that rule keeps none)."""

    counts: tuple[tuple[str, int], ...]

    @classmethod
    def parse(cls, text: str) -> RetentionPolicy:
        """``last=7,daily=30``; anything else is an InvalidBackupRequest that shows the form."""
        counts: dict[str, int] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            found = re.fullmatch(r"([a-z]+)\s*=\s*(\d{1,6})", item)
            if found is None or found.group(1) not in RULES:
                raise InvalidBackupRequest(
                    f"{item!r} is not a retention rule; write rules such as {EXAMPLE!r} "
                    f"(the rules are {', '.join(RULES)})."
                )
            rule, count = found.group(1), int(found.group(2))
            if rule in counts:
                raise InvalidBackupRequest(f"The retention rule {rule!r} is given twice.")
            counts[rule] = min(count, MAX_COUNT)
        if not any(counts.values()):
            raise InvalidBackupRequest(
                f"The retention policy {text!r} keeps nothing; keep at least one run, e.g. {EXAMPLE!r}."
            )
        return cls(tuple((rule, counts[rule]) for rule in RULES if rule in counts))

    def __str__(self) -> str:
        return ",".join(f"{rule}={count}" for rule, count in self.counts)

    def keep(self, runs: Sequence[tuple[str, datetime]]) -> set[str]:
        """The ids of the runs (id, start time) the policy keeps."""
        remaining = dict(self.counts)
        last_key: dict[str, object] = {}
        kept: set[str] = set()
        for run, started in sorted(runs, key=lambda r: (r[1], r[0]), reverse=True):
            for rule, left in remaining.items():
                if left <= 0:
                    continue
                key = run if rule == "last" else BUCKETS[rule](started)
                if rule in last_key and last_key[rule] == key:
                    continue
                last_key[rule] = key
                remaining[rule] = left - 1
                kept.add(run)
        return kept
