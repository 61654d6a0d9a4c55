"""SIGKILL devhost in the middle of a fan-out; a restart on the same hub finishes the same instance without
re-running activities whose results were committed (in-flight ones run again: at-least-once)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from http_client import call, wait_for_status

from tests.support.devhost_process import DevhostProcess

APP = Path(__file__).parent / "apps" / "patterns"
N = 20


def _uncommitted_seqs(hub: Path) -> set[int]:
    """Activity work items still queued in the hub, i.e. results not yet committed."""
    conn = sqlite3.connect(f"file:{hub}?mode=ro", uri=True, timeout=5)
    try:
        return {row[0] for row in conn.execute("SELECT seq FROM activities")}
    finally:
        conn.close()


def _runs(markers: Path) -> dict[int, int]:
    counts: dict[int, int] = {}
    for marker in markers.iterdir():
        index = int(marker.name.split("-")[1])
        counts[index] = counts.get(index, 0) + 1
    return counts


def test_sigkill_mid_fan_out_then_resume(tmp_path):
    hub = tmp_path / "hub.sqlite"
    markers = tmp_path / "markers"
    markers.mkdir()
    first = DevhostProcess(APP, hub=hub).start()
    try:
        reply = call(
            "POST",
            f"{first.base_url}/runtime/webhooks/durabletask/orchestrators/slow_fan_out/crashy",
            {"dir": str(markers), "delay": 0.2, "n": N},
        )
        assert reply.status == 202
        deadline = time.monotonic() + 30
        while True:
            pending = _uncommitted_seqs(hub) if hub.exists() else set()
            done = N - len(pending) if pending else 0
            if 4 <= done <= N - 4:
                break
            assert time.monotonic() < deadline, f"fan-out never reached mid-way (done={done})"
            time.sleep(0.02)
        first.kill()
    finally:
        first.stop()
    committed = set(range(N)) - _uncommitted_seqs(hub)
    assert 0 < len(committed) < N

    second = DevhostProcess(APP, hub=hub).start()
    try:
        status = wait_for_status(second.base_url, "crashy", timeout=60)
        assert status["runtimeStatus"] == "Completed"
        assert status["output"] == sum(range(N))
        assert "resumed" in second.output()
        assert second.stop() == 0  # SIGTERM is a clean shutdown
    finally:
        second.stop()
    runs = _runs(markers)
    assert set(runs) == set(range(N))
    for index in committed:
        assert runs[index] == 1, f"activity {index} was committed before the crash but ran {runs[index]} times"
