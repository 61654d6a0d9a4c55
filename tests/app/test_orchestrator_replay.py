"""E2_BackupSiteContent through the SDK's real replay entry point, with host-shaped histories."""

import json

import pytest

from site_backup import plan
from tests.support.histories import History, atoms
from tests.support.worker import call_orchestrator

ORCH = "E2_BackupSiteContent"
LIST, COPY = "E2_GetFileList", "E2_CopyFileToBlob"
ROOT = "/data/site"
REQUEST = {"rootDirectory": ROOT, "include": [], "exclude": []}
RETRY = {"firstRetryIntervalInMilliseconds": 5000, "maxNumberOfAttempts": 3}


def run(history: History) -> tuple[str, dict]:
    return call_orchestrator(ORCH, history.context())


def listed(files: list[str]) -> History:
    """History up to: the listing was scheduled (seq 0) and has completed with ``files``."""
    return History(ORCH, REQUEST).task_scheduled(0, LIST, json.dumps(ROOT)).episode().task_completed(0, files)


def test_first_episode_schedules_the_listing_with_retry():
    outcome, state = run(History(ORCH, REQUEST))
    assert outcome == "state"
    assert state["isDone"] is False
    assert state["schemaVersion"] == 2
    assert atoms(state["actions"][0]) == [
        {"actionType": 1, "functionName": LIST, "input": json.dumps(ROOT), "retryOptions": RETRY}
    ]
    assert state["customStatus"] == {
        "phase": "listing",
        "filesTotal": 0,
        "filesDone": 0,
        "bytesDone": 0,
        "filesFailed": 0,
    }


def test_patterns_are_passed_to_the_listing():
    request = {"rootDirectory": ROOT, "exclude": ["*.tmp"]}
    _, state = call_orchestrator(ORCH, History(ORCH, request).context())
    listing = atoms(state["actions"][0])[0]
    assert json.loads(listing["input"]) == {"rootDirectory": ROOT, "include": [], "exclude": ["*.tmp"]}


def test_seed_style_string_input_is_accepted():
    _, state = call_orchestrator(ORCH, History(ORCH, ROOT).context())
    assert atoms(state["actions"][0])[0]["input"] == json.dumps(ROOT)


def test_listing_done_fans_out_one_copy_per_file():
    files = [f"{ROOT}/a.txt", f"{ROOT}/b dir/c#.bin", f"{ROOT}/ü.txt"]
    outcome, state = run(listed(files))
    assert outcome == "state" and state["isDone"] is False
    copies = atoms(state["actions"][0])[1:]
    assert [(a["actionType"], a["functionName"], json.loads(a["input"])) for a in copies] == [
        (1, COPY, f) for f in files
    ]
    assert all(a["retryOptions"] == RETRY for a in copies)
    assert state["customStatus"] == {
        "phase": "copying",
        "filesTotal": 3,
        "filesDone": 0,
        "bytesDone": 0,
        "filesFailed": 0,
    }


def test_all_copies_done_outputs_the_sum():
    files = [f"{ROOT}/a", f"{ROOT}/b", f"{ROOT}/c"]
    history = listed(files)
    for seq, path in enumerate(files, start=1):
        history.task_scheduled(seq, COPY, json.dumps(path))
    history.episode().task_completed(3, 5).task_completed(1, 100)
    outcome, state = run(history)
    assert outcome == "state" and state["isDone"] is False  # one copy still outstanding
    history.episode().task_completed(2, 0)
    outcome, state = run(history)
    assert outcome == "state"
    assert state["isDone"] is True
    assert state["output"] == 105
    assert state["customStatus"] == {
        "phase": "completed",
        "filesTotal": 3,
        "filesDone": 3,
        "bytesDone": 105,
        "filesFailed": 0,
    }


def test_empty_directory_completes_with_zero():
    outcome, state = run(listed([]))
    assert outcome == "state"
    assert state["isDone"] is True and state["output"] == 0


