"""The task hub: one SQLite database in WAL mode holding instances, histories and queued work.

Every episode commits in one transaction, so a crash (even SIGKILL) loses nothing that was acknowledged: on
the next start, queued messages are delivered again and unfinished activity work items are run again.
All methods are called from one dedicated thread.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InstanceExists, StaleEpisode
from .model import INSTANCE_COLUMNS, ActivityRow, Instance, MessageRow, RuntimeStatus

SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    instance_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    status TEXT NOT NULL,
    input TEXT,
    output TEXT,
    custom_status TEXT,
    created_time TEXT NOT NULL,
    last_updated_time TEXT NOT NULL,
    parent_instance_id TEXT,
    parent_execution_id TEXT,
    parent_task_id INTEGER,
    exec_state TEXT,
    suspended INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS instances_created ON instances(created_time);
CREATE TABLE IF NOT EXISTS history (
    instance_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (instance_id, position)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    instance_id TEXT NOT NULL,
    execution_id TEXT,
    visible_at REAL NOT NULL,
    event TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_instance ON messages(instance_id);
CREATE TABLE IF NOT EXISTS activities (
    id INTEGER PRIMARY KEY,
    instance_id TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    input TEXT
);
CREATE INDEX IF NOT EXISTS activities_instance ON activities(instance_id);
CREATE TABLE IF NOT EXISTS timers (
    name TEXT PRIMARY KEY,
    status TEXT NOT NULL
);
"""


@dataclass
class EpisodeWrite:
    """Everything one episode changes, applied atomically."""

    instance_id: str
    row: Instance
    append_events: list[tuple[int, str]] = field(default_factory=list)
    reset_history: bool = False
    consumed_message_ids: list[int] = field(default_factory=list)
    activities: list[ActivityRow] = field(default_factory=list)
    messages: list[MessageRow] = field(default_factory=list)
    children: list[tuple[Instance, MessageRow]] = field(default_factory=list)
    drop_outstanding: bool = False
    drop_execution_id: str | None = None
    reject_child: Callable[[MessageRow], MessageRow] | None = None
    expected_execution_id: str | None = None


