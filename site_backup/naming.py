"""Blob names: the file's absolute POSIX path without the leading slash.

As in the seed's C# sample, nothing is flattened, so two files (or two roots) never share a
blob. A Windows drive letter is dropped and backslashes become slashes.
"""

from __future__ import annotations

from pathlib import PurePath, PurePosixPath, PureWindowsPath

from .errors import BackupError

MAX_NAME_LENGTH = 1024
MAX_SEGMENTS = 254


class BlobNameTooLong(BackupError):
    """The path exceeds what Blob Storage accepts as a blob name."""


def blob_name_for(path: str | PurePath) -> str:
    """The blob name for an absolute file path, e.g. ``/home/a b/c.txt`` -> ``home/a b/c.txt``."""
    text = str(path)
    pure: PurePath = PureWindowsPath(text) if _looks_like_windows(text) else PurePosixPath(text)
    if not pure.is_absolute():
        raise ValueError(f"Expected an absolute file path, got {text!r}.")
    parts = pure.parts[1:]  # drop the anchor: "/" or "C:\\"
    if not parts:
        raise ValueError(f"{text!r} names a root, not a file.")
    name = "/".join(parts)
    if len(name) > MAX_NAME_LENGTH or len(parts) > MAX_SEGMENTS:
        raise BlobNameTooLong(
            f"{text!r} cannot be a blob name: Blob Storage allows {MAX_NAME_LENGTH} characters and "
            f"{MAX_SEGMENTS} path segments. Exclude it with an 'exclude' pattern to back up the rest."
        )
    return name


def _looks_like_windows(text: str) -> bool:
    return (len(text) >= 3 and text[1] == ":" and text[2] in "\\/") or text.startswith("\\\\")
