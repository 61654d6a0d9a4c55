"""Consoles and message helpers shared by the commands.

Messages are rich Text, not markup, because they carry paths, patterns and server text
that may contain square brackets.
"""

from __future__ import annotations

from rich.console import Console
from rich.text import Text


def consoles() -> tuple[Console, Console]:
    """Stdout for progress and results, stderr for errors; long lines are not re-wrapped."""
    return Console(soft_wrap=True), Console(stderr=True, soft_wrap=True)


def say(console: Console, message: str, style: str = "") -> None:
    """Print message as-is (no markup, no highlighting), optionally styled."""
    console.print(Text(message, style=style), highlight=False)
