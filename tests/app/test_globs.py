"""Include/exclude glob patterns: what they match, and bad patterns refused up front."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("logs/**", "logs/a", True),
        ("logs/**", "logs/a/b", True),
        ("logs/**", "logs", False),
        ("**/x", "x", True),
        ("a/**/b/**/c", "a/b/c", True),
        ("a/**/b/**/c", "a/q/b/r/s/c", True),
        ("a/**/b/**/c", "a/q/r/s/c", False),
        ("a/x**y", "a/xzy", True),
        ("a/x**y", "a/x/z/y", False),  # as in .gitignore, ** inside a segment is an ordinary *
        ("*.tar.*", "backups/site.tar.gz", True),
        ("f*[0-9]?.log", "f12x.log", True),
        ("f*[0-9]?.log", "f.log", False),
    ],
)
def test_segments_and_globstars(pattern, path, expected):
    assert compile_glob(pattern).matches(path, path.rsplit("/", 1)[-1]) is expected


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("pattern", "path"),
    [
        ("*a*a*a*a*a*a*a*a*a*a*a*ab", "a" * 200),
        ("**/a/**/a/**/a/**/a/**/a/**/a/**/b", "/".join(["a"] * 200)),
        ("*" + "?*" * 200 + "b", "a" * 255),
    ],
)
def test_pathological_patterns_finish_at_once(pattern, path):
    """Backtracking regular expressions take exponential time on these; the deadline catches a hang."""
    assert compile_glob(pattern).matches(path, path.rsplit("/", 1)[-1]) is False


def test_pattern_count_and_length_are_bounded():
    with pytest.raises(InvalidBackupRequest, match="at most 512"):
        parse_backup_request({"rootDirectory": "/x", "exclude": ["a" * 513]})
    with pytest.raises(InvalidBackupRequest, match="at most 64"):
        parse_backup_request({"rootDirectory": "/x", "include": [f"*.{i}" for i in range(65)]})


def _reference_match(pattern: list[str], path: list[str]) -> bool:
    """Plain backtracking over segments and characters: slow, obviously right, for small inputs only."""
    if not pattern:
        return not path
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_reference_match(rest, path[i:]) for i in range(len(path) + 1))
    return bool(path) and _reference_segment(head, path[0]) and _reference_match(rest, path[1:])


def _reference_segment(glob: str, name: str) -> bool:
    if not glob:
        return not name
    if glob[0] == "*":
        return any(_reference_segment(glob.lstrip("*"), name[i:]) for i in range(len(name) + 1))
    return bool(name) and (glob[0] == "?" or glob[0] == name[0]) and _reference_segment(glob[1:], name[1:])


@settings(max_examples=400, deadline=None)
@given(
    pattern=st.lists(st.one_of(st.just("**"), st.text("ab*?", min_size=1, max_size=5)), min_size=1, max_size=4),
    path=st.lists(st.text("ab", min_size=1, max_size=5), min_size=1, max_size=5),
)
def test_agrees_with_plain_backtracking(pattern, path):
    glob = "/" + "/".join(pattern)  # anchored: matched against the whole relative path
    expected = _reference_match([*pattern[:-1], "?*", "**"] if pattern[-1] == "**" else pattern, path)
    assert compile_glob(glob).matches("/".join(path), path[-1]) is expected