def test_large_tree_schedules_every_copy_at_once_and_reports_each_group():
    files = [f"{ROOT}/f{i:05d}" for i in range(plan.GENERATION_SIZE)]
    first, second = plan.groups(files)[:2]
    history = listed(files)
    _, state = run(history)
    assert [json.loads(a["input"]) for a in atoms(state["actions"][0])[1:]] == files
    for seq, path in enumerate(files, start=1):
        history.task_scheduled(seq, COPY, json.dumps(path))
    history.episode()
    # The second group finishes first, plus part of the first: progress counts whole groups only.
    for seq in range(len(first) + 1, len(first) + len(second) + 1):
        history.task_completed(seq, 3)
    history.task_completed(1, 2)
    outcome, state = run(history)
    assert outcome == "state" and state["isDone"] is False
    assert len(atoms(state["actions"][0])) == 1 + len(files)  # nothing scheduled twice
    assert state["customStatus"] == {
        "phase": "copying",
        "filesTotal": len(files),
        "filesDone": len(second),
        "bytesDone": 3 * len(second),
        "filesFailed": 0,
    }
    history.episode()
    for seq in range(2, len(first) + 1):
        history.task_completed(seq, 2)
    _, state = run(history)
    assert state["customStatus"]["filesDone"] == len(first) + len(second)
    assert state["customStatus"]["bytesDone"] == 2 * len(first) + 3 * len(second)
    assert len(atoms(state["actions"][0])) == 1 + len(files)


def copy_all(history: History, files: list[str], first_seq: int, size: int) -> History:
    for seq, path in enumerate(files, start=first_seq):
        history.task_scheduled(seq, COPY, json.dumps(path))
    history.episode()
    for seq in range(first_seq, first_seq + len(files)):
        history.task_completed(seq, size)
    return history


def test_a_tree_bigger_than_a_generation_continues_as_new_from_a_cursor():
    files = [f"{ROOT}/f{i:05d}" for i in range(plan.GENERATION_SIZE + 7)]
    outcome, state = run(copy_all(listed(files), files[: plan.GENERATION_SIZE], 1, 10))
    assert outcome == "state" and state["isDone"] is True
    assert "output" not in state
    last = state["actions"][0][-1]
    assert last["actionType"] == 4
    assert json.loads(last["input"]) == {
        **REQUEST,
        "continuation": {
            "after": files[plan.GENERATION_SIZE - 1],
            "failures": [],
            "filesTotal": len(files),
            "filesDone": plan.GENERATION_SIZE,
            "bytesDone": 10 * plan.GENERATION_SIZE,
            "filesFailed": 0,
        },
    }


def test_a_continued_generation_lists_the_next_page_and_adds_up():
    carried = {
        "after": f"{ROOT}/f01999",
        "filesTotal": 2_003,
        "filesDone": 2_000,
        "bytesDone": 20_000,
        "filesFailed": 0,
    }
    history = History(ORCH, {**REQUEST, "continuation": carried})
    outcome, state = run(history)
    [listing] = atoms(state["actions"][0])
    assert json.loads(listing["input"]) == {**REQUEST, "after": carried["after"], "limit": plan.GENERATION_SIZE + 1}
    assert state["customStatus"] == {
        "phase": "copying",
        "filesTotal": 2_003,
        "filesDone": 2_000,
        "bytesDone": 20_000,
        "filesFailed": 0,
    }
    rest = [f"{ROOT}/f02000", f"{ROOT}/f02001", f"{ROOT}/f02002"]
    history.task_scheduled(0, LIST, listing["input"]).episode().task_completed(0, rest)
    outcome, state = run(copy_all(history, rest, 1, 5))
    assert outcome == "state" and state["isDone"] is True
    assert state["output"] == 20_015
    assert state["customStatus"] == {
        "phase": "completed",
        "filesTotal": 2_003,
        "filesDone": 2_003,
        "bytesDone": 20_015,
        "filesFailed": 0,
    }


def test_copy_retried_then_succeeded():
    """Host-side retry (reference §8): failure, retry timer, second attempt succeeds."""
    history = listed([f"{ROOT}/a"]).task_scheduled(1, COPY, json.dumps(f"{ROOT}/a"))
    history.episode().task_failed(1, COPY, "ServiceRequestError: connection reset")
    history.timer_created(2, history.now())
    history.episode().timer_fired(2, history.now()).task_scheduled(3, COPY, json.dumps(f"{ROOT}/a"))
    history.episode().task_completed(3, 42)
    outcome, state = run(history)
    assert outcome == "state"
    assert state["isDone"] is True and state["output"] == 42


def exhaust_retries(history: History, seq: int, next_id: int, path: str, message: str) -> int:
    """Append the host's full retry sequence (reference §8) for the copy scheduled as ``seq``.

    Each failure takes the next free id for its retry timer, and each re-attempt the one after;
    returns the next free id.
    """
    for attempt in range(3):
        history.episode().task_failed(seq, COPY, message)
        timer, next_id = next_id, next_id + 1
        history.timer_created(timer, history.now())
        history.episode().timer_fired(timer, history.now())
        if attempt < 2:
            seq, next_id = next_id, next_id + 1
            history.task_scheduled(seq, COPY, json.dumps(path))
    return next_id


