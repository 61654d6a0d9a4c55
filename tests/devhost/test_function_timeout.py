"""host.json functionTimeout: an activity that runs longer fails its attempt with the host's exception."""

from __future__ import annotations

from pathlib import Path

import pytest
from http_client import call, wait_for_status

from devhost.settings import parse_function_timeout
from tests.support.devhost_process import running_devhost

APP = Path(__file__).parent / "apps" / "timeouts"


@pytest.fixture(scope="module")
def host():
    with running_devhost(APP) as devhost:
        yield devhost


@pytest.mark.parametrize("activity", ["sleep_async", "sleep_sync"])
def test_an_activity_past_the_timeout_fails_with_the_hosts_message(host, activity):
    # The activity would sleep for an hour: an answer within the wait below can only be the host's timeout.
    body = {"name": activity, "seconds": 3600}
    reply = call("POST", f"{host.base_url}/runtime/webhooks/durabletask/orchestrators/run_one", body=body)
    status = wait_for_status(host.base_url, reply.json()["id"], timeout=60)
    assert status["runtimeStatus"] == "Failed"
    assert (
        f"FunctionTimeoutException: Timeout value of 00:00:02 was exceeded by function: Functions.{activity}"
        in (status["output"])
    )
    assert f"exceeded by function '{activity}'" in host.output()


def test_an_activity_within_the_timeout_completes(host):
    reply = call("POST", f"{host.base_url}/runtime/webhooks/durabletask/orchestrators/run_one", body={"name": "quick"})
    status = wait_for_status(host.base_url, reply.json()["id"], timeout=30)
    assert (status["runtimeStatus"], status["output"]) == ("Completed", 10)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("00:10:00", 600.0), ("1.02:00:00", 93600.0), ("00:00:01.5", 1.5), ("-1", None), (None, None)],
)
def test_time_spans(text, seconds):
    assert parse_function_timeout(text) == seconds
