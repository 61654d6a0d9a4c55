"""Session fixtures: a real Azurite from the project's node_modules, on free ports."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from tests.support.azurite import Azurite, running_azurite  # noqa: E402
from tests.support.worker import close_worker_loop  # noqa: E402


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """One Azurite for the whole session, stopped at the end."""
    with running_azurite() as instance:
        yield instance


@pytest.fixture(scope="session", autouse=True)
def _worker_loop_closed() -> Iterator[None]:
    """The app's connections on the in-process worker loop are closed when the session ends."""
    yield
    close_worker_loop()