def test_copy_failed_on_every_attempt_fails_the_orchestration_naming_the_file():
    history = listed([f"{ROOT}/a"]).task_scheduled(1, COPY, json.dumps(f"{ROOT}/a"))
    exhaust_retries(history, 1, 2, f"{ROOT}/a", "PermissionError: [Errno 13] Permission denied")
    outcome, state = run(history)
    assert outcome == "failed"
    assert state["isDone"] is False
    assert state["error"].startswith("1 of 1 file(s) could not be backed up (the other 0, 0 bytes, were)")
    assert f"{ROOT}/a: PermissionError: [Errno 13] Permission denied" in state["error"]
    assert state["customStatus"] == {
        "phase": "failed",
        "filesTotal": 1,
        "filesDone": 1,
        "bytesDone": 0,
        "filesFailed": 1,
    }


def test_a_failed_copy_lets_the_rest_finish_before_the_backup_fails():
    files = [f"{ROOT}/a", f"{ROOT}/b", f"{ROOT}/c"]
    history = listed(files)
    for seq, path in enumerate(files, start=1):
        history.task_scheduled(seq, COPY, json.dumps(path))
    history.episode().task_completed(1, 7)
    exhaust_retries(history, 2, 4, files[1], "BlobNameTooLong: too long")
    outcome, state = run(history)
    assert outcome == "state" and state["isDone"] is False  # c is still being copied
    assert len(atoms(state["actions"][0])) == 1 + len(files)  # nothing scheduled again
    history.episode().task_completed(3, 5)
    outcome, state = run(history)
    assert outcome == "failed"
    assert state["error"].startswith("1 of 3 file(s) could not be backed up (the other 2, 12 bytes, were)")
    assert f"{ROOT}/b: BlobNameTooLong: too long" in state["error"]


@pytest.mark.parametrize(
    ("orchestration_input", "message"),
    [
        (None, "A directory to back up is required"),
        ({"root": ROOT}, "Unknown option"),
        ({"rootDirectory": 5}, "must be a string"),
        ("   ", "The directory is empty"),
    ],
)
def test_invalid_input_fails_before_scheduling_anything(orchestration_input, message):
    outcome, state = run(History(ORCH, orchestration_input))
    assert outcome == "failed"
    assert message in state["error"]
    assert state["actions"] == [[]]


def test_bare_string_posted_to_the_webhook_api_is_accepted():
    """The webhook stores the body parsed once: the context input is the path itself, not JSON text."""
    context = History(ORCH, ROOT).context()
    context["input"] = ROOT
    context["history"][1]["Input"] = json.dumps(ROOT)
    outcome, state = call_orchestrator(ORCH, context)
    assert outcome == "state"
    assert atoms(state["actions"][0])[0]["input"] == json.dumps(ROOT)


def test_number_posted_to_the_webhook_api_fails_with_a_clear_message():
    context = History(ORCH, None).context()
    context["input"] = 42
    outcome, state = call_orchestrator(ORCH, context)
    assert outcome == "failed"
    assert "got a JSON number" in state["error"]


def test_failures_are_carried_across_generations_and_reported_at_the_end():
    carried = {
        "after": f"{ROOT}/f01999",
        "filesTotal": 2_001,
        "filesDone": 2_000,
        "bytesDone": 99,
        "filesFailed": 1,
        "failures": [f"{ROOT}/f00007: PermissionError: denied"],
    }
    history = History(ORCH, {**REQUEST, "continuation": carried})
    _, state = run(history)
    [listing] = atoms(state["actions"][0])
    history.task_scheduled(0, LIST, listing["input"]).episode().task_completed(0, [f"{ROOT}/f02000"])
    outcome, state = run(copy_all(history, [f"{ROOT}/f02000"], 1, 1))
    assert outcome == "failed"
    assert state["error"] == (
        "1 of 2001 file(s) could not be backed up (the other 2000, 100 bytes, were): "
        f"{ROOT}/f00007: PermissionError: denied"
    )


def test_a_listing_that_fails_for_good_fails_with_its_own_message_only():
    history = History(ORCH, REQUEST).task_scheduled(0, LIST, json.dumps(ROOT))
    seq = 0
    for attempt in range(3):  # the host's retries (reference §8): failure, timer, re-attempt
        history.episode().task_failed(seq, LIST, "InvalidBackupRequest: Cannot list directory")
        history.timer_created(seq + 1, history.now())
        history.episode().timer_fired(seq + 1, history.now())
        if attempt < 2:
            history.task_scheduled(seq + 2, LIST, json.dumps(ROOT))
        seq += 2
    outcome, state = run(history)
    assert outcome == "failed"
    assert state["error"] == "InvalidBackupRequest: Cannot list directory"
