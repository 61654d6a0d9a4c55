"""E2_BackupSiteContent under many host-shaped orderings of completions, failures and retries.

Each trial builds a history the way the extension does (reference §4 and §8: a failure takes the
next free id for its retry timer, a re-attempt the one after), cuts it into random episodes,
replays every episode from scratch through the SDK, and checks that the orchestration never
crashes or finishes early, and ends with the right total or the right failure report.
"""

import json
import random
from dataclasses import dataclass

import pytest

from site_backup import plan
from tests.support.histories import History
from tests.support.worker import call_orchestrator

ORCH, LIST, COPY = "E2_BackupSiteContent", "E2_GetFileList", "E2_CopyFileToBlob"
ROOT = "/data/site"
ATTEMPTS = 3


@dataclass
class Copy:
    """One file's copy as the host sees it: which event it waits for next."""

    path: str
    size: int
    fate: str  # "ok", "fails_once" or "always_fails"
    seq: int
    attempt: int = 1
    timer: int | None = None
    done: bool = False


def deliver(history: History, copy: Copy, next_id: int) -> tuple[int, list[tuple[str, int, str]]]:
    """Append the next event of ``copy``; returns the next free id and the host's decisions."""
    if copy.timer is None:  # waiting for the attempt's result
        fails = copy.fate == "always_fails" or (copy.fate == "fails_once" and copy.attempt == 1)
        if not fails:
            history.task_completed(copy.seq, copy.size)
            copy.done = True
            return next_id, []
        history.task_failed(copy.seq, COPY, f"PermissionError: denied {copy.path}")
        copy.timer = next_id
        return next_id + 1, [("timer", copy.timer, "")]
    history.timer_fired(copy.timer, history.now())
    copy.timer = None
    if copy.attempt == ATTEMPTS:
        copy.done = True
        return next_id, []
    copy.attempt += 1
    copy.seq = next_id
    return next_id + 1, [("task", copy.seq, copy.path)]


def trial(seed: int) -> None:
    rnd = random.Random(seed)
    count = rnd.randint(2, 24)
    copies = [
        Copy(
            f"{ROOT}/f{i:03d}",
            rnd.randint(1, 100),
            rnd.choices(["ok", "fails_once", "always_fails"], [7, 2, 1])[0],
            i + 1,
        )
        for i in range(count)
    ]
    history = History(ORCH, {"rootDirectory": ROOT, "include": [], "exclude": []})
    history.task_scheduled(0, LIST, json.dumps(ROOT)).episode().task_completed(0, [c.path for c in copies])
    for c in copies:
        history.task_scheduled(c.seq, COPY, json.dumps(c.path))
    next_id = count + 1
    ready = list(copies)
    while ready:
        history.episode()
        # Mostly small episodes (1-3 events), sometimes everything at once.
        batch = rnd.sample(ready, rnd.randint(1, min(len(ready), rnd.choice([1, 2, 3, len(ready)]))))
        decisions = []
        for c in batch:
            ready.remove(c)
            next_id, made = deliver(history, c, next_id)
            decisions += made
        for kind, seq, path in decisions:
            if kind == "timer":
                history.timer_created(seq, history.now())
            else:
                history.task_scheduled(seq, COPY, json.dumps(path))
        ready += [c for c in batch if not c.done]
        outcome, state = call_orchestrator(ORCH, history.context())
        assert outcome != "crashed", (seed, state)
        if ready:
            assert outcome == "state" and state["isDone"] is False, (seed, outcome, state)
    failed = [c for c in copies if c.fate == "always_fails"]
    good = sum(c.size for c in copies if c.fate != "always_fails")
    if failed:
        assert outcome == "failed", (seed, state)
        backed_up = count - len(failed)
        expected = f"{len(failed)} of {count} file(s) could not be backed up (the other {backed_up}, {good} bytes,"
        assert state["error"].startswith(expected), (seed, state["error"])
    else:
        assert (outcome, state["isDone"], state.get("output")) == ("state", True, good), (seed, state)


@pytest.mark.parametrize("min_group_size", [1, 2, 3])
def test_every_ordering_ends_with_the_right_total_or_report(monkeypatch, min_group_size):
    monkeypatch.setattr(plan, "MIN_GROUP_SIZE", min_group_size)  # small groups: many groups per trial
    for seed in range(100):
        trial(seed * 3 + min_group_size)
