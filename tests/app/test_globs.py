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
        ("d/a[!x]b", "d/a/b", False),
        ("/build", "build", True),
        ("/build", "src/build", False),
        ("build", "src/build", True),
    ],
)
def test_matching(pattern, path, expected):
    assert compile_glob(pattern).matches(path, path.rsplit("/", 1)[-1]) is expected


def test_a_trailing_slash_matches_directories_only():
    assert compile_glob("cache/").matches("a/cache", "cache", is_directory=True)
    assert not compile_glob("cache/").matches("a/cache", "cache", is_directory=False)
    assert compile_glob("/tmp/").matches("tmp", "tmp", is_directory=True)
    assert not compile_glob("/tmp/").matches("x/tmp", "tmp", is_directory=True)


def test_an_include_pattern_for_a_directory_says_how_to_include_its_files():
    with pytest.raises(InvalidBackupRequest, match="'logs/\\*\\*'"):
        parse_backup_request({"rootDirectory": "/x", "include": ["logs/"]})


@pytest.mark.parametrize("pattern", ["[z-a]", "x[b-a]y"])
def test_invalid_patterns_are_a_request_error(pattern):
    with pytest.raises(InvalidBackupRequest, match="not valid"):
        parse_backup_request({"rootDirectory": "/x", "exclude": [pattern]})
