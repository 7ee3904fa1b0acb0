"""The run journal: one SQLite file per run, the single source of truth.

It holds the run's metadata, every job (payload, state, committed result), every attempt
(host, slot, times, exit status, reason, error, traceback, output tails), host states and
an event log. The master is its only writer; ``status``, ``results`` and reports open it
read-only while a run goes on (WAL mode).

Writes are batched into transactions (``flush``); ``synchronous=FULL`` makes each flush
durable. The journal is the commit point of a result: a job is SUCCEEDED once the
transaction holding its result is flushed, and only then may the host drop its copy.
The four writes of every job's life (``dispatch``, ``started``, ``end_attempt``,
``commit_result``) are also held back within a transaction and written together with
``executemany`` (``_settle``), before any other write, any read through ``db`` and the
commit, so nothing reads or commits the journal without them; an attempt that starts and
ends in one transaction gets its start time with its end, in one row update.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from typing import Any

from ..jobs import AttemptState, JobState
from ..remote.protocol import fsync_path, write_atomic
from . import totals

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    payload TEXT NOT NULL,             -- JSON
    state TEXT NOT NULL DEFAULT 'PENDING',
    launches INTEGER NOT NULL DEFAULT 0,
    result TEXT,                       -- JSON text of a json result
    result_kind TEXT,                  -- 'json', 'bytes' or 'pickle' (verified, function runs)
    result_file TEXT,                  -- file in the run dir for bytes / large results
    result_attempt INTEGER,
    reason TEXT,
    ended REAL
);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY,
    job INTEGER NOT NULL,
    number INTEGER NOT NULL,
    host TEXT NOT NULL,
    slot INTEGER NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    dispatched REAL NOT NULL,
    started REAL,
    ended REAL,
    duration REAL,
    exit_code INTEGER,
    error TEXT,
    traceback TEXT,
    stdout_tail TEXT,
    stderr_tail TEXT
);
CREATE INDEX IF NOT EXISTS attempts_job ON attempts(job);
CREATE TABLE IF NOT EXISTS hosts (
    name TEXT PRIMARY KEY, state TEXT NOT NULL, slots INTEGER, workdir TEXT, error TEXT,
    updated REAL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, kind TEXT NOT NULL, host TEXT, job INTEGER,
    attempt INTEGER, message TEXT
);
"""

LARGE_RESULT = 1 << 20  # JSON results above this are kept in a file in the run dir