class Store:
    """SQLite access; timings are accumulated in `busy_seconds` for the stats endpoint."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA busy_timeout=5000")
        self.conn.executescript(SCHEMA)
        self.busy_seconds = 0.0  # wall time inside transactions (includes waiting for the GIL)
        self.cpu_seconds = 0.0  # CPU time of the database thread inside transactions
        self.transactions = 0

    def close(self) -> None:
        self.conn.close()

    def max_ids(self) -> tuple[int, int]:
        """Highest message and activity ids, so new ids continue after a restart."""
        msg = self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM messages").fetchone()[0]
        act = self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM activities").fetchone()[0]
        return int(msg), int(act)

    # ---- transactions -------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed when the block ends, rolled back if it raises; timed for the stats."""
        cpu_started = time.thread_time()
        self.conn.execute("BEGIN IMMEDIATE")
        started = time.perf_counter()
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            self.busy_seconds += time.perf_counter() - started
            raise
        self.conn.execute("COMMIT")
        self.busy_seconds += time.perf_counter() - started
        self.cpu_seconds += time.thread_time() - cpu_started
        self.transactions += 1

    def _insert_messages(self, rows: Iterable[MessageRow]) -> None:
        self.conn.executemany(
            "INSERT INTO messages(id, instance_id, execution_id, visible_at, event) VALUES (?, ?, ?, ?, ?)",
            [(m.id, m.instance_id, m.execution_id, m.visible_at, json.dumps(m.event)) for m in rows],
        )

    def _upsert_instance(self, row: Instance) -> None:
        cols = ", ".join(INSTANCE_COLUMNS)
        marks = ", ".join("?" for _ in INSTANCE_COLUMNS)
        self.conn.execute(f"INSERT OR REPLACE INTO instances({cols}) VALUES ({marks})", row.to_row())

    def _forget(self, instance_id: str, keep_row: bool = False) -> None:
        if not keep_row:
            self.conn.execute("DELETE FROM instances WHERE instance_id = ?", (instance_id,))
        self.conn.execute("DELETE FROM history WHERE instance_id = ?", (instance_id,))
        self.conn.execute("DELETE FROM messages WHERE instance_id = ?", (instance_id,))
        self.conn.execute("DELETE FROM activities WHERE instance_id = ?", (instance_id,))

    def _status_of(self, instance_id: str) -> RuntimeStatus | None:
        found = self.conn.execute("SELECT status FROM instances WHERE instance_id = ?", (instance_id,)).fetchone()
        return RuntimeStatus(found[0]) if found else None

    def create_instance(self, row: Instance, start: MessageRow) -> None:
        """Create (or overwrite a finished) instance with its ExecutionStarted message."""
        with self.transaction():
            status = self._status_of(row.instance_id)
            if status is not None and status.is_live:
                raise InstanceExists(status)
            self._forget(row.instance_id)
            self._upsert_instance(row)
            self._insert_messages([start])

    def commit_episode(self, write: EpisodeWrite) -> list[MessageRow]:
        """Apply one episode atomically. Returns the child starts that were rejected (their id is live).

        Each rejected start's failure message (`reject_child`) is queued in the same transaction and appended to
        `write.messages` once committed.
        """
        rejected: list[MessageRow] = []
        failures: list[MessageRow] = []
        with self.transaction() as conn:
            iid = write.instance_id
            if write.expected_execution_id is not None:
                found = conn.execute("SELECT execution_id FROM instances WHERE instance_id = ?", (iid,)).fetchone()
                if found is None or found[0] != write.expected_execution_id:
                    raise StaleEpisode(iid)
            if write.reset_history:
                conn.execute("DELETE FROM history WHERE instance_id = ?", (iid,))
            if write.drop_outstanding:
                conn.execute("DELETE FROM messages WHERE instance_id = ?", (iid,))
                conn.execute("DELETE FROM activities WHERE instance_id = ?", (iid,))
            else:
                if write.consumed_message_ids:
                    conn.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in write.consumed_message_ids])
                if write.drop_execution_id is not None:
                    # Continue-as-new: the old execution's own work goes; unpinned messages not yet delivered
                    # (events, terminate, suspend, resume) stay queued for the new execution.
                    old = (iid, write.drop_execution_id)
                    conn.execute("DELETE FROM messages WHERE instance_id = ? AND execution_id = ?", old)
                    conn.execute("DELETE FROM activities WHERE instance_id = ? AND execution_id = ?", old)
            self._upsert_instance(write.row)
            if write.append_events:
                conn.executemany(
                    "INSERT OR REPLACE INTO history(instance_id, position, event) VALUES (?, ?, ?)",
                    [(iid, pos, text) for pos, text in write.append_events],
                )
            if write.activities:
                conn.executemany(
                    "INSERT INTO activities(id, instance_id, execution_id, seq, name, input) VALUES (?, ?, ?, ?, ?, ?)",
                    [(a.id, a.instance_id, a.execution_id, a.seq, a.name, a.input) for a in write.activities],
                )
            for child_row, child_start in write.children:
                status = self._status_of(child_row.instance_id)
                if status is not None and status.is_live:
                    rejected.append(child_start)
                    if write.reject_child is not None:
                        failures.append(write.reject_child(child_start))
                    continue
                self._forget(child_row.instance_id)
                self._upsert_instance(child_row)
                self._insert_messages([child_start])
            self._insert_messages(write.messages)
            self._insert_messages(failures)
        write.messages.extend(failures)
        return rejected

    def add_messages(self, rows: Sequence[MessageRow]) -> None:
        with self.transaction():
            self._insert_messages(rows)

    def delete_messages(self, ids: Sequence[int]) -> None:
        with self.transaction() as conn:
            conn.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in ids])

    def complete_activities(self, done: Sequence[tuple[int, MessageRow]]) -> None:
        """Commit a batch of activity results: work items deleted, completion messages queued."""
        with self.transaction() as conn:
            conn.executemany("DELETE FROM activities WHERE id = ?", [(act_id,) for act_id, _ in done])
            self._insert_messages([msg for _, msg in done])

    def purge(self, instance_ids: Sequence[str]) -> int:
        with self.transaction():
            for iid in instance_ids:
                self._forget(iid)
        return len(instance_ids)

    # ---- reads --------------------------------------------------------------------------------------

    def timer_status(self, name: str) -> str | None:
        """A timer function's schedule status (the host keeps it in a blob, timers/<host>/<function>/status)."""
        found = self.conn.execute("SELECT status FROM timers WHERE name = ?", (name,)).fetchone()
        return found[0] if found else None

    def save_timer_status(self, name: str, status: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO timers(name, status) VALUES (?, ?)", (name, status))

    def get_instance(self, instance_id: str) -> Instance | None:
        found = self.conn.execute(
            f"SELECT {', '.join(INSTANCE_COLUMNS)} FROM instances WHERE instance_id = ?", (instance_id,)
        ).fetchone()
        return Instance.from_row(found) if found else None

    def load_history(self, instance_id: str) -> list[str]:
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT event FROM history WHERE instance_id = ? ORDER BY position", (instance_id,)
            )
        ]

    def load_messages(self, instance_id: str) -> list[MessageRow]:
        """The instance's queued (unconsumed) messages, in arrival order."""
        return [
            MessageRow(r[0], r[1], r[2], r[3], json.loads(r[4]))
            for r in self.conn.execute(
                "SELECT id, instance_id, execution_id, visible_at, event FROM messages"
                " WHERE instance_id = ? ORDER BY id",
                (instance_id,),
            )
        ]

    def load_runtime(self, instance_id: str) -> tuple[Instance | None, list[str], list[MessageRow]]:
        """An instance's row, its history and its queued messages (to rebuild what a runtime was holding)."""
        started = time.perf_counter()
        row = self.get_instance(instance_id)
        events = self.load_history(instance_id) if row else []
        messages = self.load_messages(instance_id) if row else []
        self.busy_seconds += time.perf_counter() - started
        return row, events, messages

    def query_instances(
        self,
        created_from: str | None = None,
        created_to: str | None = None,
        statuses: Sequence[str] | None = None,
        prefix: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Instance]:
        """Instances matching the list/purge filters, oldest first."""
        where: list[str] = []
        args: list[str | int] = []
        if created_from:
            where.append("created_time >= ?")
            args.append(created_from)
        if created_to:
            where.append("created_time <= ?")
            args.append(created_to)
        if statuses:
            where.append(f"status IN ({', '.join('?' for _ in statuses)})")
            args.extend(statuses)
        if prefix:
            where.append("substr(instance_id, 1, ?) = ?")
            args.extend([len(prefix), prefix])
        sql = f"SELECT {', '.join(INSTANCE_COLUMNS)} FROM instances"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_time, instance_id"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            args.extend([limit, offset])
        return [Instance.from_row(r) for r in self.conn.execute(sql, args)]

    def pending_work(self) -> tuple[list[MessageRow], list[ActivityRow]]:
        """Everything queued, for recovery after a restart."""
        messages = [
            MessageRow(r[0], r[1], r[2], r[3], json.loads(r[4]))
            for r in self.conn.execute(
                "SELECT id, instance_id, execution_id, visible_at, event FROM messages ORDER BY id"
            )
        ]
        activities = [
            ActivityRow(*r)
            for r in self.conn.execute(
                "SELECT id, instance_id, execution_id, seq, name, input FROM activities ORDER BY id"
            )
        ]
        return messages, activities
