"""devhost refuses, with an explanatory message, the apps the Python worker refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.devhost_process import run_devhost_to_exit

APPS = Path(__file__).parent / "apps"


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        ("refuse_two_apps", ["more than one FunctionApp", "app, other_app", "Blueprint"]),
        ("refuse_param_name", ["cannot load the orchestrator function", "['ctx']", 'context_name="context"']),
        ("refuse_annotation", ["cannot load the describe function", "invalid non-type annotation", "`dict`"]),
        ("refuse_sync_starter", ["cannot load the start function", "must be `async def`", "async def start"]),
    ],
)
def test_refused_apps_exit_non_zero_with_explanation(app, expected):
    result = run_devhost_to_exit(APPS / app)
    assert result.returncode != 0
    for fragment in expected:
        assert fragment in result.stderr, result.stderr
    assert "listening on" not in result.stdout


def test_missing_function_app_is_refused(tmp_path):
    (tmp_path / "host.json").write_text("{}")
    result = run_devhost_to_exit(tmp_path)
    assert result.returncode != 0
    assert "function_app.py not found" in result.stderr
