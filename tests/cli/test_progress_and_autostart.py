"""The terminal progress bar renders, and services are only started when a local host is missing."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from backup_cli.autostart import NotAFunctionsHost, address, host_missing, local_host, url_port
from backup_cli.client import Status
from backup_cli.progress import BarView, LineView, progress_view

from .fake_host import Scenario, fake_host


def test_bar_view_renders_counts_on_a_terminal():
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120)
    view = progress_view(console)
    assert isinstance(view, BarView)
    with view:
        view.show(Status("Running", {"phase": "listing", "filesDone": 0, "bytesDone": 0}))
        view.show(
            Status(
                "Running",
                {"phase": "copying", "filesTotal": 4, "bytesTotal": 5_000_000, "filesDone": 2, "bytesDone": 2_500_000},
            )
        )
    text = buffer.getvalue()
    assert "Copying" in text
    assert "2/4 files" in text
    assert "2.5 MB of 5.0 MB" in text


def test_plain_lines_off_a_terminal():
    console = Console(file=io.StringIO(), force_terminal=False)
    assert isinstance(progress_view(console), LineView)


def test_running_local_host_is_used_as_it_is_and_named():
    buffer = io.StringIO()
    with fake_host(Scenario()) as url:
        assert not host_missing(url)
        with local_host(url, Console(file=buffer)) as started:
            assert started is False
    assert host_missing(url)
    assert buffer.getvalue() == f"Using the host already running at {url}\n"


def test_something_else_on_the_port_is_refused_before_use():
    with (
        fake_host(Scenario(not_a_host=True)) as url,
        pytest.raises(NotAFunctionsHost, match="stop it or pass --url"),
        local_host(url, Console(file=io.StringIO())),
    ):
        raise AssertionError("must not be used")


def test_addresses_in_messages():
    assert address("http://127.0.0.1:7071/") == "127.0.0.1:7071"
    assert address("http://[::1]:7071") == "[::1]:7071"
    assert address("http://localhost") == "localhost:80"


def test_remote_urls_are_never_started_locally():
    assert not host_missing("https://example.invalid")
    assert url_port("https://example.invalid") == 443
    assert url_port("http://127.0.0.1:7071") == 7071
