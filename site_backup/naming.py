"""Blob names: the file's absolute POSIX path without the leading slash.

As in the seed's C# sample, nothing is flattened, so two files (or two roots) never share a
blob. A Windows drive letter is dropped and backslashes become slashes.
"""

from __future__ import annotations

from pathlib import PurePath, PurePosixPath, PureWindowsPath


def blob_name_for(path: str | PurePath) -> str:
    """The blob name for an absolute file path, e.g. ``/home/a b/c.txt`` -> ``home/a b/c.txt``."""
    text = str(path)
    pure: PurePath = PureWindowsPath(text) if _looks_like_windows(text) else PurePosixPath(text)
    if not pure.is_absolute():
        raise ValueError(f"Expected an absolute file path, got {text!r}.")
    parts = pure.parts[1:]  # drop the anchor: "/" or "C:\\"
    if not parts:
        raise ValueError(f"{text!r} names a root, not a file.")
    return "/".join(parts)


def _looks_like_windows(text: str) -> bool:
    return (len(text) >= 3 and text[1] == ":" and text[2] in "\\/") or text.startswith("\\\\")
