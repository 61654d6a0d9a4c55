"""Include/exclude glob patterns: what they match, and bad patterns refused up front."""

import pytest

from site_backup.errors import InvalidBackupRequest
from site_backup.globs import compile_glob
from site_backup.request import parse_backup_request


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("*.log", "a/b/app.log", True),
        ("*.log", "a/b/app.log.1", False),
        ("logs/*.txt", "logs/x.txt", True),
        ("logs/*.txt", "logs/sub/x.txt", False),
        ("logs/**/*.txt", "logs/sub/deeper/x.txt", True),
        ("logs/**/*.txt", "logs/x.txt", True),
        ("**/cache", "a/b/cache", True),
        ("file?.bin", "dir/file7.bin", True),
        ("[!a]*", "dir/b.txt", True),
        ("[!a]*", "dir/a.txt", False),
        ("[]]x", "]x", True),
        ("[\\]x", "\\x", True),
        ("a+b(1).txt", "a+b(1).txt", True),
        ("/tmp/", "x/tmp", True),
    ],
)
def test_matching(pattern, path, expected):
    assert compile_glob(pattern).matches(path, path.rsplit("/", 1)[-1]) is expected


@pytest.mark.parametrize("pattern", ["[z-a]", "x[b-a]y"])
def test_invalid_patterns_are_a_request_error(pattern):
    with pytest.raises(InvalidBackupRequest, match="not valid"):
        parse_backup_request({"rootDirectory": "/x", "exclude": [pattern]})
