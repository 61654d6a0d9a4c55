"""The tree changes while it is backed up: files appended to, truncated, replaced, deleted, made unreadable,
swapped for FIFOs and for symlinks out of the root. Every stored blob is a consistent copy of some version of
its file (never a torn one, never an outside file), every file not stored is counted, nothing hangs, and a
run once the changes stop stores every file exactly."""

from __future__ import annotations

import contextlib
import os
import random
import stat
import threading
import time
from pathlib import Path

from harness import progress, scenario, tree_of, verify

TUNING = {"batchFiles": 20, "pageUnits": 4, "window": 2, "groupSize": 1}
CHANGES = ("append", "truncate", "replace", "delete", "unreadable", "fifo", "symlink_out")


class Mutator(threading.Thread):
    """Changes random files of the tree until stopped; remembers every content each file has had."""

    def __init__(self, root: Path, secret: Path, seed: int = 5) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.secret = secret
        self.random = random.Random(seed)
        self.stopping = threading.Event()
        self.versions: dict[Path, list[bytes]] = {p: [p.read_bytes()] for p in root.rglob("*") if p.is_file()}
        self.done: dict[str, int] = dict.fromkeys(CHANGES, 0)

    def run(self) -> None:
        paths = sorted(self.versions)
        while not self.stopping.is_set():
            path = self.random.choice(paths)
            change = self.random.choice(CHANGES)
            try:
                self._change(path, change)
                self.done[change] += 1
            except OSError:
                pass  # e.g. the file is a FIFO or was deleted by an earlier change
            time.sleep(0.002)

    def _change(self, path: Path, change: str) -> None:
        if not path.exists() or not stat.S_ISREG(os.lstat(path).st_mode):
            # Gone, a FIFO or a symlink since an earlier change: a regular file again (never open a FIFO here:
            # opening one blocks until the other end is opened).
            if path.is_symlink() or path.exists():
                path.unlink()
            path.write_bytes(f"recreated {time.time_ns()}\n".encode())
        elif change == "append":
            with path.open("ab") as f:
                f.write(b"+appended\n")
        elif change == "truncate":
            with path.open("r+b") as f:
                f.truncate(max(0, f.seek(0, os.SEEK_END) // 2))
        elif change == "replace":  # written next to the tree, then renamed over the file (atomic)
            new = self.root.parent / "replacement"
            new.write_bytes(f"replaced {time.time_ns()}\n".encode())
            new.replace(path)
        elif change == "delete":
            path.unlink()
        elif change == "unreadable":
            path.chmod(0)
        elif change == "fifo":
            path.unlink()
            os.mkfifo(path)
        else:
            path.unlink()
            path.symlink_to(self.secret)
        if path.is_file() and not path.is_symlink():
            with contextlib.suppress(OSError):  # unreadable (when not running as root)
                self.versions[path].append(path.read_bytes())


def test_a_tree_changing_under_the_backup(tmp_path):
    files = tree_of(1_200, seed=3)
    secret = tmp_path.parent / f"{tmp_path.name}-outside-secret.txt"
    secret.write_bytes(b"SECRET outside the allowed roots\n")
    try:
        with scenario(tmp_path, files, TUNING) as case:
            mutator = Mutator(case.root, secret)
            case.start_host()
            instance = case.start_backup()
            mutator.start()
            try:
                final = case.wait(instance, deadline_s=600)
            finally:
                mutator.stopping.set()
                mutator.join()
            assert final["runtimeStatus"] in ("Completed", "Failed"), final
            client = case.storage.container(case.container)
            for blob in client.list_blobs():
                data = client.download_blob(blob.name).readall()
                path = Path("/" + blob.name)
                assert data != secret.read_bytes(), f"{blob.name} holds a file from outside the roots"
                assert data in mutator.versions[path], f"{blob.name} is not any version its file ever had"
            for path in case.root.rglob("*"):  # make it quiet and readable, then back it up again
                if path.is_file() and not path.is_symlink():
                    path.chmod(0o644)
            again = case.wait(case.start_backup(), deadline_s=300)
            assert again["runtimeStatus"] == "Completed", again
            found = verify(case.storage, case.container, case.root, again)
            assert found["correct"] == found["files"]
            assert progress(again)["filesFailed"] == 0
            assert sum(mutator.done.values()) > 100, mutator.done
    finally:
        secret.unlink()
