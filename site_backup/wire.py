"""File paths as they travel between the orchestrator and the activities (JSON).

A POSIX file name need not be valid UTF-8; Python keeps the odd bytes as lone surrogates, which
JSON can carry but the Functions host (.NET) would replace, so the copy would look for a file
that does not exist. Such a path travels as ``fsbytes:<base64 of its bytes>`` instead; every
other path travels as it is, so the listing stays readable and matches the seed's contract.
"""

import base64
import os

PREFIX = "fsbytes:"


def to_wire(path: str) -> str:
    """The path itself, or its bytes in base64 when it is not valid UTF-8."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return PREFIX + base64.urlsafe_b64encode(os.fsencode(path)).decode("ascii")
    return path


def from_wire(text: str) -> str:
    """The file-system path for a wire path (absolute paths never start with the prefix)."""
    if text.startswith(PREFIX):
        return os.fsdecode(base64.urlsafe_b64decode(text[len(PREFIX) :]))
    return text