class Journal:
    """Writer (``readonly=False``, the master) or reader of one run's journal."""

    FILE = "journal.sqlite"

    def __init__(self, run_dir: str, *, readonly: bool = False, create: bool = False) -> None:
        self.run_dir = run_dir
        self.path = os.path.join(run_dir, self.FILE)
        self._dispatched: list[tuple[Any, ...]] = []  # attempts rows to insert
        self._launched: list[tuple[Any, ...]] = []  # (state, launches, job) of those
        self._started: dict[int, float] = {}  # attempt -> start time, not written yet
        self._ended: list[tuple[Any, ...]] = []  # end_attempt rows
        self._committed: list[tuple[Any, ...]] = []  # commit_result rows
        self._held = False  # any of the above is not written yet
        if readonly:
            uri = f"file:{self.path}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, timeout=10, check_same_thread=False)
        else:
            if not create and not os.path.exists(self.path):
                raise FileNotFoundError(self.path)
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
            totals.install(self._db)
            self._db.execute("BEGIN")
        self.readonly = readonly
        self.kept = totals.has_totals(self._db)  # running totals kept (see record/totals.py)
        self.dirty = False
        self.abandoned = False  # see ``abandon``

    @property
    def db(self) -> sqlite3.Connection:
        """The SQLite connection, with every held-back write written (see ``_settle``)."""
        if self._held:
            self._settle()
        return self._db

    def abandon(self) -> None:
        """A write failed (disk full): drop the open transaction and write nothing more.
        The file keeps its last commit, intact; ``close`` only closes."""
        self.abandoned = True
        self.dirty = False
        self._drop_held()
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # sqlite may have rolled it back itself

    # ---------------------------------------------------------------- writing

    def flush(self) -> None:
        """Commit the open transaction (durably) and start the next one."""
        if self._held:
            self._settle()
        if self.dirty and not self.abandoned:
            self._db.execute("COMMIT")
            self._db.execute("BEGIN")
            self.dirty = False

    def _settle(self) -> None:
        """Write the held-back job writes, in an order that keeps each row's history: an
        attempt is inserted before it starts and starts before it ends; a job's launch is
        written before its result (a job with a result is never launched again)."""
        db = self._db
        self._held = False
        if self._dispatched:
            db.executemany("INSERT INTO attempts (id, job, number, host, slot, state,"
                           " dispatched) VALUES (?, ?, ?, ?, ?, ?, ?)", self._dispatched)
            db.executemany("UPDATE jobs SET state = ?, launches = ? WHERE id = ?",
                           self._launched)
            self._dispatched, self._launched = [], []
        if self._started:
            running, dispatched = AttemptState.RUNNING.value, AttemptState.DISPATCHED.value
            db.executemany("UPDATE attempts SET state = ?, started = ? WHERE id = ? AND"
                           " state = ?", [(running, at, attempt, dispatched)
                                          for attempt, at in self._started.items()])
            self._started = {}
        if self._ended:
            db.executemany(
                "UPDATE attempts SET state = ?, reason = ?, ended = ?, duration = ?,"
                " exit_code = ?, error = ?, traceback = ?, stdout_tail = ?, stderr_tail = ?,"
                " started = COALESCE(started, ?) WHERE id = ?", self._ended)
            self._ended = []
        if self._committed:
            db.executemany(
                "UPDATE jobs SET state = ?, result = ?, result_kind = ?, result_file = ?,"
                " result_attempt = ?, reason = NULL, ended = ? WHERE id = ?", self._committed)
            self._committed = []

    def _drop_held(self) -> None:
        self._dispatched, self._launched, self._ended, self._committed = [], [], [], []
        self._started = {}
        self._held = False

    def _write(self, sql: str, args: Iterable[Any] = ()) -> None:
        if self._held:
            self._settle()
        self._db.execute(sql, tuple(args))
        self.dirty = True

    def set_meta(self, **values: Any) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)",
            [(k, json.dumps(v)) for k, v in values.items()],
        )
        self.dirty = True

    def add_jobs(self, jobs: Iterable[tuple[int, str]]) -> None:
        self.db.executemany("INSERT INTO jobs (id, payload) VALUES (?, ?)", jobs)
        self.dirty = True

    def dispatch(self, attempt: int, job: int, number: int, host: str, slot: int) -> None:
        self._dispatched.append((attempt, job, number, host, slot,
                                 AttemptState.DISPATCHED.value, time.time()))
        self._launched.append((JobState.RUNNING.value, number, job))
        self._held = self.dirty = True

    def started(self, attempt: int) -> None:
        """The host acknowledged ``attempt``: it is RUNNING (only if still DISPATCHED)."""
        self._started.setdefault(attempt, time.time())
        self._held = self.dirty = True

    def undispatch(self, attempt: int, requeued: bool) -> None:
        """An attempt queued at a host that never started: it was no launch, so its row goes
        (its id is never reused: see ``max_attempt_id``)."""
        self._write("UPDATE jobs SET launches = launches - 1 WHERE id = (SELECT job FROM"
                    " attempts WHERE id = ?)", (attempt,))
        if requeued:
            self._write("UPDATE jobs SET state = ? WHERE id = (SELECT job FROM attempts"
                        " WHERE id = ?)", (JobState.PENDING.value, attempt))
        self._write("DELETE FROM attempts WHERE id = ?", (attempt,))
        self._write("INSERT OR REPLACE INTO meta VALUES ('attempt_id_floor', MAX(?, COALESCE("
                    "(SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'attempt_id_floor'),"
                    " 0)))", (attempt,))

    def adopt_attempt(self, attempt: int, job: int, host: str) -> None:
        """An attempt found on ``host`` that ran, but whose dispatch went down with a crashed
        master's last transaction: recorded as the job's next launch (slot unknown: 0)."""
        self._write("INSERT INTO attempts (id, job, number, host, slot, state, dispatched)"
                    " VALUES (?, ?, (SELECT launches + 1 FROM jobs WHERE id = ?), ?, 0, ?, ?)",
                    (attempt, job, job, host, AttemptState.RUNNING.value, time.time()))
        self._write("UPDATE jobs SET launches = launches + 1 WHERE id = ?", (job,))

    def reserve_attempt_ids(self, upto: int) -> None:
        """Attempt ids up to ``upto`` may go on the wire before their dispatch is durable:
        recorded (with the next flush) so a master resumed after a crash never reuses one
        (a host may hold a result under it; see ``max_attempt_id``)."""
        self._write("INSERT OR REPLACE INTO meta VALUES ('attempt_id_floor', MAX(?, COALESCE("
                    "(SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'attempt_id_floor'),"
                    " 0)))", (upto,))

    def end_attempt(self, attempt: int, state: AttemptState, reason: str | None,
                    details: dict[str, Any]) -> None:
        get = details.get
        self._ended.append((state.value, reason, time.time(), get("dur"), get("exit"),
                            get("error"), get("tb"), get("out"), get("err"),
                            self._started.pop(attempt, None), attempt))
        self._held = self.dirty = True

    def staging_path(self, attempt: int) -> str:
        """Where a large result is streamed before it is verified and committed."""
        os.makedirs(os.path.join(self.run_dir, "results"), exist_ok=True)
        return os.path.join(self.run_dir, "results", f".fetch-{attempt}")

    def commit_result(self, job: int, attempt: int, kind: str, data: bytes | str) -> None:
        """The job's result: JSON text in the journal, or a file in the run dir for bytes
        and large JSON (written and fsynced first, so the row never points at nothing).
        ``data`` is the result, or the path of a verified staged file (moved into place)."""
        text = file = None
        if isinstance(data, str):
            file = f"results/{job}.bin"
            _move_durably(data, os.path.join(self.run_dir, file))
        elif kind == "json" and len(data) <= LARGE_RESULT:
            text = data.decode()
        else:
            file = f"results/{job}.{'json' if kind == 'json' else 'bin'}"
            os.makedirs(os.path.join(self.run_dir, "results"), exist_ok=True)
            write_atomic(os.path.join(self.run_dir, file), data, sync=True)
        self._committed.append((JobState.SUCCEEDED.value, text, kind, file, attempt,
                                time.time(), job))
        self._held = self.dirty = True

    def requeue(self, job: int) -> None:
        self._write("UPDATE jobs SET state = ? WHERE id = ?", (JobState.PENDING.value, job))

    def give_up(self, job: int, state: JobState, reason: str) -> None:
        self._write("UPDATE jobs SET state = ?, reason = ?, ended = ? WHERE id = ?",
                    (state.value, reason, time.time(), job))

    def host(self, name: str, state: str, *, slots: int | None = None,
             workdir: str | None = None, error: str | None = None) -> None:
        self._write(
            "INSERT INTO hosts (name, state, slots, workdir, error, updated)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET state = excluded.state,"
            " slots = COALESCE(excluded.slots, slots), workdir = COALESCE(excluded.workdir,"
            " workdir), error = excluded.error, updated = excluded.updated",
            (name, state, slots, workdir, error, time.time()),
        )

    def event(self, kind: str, message: str = "", *, host: str | None = None,
              job: int | None = None, attempt: int | None = None) -> None:
        self._write("INSERT INTO events (ts, kind, host, job, attempt, message)"
                    " VALUES (?, ?, ?, ?, ?, ?)", (time.time(), kind, host, job, attempt, message))

    # ---------------------------------------------------------------- reading

    def payload(self, job: int) -> str:
        # (a payload never changes once added: no held-back write to settle first)
        return self._db.execute("SELECT payload FROM jobs WHERE id = ?", (job,)).fetchone()[0]

    def meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    def counts(self) -> dict[str, int]:
        counts = {s.value: 0 for s in JobState}
        counts.update(totals.job_counts(self.db, self.kept))
        return counts

    def attempt_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]

    def max_attempt_id(self) -> int:
        return self.db.execute(
            "SELECT MAX(COALESCE((SELECT MAX(id) FROM attempts), 0), COALESCE((SELECT"
            " CAST(value AS INTEGER) FROM meta WHERE key = 'attempt_id_floor'), 0))").fetchone()[0]

    def jobs(self, only: int | None = None) -> Iterator[sqlite3.Row]:
        """Every job (or just job ``only``) in job order, with its host and attempt count."""
        cur = self.db.cursor()
        cur.row_factory = sqlite3.Row
        yield from cur.execute(
            "SELECT j.*, (SELECT host FROM attempts a WHERE a.id = COALESCE(j.result_attempt,"
            " (SELECT MAX(id) FROM attempts b WHERE b.job = j.id))) AS host,"
            " (SELECT COUNT(*) FROM attempts c WHERE c.job = j.id) AS attempts"
            " FROM jobs j WHERE ? IS NULL OR j.id = ? ORDER BY j.id", (only, only))

    def attempts(self, job: int | None = None) -> list[sqlite3.Row]:
        cur = self.db.cursor()
        cur.row_factory = sqlite3.Row
        if job is None:
            return cur.execute("SELECT * FROM attempts ORDER BY id").fetchall()
        return cur.execute("SELECT * FROM attempts WHERE job = ? ORDER BY id", (job,)).fetchall()

    def open_attempts(self) -> list[sqlite3.Row]:
        """Attempts dispatched but not ended, or ended without their host dir released."""
        cur = self.db.cursor()
        cur.row_factory = sqlite3.Row
        return cur.execute(
            "SELECT * FROM attempts WHERE state IN (?, ?) ORDER BY id",
            (AttemptState.DISPATCHED.value, AttemptState.RUNNING.value)).fetchall()

    def setup_failures(self) -> list[dict[str, Any]]:
        """The first failed ``setup()`` (or job code load) of each host that had one, in
        time order: host, ts, error (one line) and the remote traceback."""
        seen: dict[str, dict[str, Any]] = {}
        for ts, host, message in self.db.execute(
                "SELECT ts, host, message FROM events WHERE kind = 'setup_failed' ORDER BY id"):
            error, _, tb = (message or "").partition("\n")
            seen.setdefault(host, {"host": host, "ts": ts, "error": error,
                                   "traceback": tb.strip("\n")})
        return list(seen.values())

    def hosts(self) -> list[sqlite3.Row]:
        cur = self.db.cursor()
        cur.row_factory = sqlite3.Row
        return cur.execute("SELECT * FROM hosts ORDER BY name").fetchall()

    def close(self) -> None:
        """The writer commits, then folds the WAL into the database and truncates it: a
        reader still connected (a live view, a ``RunResult``) would otherwise keep SQLite
        from removing it, and every run would leave megabytes of ``-wal`` behind."""
        if not self.readonly and not self.abandoned:
            self.flush()
            if self._db.in_transaction:
                self._db.execute("COMMIT")
            try:  # waits for readers in a transaction, 5 s at most
                self._db.execute("PRAGMA busy_timeout = 5000")
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            except sqlite3.Error:  # best effort: the data is committed either way
                pass
        self._db.close()


def _move_durably(src: str, dest: str) -> None:
    fsync_path(src)
    os.replace(src, dest)
    fsync_path(os.path.dirname(dest))
