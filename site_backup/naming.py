"""Blob names: the file's absolute POSIX path without the leading slash.

As in the seed's C# sample, nothing is flattened, so two files (or two roots) never share a
blob. A Windows drive letter is dropped and backslashes become slashes. Within a POSIX name,
two characters cannot be stored as they are and are percent-encoded: a backslash (``%5C``),
which Blob Storage would turn into a slash and so merge ``x\\y`` with ``x/y``, and each byte of
a name that is not valid UTF-8 (``caf\xe9`` becomes ``caf%E9``).
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
    name = "/".join(blob_segment(part) for part in parts)
    if len(name) > MAX_NAME_LENGTH or len(parts) > MAX_SEGMENTS:
        raise BlobNameTooLong(
            f"{text!r} cannot be a blob name: Blob Storage allows {MAX_NAME_LENGTH} characters and "
            f"{MAX_SEGMENTS} path segments. Exclude it with an 'exclude' pattern to back up the rest."
        )
    return name


def _looks_like_windows(text: str) -> bool:
    drive = len(text) >= 3 and text[0].isascii() and text[0].isalpha() and text[1] == ":" and text[2] in "\\/"
    return drive or text.startswith("\\\\")


def blob_segment(part: str) -> str:
    """One path segment as it can be stored: backslashes and undecodable bytes percent-encoded.

    ``%`` itself is kept, so ordinary names stay as they are; the listing refuses the rare
    directory where an encoded name equals a sibling's literal name.
    """
    if "\\" not in part and part.isascii():
        return part
    out = []
    for char in part:
        if char == "\\":
            out.append("%5C")
        elif "\udc80" <= char <= "\udcff":  # a byte that os.fsdecode could not decode
            out.append(f"%{ord(char) - 0xDC00:02X}")
        elif "\ud800" <= char <= "\udfff":
            out.append(f"%u{ord(char):04X}")
        else:
            out.append(char)
    return "".join(out)
