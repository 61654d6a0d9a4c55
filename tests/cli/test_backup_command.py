"""The ``backup`` command against a fake host on a free loopback port.

The server stands in for the host because these tests cover the client alone: request body,
polling, progress lines, result and exit codes. The real app is exercised end to end elsewhere.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs

import pytest
from rich.console import Console

from backup_cli import backup, client
from backup_cli.__main__ import main
from backup_cli.processes import free_port
from backup_cli.project import PROJECT_ROOT

from .fake_host import Scenario, ended, fake_host, running

TOTAL_BYTES = 123_456_789


def completing() -> Scenario:
    """Two Running polls with progress, then Completed with the total byte count."""
    return Scenario(
        statuses=[
            running("listing", None, 0, 0),
            running("copying", 3, 1, 1000),
            ended("Completed", TOTAL_BYTES),
        ]
    )


@pytest.fixture(autouse=True)
def no_poll_wait(monkeypatch):
    """In-process runs poll without waiting; the subprocess test keeps the real cap."""
    monkeypatch.setattr(client, "MAX_POLL_SECONDS", 0.0)


def test_completed_backup_prints_total_and_exits_0(tmp_path, capsys):
    scenario = completing()
    with fake_host(scenario) as url:
        code = main(["backup", str(tmp_path), "--url", url])
    out = capsys.readouterr().out
    assert code == 0
    assert scenario.posted == [str(tmp_path)]
    assert scenario.polls == 3
    assert "Listing files: 0 files, 0 bytes" in out
    assert "Copying: 1/3 files, 1.0 kB" in out
    assert "Backup completed: 123.5 MB (123,456,789 bytes) in 3 files." in out


def test_relative_directory_is_sent_absolute(tmp_path, monkeypatch, capsys):
    (tmp_path / "site").mkdir()
    monkeypatch.chdir(tmp_path)
    scenario = completing()
    with fake_host(scenario) as url:
        assert main(["backup", "site", "--url", url, "--no-progress"]) == 0
    assert scenario.posted == [str(tmp_path / "site")]


def test_patterns_use_the_object_form(tmp_path, capsys):
    scenario = completing()
    with fake_host(scenario) as url:
        code = main(
            [
                "backup",
                str(tmp_path),
                "--url",
                url,
                "--include",
                "*.html",
                "--exclude",
                "*.tmp",
                "--exclude",
                "cache/**",
            ]
        )
    assert code == 0
    assert scenario.posted == [
        {"rootDirectory": str(tmp_path), "include": ["*.html"], "exclude": ["*.tmp", "cache/**"]}
    ]


def test_no_progress_prints_only_the_result(tmp_path, capsys):
    with fake_host(completing()) as url:
        assert main(["backup", str(tmp_path), "--url", url, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Copying" not in out
    assert "123,456,789 bytes" in out


def test_rejected_request_prints_the_error_and_exits_2(tmp_path, capsys):
    message = f"'{tmp_path}' is outside the allowed roots [root must be allowed]."
    scenario = Scenario(start_error=(400, message))
    with fake_host(scenario) as url:
        code = main(["backup", str(tmp_path), "--url", url])
    captured = capsys.readouterr()
    assert code == 2
    assert f"Error: {message} (HTTP 400)" in captured.err
    assert scenario.polls == 0


def test_server_error_exits_1(tmp_path, capsys):
    with fake_host(Scenario(start_error=(503, "The backup could not be started."))) as url:
        code = main(["backup", str(tmp_path), "--url", url])
    assert code == 1
    assert "The backup could not be started. (HTTP 503)" in capsys.readouterr().err


def test_failed_backup_prints_the_output_and_exits_1(tmp_path, capsys):
    scenario = Scenario(statuses=[running("copying", 2, 1, 10), ended("Failed", "Upload of a.txt failed: 403")])
    with fake_host(scenario) as url:
        code = main(["backup", str(tmp_path), "--url", url])
    assert code == 1
    assert "Backup failed: Upload of a.txt failed: 403" in capsys.readouterr().err


def test_terminated_backup_exits_1(tmp_path, capsys):
    with fake_host(Scenario(statuses=[ended("Terminated", "stopped by operator")])) as url:
        code = main(["backup", str(tmp_path), "--url", url])
    assert code == 1
    assert "Backup terminated: stopped by operator" in capsys.readouterr().err


def test_no_start_fails_clearly_when_nothing_listens(tmp_path, capsys):
    code = main(["backup", str(tmp_path), "--url", f"http://127.0.0.1:{free_port()}", "--no-start"])
    assert code == 1
    assert "Could not reach" in capsys.readouterr().err


def test_module_entry_point_runs_a_backup(tmp_path):
    """Through `python -m backup_cli`, with the real poll cap, as `make backup` runs it."""
    with fake_host(completing()) as url:
        result = subprocess.run(
            [sys.executable, "-m", "backup_cli", "backup", str(tmp_path), "--url", url],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    assert "Backup completed: 123.5 MB (123,456,789 bytes)" in result.stdout


@pytest.mark.parametrize(("header", "seconds"), [("10", 1.0), ("0.25", 0.25), (None, 1.0), ("soon", 1.0)])
def test_retry_after_is_capped(monkeypatch, header, seconds):
    monkeypatch.setattr(client, "MAX_POLL_SECONDS", 1.0)
    assert client.retry_after(header) == seconds


def test_interrupt_stops_following_and_says_the_backup_goes_on(tmp_path):
    """SIGINT once progress shows: exit 130 and a message that the host keeps the backup running."""
    scenario = Scenario(statuses=[running("copying", 10, 1, 100)])
    with fake_host(scenario) as url:
        process = subprocess.Popen(
            [sys.executable, "-m", "backup_cli", "backup", str(tmp_path), "--url", url],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            assert process.stdout is not None
            for line in process.stdout:
                if line.startswith("Copying"):
                    break
            process.send_signal(signal.SIGINT)
            _, err = process.communicate(timeout=60)
        finally:
            process.kill()
            process.wait()
    assert process.returncode == 130
    assert "Stopped following the backup; it keeps running in the host." in err
    assert scenario.terminate_queries == []


class InterruptingView:
    """A progress view that acts like Ctrl-C on the first status, so the interrupt lands mid-backup."""

    def __enter__(self) -> InterruptingView:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def show(self, status: client.Status) -> None:
        raise KeyboardInterrupt


def test_interrupt_terminates_a_backup_on_a_host_the_cli_started_before_stopping_it(tmp_path, monkeypatch, capsys):
    """Otherwise the paused backup would come back, unseen, on every later devhost start."""
    scenario = Scenario(statuses=[running("copying", 10, 1, 100)])

    @contextmanager
    def host_started_here(url: str, console: Console, allowed: bool = True, directory: Path | None = None):
        try:
            yield True
        finally:
            scenario.events.append("host stopped")

    monkeypatch.setattr(backup, "local_host", host_started_here)
    monkeypatch.setattr(backup, "progress_view", lambda console, enabled=True: InterruptingView())
    with fake_host(scenario) as url:
        code = main(["backup", str(tmp_path), "--url", url])
    err = capsys.readouterr().err
    assert code == 130
    assert scenario.events == ["terminate", "host stopped"]
    [query] = scenario.terminate_queries
    assert "reason=Stopped%20from%20the%20command%20line&" in query
    assert parse_qs(query)["taskHub"] == ["SiteBackupHub"]
    assert (
        "Backup stopped. Files copied so far stay backed up; run the same command again to continue "
        "(unchanged files are skipped)." in err
    )
    assert "pauses" not in err


def test_interrupt_on_a_host_already_running_only_stops_following(tmp_path, monkeypatch, capsys):
    scenario = Scenario(statuses=[running("copying", 10, 1, 100)])
    monkeypatch.setattr(backup, "progress_view", lambda console, enabled=True: InterruptingView())
    with fake_host(scenario) as url:
        code = main(["backup", str(tmp_path), "--url", url])
    err = capsys.readouterr().err
    assert code == 130
    assert scenario.terminate_queries == []
    assert "it keeps running in the host. Status: " in err


def test_a_host_already_running_is_named(tmp_path, capsys):
    with fake_host(completing()) as url:
        assert main(["backup", str(tmp_path), "--url", url, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"Using the host already running at {url}\n" in out
    assert "Starting" not in out


@pytest.mark.parametrize("no_start", [[], ["--no-start"]])
def test_a_port_held_by_something_else_fails_fast(tmp_path, capsys, no_start):
    scenario = Scenario(not_a_host=True)
    with fake_host(scenario) as url:
        code = main(["backup", str(tmp_path), "--url", url, *no_start])
    err = capsys.readouterr().err
    address = url.removeprefix("http://")
    assert code == 1
    assert f"Something that is not the Functions host is listening on {address}; stop it or pass --url." in err
    assert "<html>" not in err
    assert scenario.posted == []


@pytest.fixture
def no_services(monkeypatch) -> Iterator[None]:
    """Fail the test if the command gets as far as starting (or looking for) a host."""

    def refuse(*args, **kwargs):
        raise AssertionError("local_host must not be reached")

    monkeypatch.setattr(backup, "local_host", refuse)
    yield


def test_a_missing_directory_is_reported_before_any_service_starts(tmp_path, capsys, no_services):
    missing = tmp_path / "missing"
    code = main(["backup", str(missing), "--url", f"http://127.0.0.1:{free_port()}"])
    assert code == 2
    assert f"The directory '{missing}' does not exist." in capsys.readouterr().err


def test_a_file_is_reported_as_not_a_directory_before_any_service_starts(tmp_path, capsys, no_services):
    file = tmp_path / "notes.txt"
    file.write_text("x")
    code = main(["backup", str(file), "--url", f"http://localhost:{free_port()}"])
    assert code == 2
    assert f"'{file}' is not a directory; give the directory that holds the files." in capsys.readouterr().err


def test_a_remote_host_checks_the_directory_itself(tmp_path, monkeypatch, capsys):
    """A remote host has its own file system, so a path missing here is still sent."""
    sent = []

    def remote_rejects(session, url, body, orchestrator):
        sent.append(body)
        raise client.HostError(400, "remote says no")

    monkeypatch.setattr(backup, "start_backup", remote_rejects)
    code = main(["backup", "/srv/site", "--url", "https://backup.example.invalid"])
    assert code == 2
    assert sent == ["/srv/site"]
    assert "remote says no" in capsys.readouterr().err
