"""Deterministic trees for the benchmarks: same seed, same files, on every machine.

- ``reference``: 5,000 files of 1-16 KiB, 200 of 256 KiB-2 MiB and 4 of 64 MiB, with names that have spaces,
  unicode, ``#`` and ``%`` (about 524 MiB);
- ``tiny``: N files of 100 B-4 KiB in 100 directories of 10 subdirectories;
- ``big``: one file of the given size.

``python bench/trees.py reference|tiny|big DIR [N]`` writes one and prints its file count and bytes.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

NAMES = ["plain", "with space", "ünïcödé", "hash#tag", "per%cent", "mixed #% ü"]
MiB = 1024 * 1024


def _write(path: Path, data: bytes) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return len(data)


def reference(root: Path, seed: int = 1) -> tuple[int, int]:
    rng = random.Random(seed)
    total = files = 0
    for i in range(5000):
        path = root / NAMES[i % 6] / f"dir {i % 50:02d}" / f"{NAMES[(i // 6) % 6]} {i:05d}.txt"
        total += _write(path, rng.randbytes(rng.randint(1024, 16 * 1024)))
        files += 1
    for i in range(200):
        path = root / "media" / NAMES[i % 6] / f"img {i:03d}.bin"
        total += _write(path, rng.randbytes(rng.randint(256 * 1024, 2 * MiB)))
        files += 1
    for i in range(4):
        total += _write(root / "big" / f"blob {i} #.dat", rng.randbytes(64 * MiB))
        files += 1
    return files, total


def tiny(root: Path, count: int = 20_000, seed: int = 2) -> tuple[int, int]:
    """``count`` tiny files; written with plain open/write so a million take minutes, not hours."""
    rng = random.Random(seed)
    total = 0
    made: set[Path] = set()
    for i in range(count):
        directory = root / f"d{i % 100:03d}" / f"s{(i // 100) % 10}"
        if directory not in made:
            directory.mkdir(parents=True, exist_ok=True)
            made.add(directory)
        data = rng.randbytes(rng.randint(100, 4096))
        with open(directory / f"f{i:07d}.txt", "wb") as f:
            f.write(data)
        total += len(data)
    return count, total


def big(root: Path, size: int, seed: int = 3) -> tuple[int, int]:
    """One file of ``size`` bytes, written in 64 MiB pieces."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    piece = rng.randbytes(64 * MiB)
    with open(root / "big.bin", "wb") as f:
        left = size
        while left > 0:
            f.write(piece[: min(left, len(piece))])
            left -= min(left, len(piece))
    return 1, size


def main() -> None:
    kind, root = sys.argv[1], Path(sys.argv[2])
    if kind == "reference":
        files, total = reference(root)
    elif kind == "tiny":
        files, total = tiny(root, int(sys.argv[3]) if len(sys.argv) > 3 else 20_000)
    else:
        files, total = big(root, int(sys.argv[3]))
    print(f"{files} files, {total} bytes")


if __name__ == "__main__":
    main()
