"""Fan-out benchmark for devhost: N no-op activities through task_all, against a plain thread-pool baseline.

Usage: .venv/bin/python bench/devhost_fanout.py [--n 10000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import textwrap
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.devhost_process import DevhostProcess

APP = textwrap.dedent("""
    import azure.durable_functions as df
    import azure.functions as func

    app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.activity_trigger(input_name="x")
    def noop(x: int) -> int:
        return x

    @app.orchestration_trigger(context_name="context")
    def fan_out(context: df.DurableOrchestrationContext):
        n = context.get_input()["n"]
        results = yield context.task_all([context.call_activity("noop", i) for i in range(n)])
        return len(results)
""")


def noop(x: int) -> int:
    return x


def baseline(n: int, workers: int) -> float:
    """Activities/s of a plain thread pool calling the same no-op function N times."""
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(noop, range(n)))
    return n / (time.perf_counter() - started)


def http(method: str, url: str, body: bytes | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="devhost-bench-") as tmp:
        app_dir = Path(tmp)
        (app_dir / "function_app.py").write_text(APP)
        (app_dir / "host.json").write_text(json.dumps({"version": "2.0"}))
        (app_dir / "local.settings.json").write_text(json.dumps({"Values": {}}))
        host = DevhostProcess(app_dir, hub=app_dir / "hub.sqlite")
        host.start()
        try:
            started = time.perf_counter()
            code, body = http(
                "POST",
                f"{host.base_url}/runtime/webhooks/durabletask/orchestrators/fan_out",
                json.dumps({"n": args.n}).encode(),
            )
            assert code == 202, (code, body)
            status_url = f"{host.base_url}/runtime/webhooks/durabletask/instances/{body['id']}"
            while True:
                code, status = http("GET", status_url)
                if status["runtimeStatus"] not in ("Pending", "Running"):
                    break
                if time.perf_counter() - started > args.timeout:
                    raise SystemExit(f"timed out; last status {status['runtimeStatus']}")
                time.sleep(0.05)
            elapsed = time.perf_counter() - started
            stats = host.stats()
        finally:
            host.stop()
    if status["runtimeStatus"] != "Completed" or status["output"] != args.n:
        raise SystemExit(f"unexpected result: {status}")
    rate = args.n / elapsed
    base = baseline(args.n, 20)
    print(f"devhost fan-out: {args.n} activities in {elapsed:.2f}s = {rate:.0f} activities/s")
    print(f"baseline thread pool: {base:.0f} calls/s; devhost/baseline ratio = {rate / base:.4f}")
    print("breakdown (seconds summed over threads; *_cpu_seconds exclude waiting for the GIL):")
    for key in (
        "episodes",
        "events_delivered",
        "replay_seconds",
        "replay_cpu_seconds",
        "context_build_seconds",
        "plan_seconds",
        "episode_wall_seconds",
        "batching_wait_seconds",
        "sqlite_seconds",
        "sqlite_cpu_seconds",
        "sqlite_transactions",
        "activities_run",
        "activity_seconds",
        "completion_batches",
        "completions_committed",
    ):
        value = stats.get(key)
        print(f"  {key:24s} {value:.3f}" if isinstance(value, float) else f"  {key:24s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
