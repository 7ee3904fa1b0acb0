"""Running totals of a run journal: jobs per state, attempts per host and state. They make
``sshmr status``, ``status --watch`` and the live view cost the same on a run of 100 jobs
and of 100,000.

SQLite triggers on ``jobs`` and ``attempts`` keep them, inside the transaction that writes
the row, whichever code path writes it (dispatch, start, end, undispatch, adoption on
resume, requeue, give-up): they cannot drift from the rows they count. A journal written
before the totals existed gets them (backfilled from its rows) when a master opens it to
write (resume); a read-only open of such a journal computes the same figures from the rows.
Partial indexes serve the few remaining row queries (running attempts, failed attempts,
recently ended jobs) without a scan.
"""

from __future__ import annotations

import sqlite3
from typing import Any

# Attempts stopped on purpose (not failures) are counted apart, as FAILED_QUIET.
QUIET_REASONS = ("cancelled", "speculation")

_BUCKET = ("CASE WHEN {r}.state = 'FAILED' AND COALESCE({r}.reason, '') IN"
           " ('cancelled', 'speculation') THEN 'FAILED_QUIET' ELSE {r}.state END")


def _add(row: str, sign: str) -> str:
    """An upsert adding (``+``) or a decrement removing (``-``) one attempt row."""
    bucket = _BUCKET.format(r=row)
    if sign == "+":
        return (f"INSERT INTO host_totals (host, bucket, n, dur_sum, dur_n) VALUES ({row}.host,"
                f" {bucket}, 1, COALESCE({row}.duration, 0), {row}.duration IS NOT NULL)"
                " ON CONFLICT (host, bucket) DO UPDATE SET n = n + 1,"
                " dur_sum = dur_sum + excluded.dur_sum, dur_n = dur_n + excluded.dur_n;")
    return (f"UPDATE host_totals SET n = n - 1, dur_sum = dur_sum - COALESCE({row}.duration, 0),"
            f" dur_n = dur_n - ({row}.duration IS NOT NULL)"
            f" WHERE host = {row}.host AND bucket = {bucket};")


SCHEMA = f"""
CREATE TABLE IF NOT EXISTS job_totals (state TEXT PRIMARY KEY, n INTEGER NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS host_totals (
    host TEXT NOT NULL, bucket TEXT NOT NULL, n INTEGER NOT NULL,
    dur_sum REAL NOT NULL, dur_n INTEGER NOT NULL, PRIMARY KEY (host, bucket)) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS jobs_total_ins AFTER INSERT ON jobs BEGIN
    INSERT INTO job_totals VALUES (new.state, 1)
        ON CONFLICT (state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS jobs_total_upd AFTER UPDATE OF state ON jobs
    WHEN old.state IS NOT new.state BEGIN
    UPDATE job_totals SET n = n - 1 WHERE state = old.state;
    INSERT INTO job_totals VALUES (new.state, 1)
        ON CONFLICT (state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS jobs_total_del AFTER DELETE ON jobs BEGIN
    UPDATE job_totals SET n = n - 1 WHERE state = old.state;
END;
CREATE TRIGGER IF NOT EXISTS attempts_total_ins AFTER INSERT ON attempts BEGIN
    {_add("new", "+")}
END;
CREATE TRIGGER IF NOT EXISTS attempts_total_upd
    AFTER UPDATE OF host, state, reason, duration ON attempts BEGIN
    {_add("old", "-")}
    {_add("new", "+")}
END;
CREATE TRIGGER IF NOT EXISTS attempts_total_del AFTER DELETE ON attempts BEGIN
    {_add("old", "-")}
END;
CREATE INDEX IF NOT EXISTS attempts_running ON attempts(job) WHERE state = 'RUNNING';
CREATE INDEX IF NOT EXISTS attempts_failed ON attempts(id) WHERE state = 'FAILED';
CREATE INDEX IF NOT EXISTS jobs_ended ON jobs(ended) WHERE ended IS NOT NULL;
CREATE INDEX IF NOT EXISTS attempts_activity ON attempts(COALESCE(ended, started, dispatched));
"""

_BACKFILL = f"""
DELETE FROM job_totals;
DELETE FROM host_totals;
INSERT INTO job_totals SELECT state, COUNT(*) FROM jobs GROUP BY state;
INSERT INTO host_totals SELECT host, {_BUCKET.format(r="attempts")}, COUNT(*),
    COALESCE(SUM(duration), 0), COUNT(duration) FROM attempts GROUP BY 1, 2;
"""


def install(db: sqlite3.Connection) -> None:
    """Create the totals, their triggers and indexes (the master, on opening a journal to
    write, outside a transaction); a journal that had none is backfilled from its rows in
    the same transaction, so the totals and the rows agree from the first commit."""
    fresh = not has_totals(db)
    db.execute("BEGIN IMMEDIATE")
    for statement in _statements(SCHEMA):
        db.execute(statement)
    if fresh:
        for statement in _statements(_BACKFILL):
            db.execute(statement)
    db.execute("COMMIT")


def _statements(script: str) -> list[str]:
    """A script cut into statements (a trigger body's semicolons stay inside it)."""
    out, part = [], ""
    for line in script.strip().splitlines(keepends=True):
        part += line
        if sqlite3.complete_statement(part):
            out.append(part.strip())
            part = ""
    return out


def has_totals(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name ="
                      " 'host_totals'").fetchone() is not None


def job_counts(db: sqlite3.Connection, kept: bool) -> dict[str, int]:
    """Jobs per state (``kept``: the journal has totals; else counted from the rows)."""
    sql = ("SELECT state, n FROM job_totals" if kept
           else "SELECT state, COUNT(*) FROM jobs GROUP BY state")
    return {state: n for state, n in db.execute(sql) if n}


def host_counts(db: sqlite3.Connection, kept: bool) -> dict[str, dict[str, Any]]:
    """Per host: attempts per bucket (the attempt state; FAILED_QUIET for attempts stopped
    on purpose), and the sum and count of the durations of its SUCCEEDED attempts."""
    sql = ("SELECT host, bucket, n, dur_sum, dur_n FROM host_totals" if kept else
           f"SELECT host, {_BUCKET.format(r='attempts')}, COUNT(*), COALESCE(SUM(duration), 0),"
           " COUNT(duration) FROM attempts GROUP BY 1, 2")
    out: dict[str, dict[str, Any]] = {}
    for host, bucket, n, dur_sum, dur_n in db.execute(sql):
        entry = out.setdefault(host, {"n": {}, "dur_sum": 0.0, "dur_n": 0})
        if n:
            entry["n"][bucket] = n
        if bucket == "SUCCEEDED":
            entry["dur_sum"], entry["dur_n"] = dur_sum, dur_n
    return {host: entry for host, entry in out.items() if entry["n"]}  # not all undispatched


def last_activity(db: sqlite3.Connection, kept: bool) -> float | None:
    """The latest dispatch, start or end of an attempt (an index lookup where the journal
    has the ``attempts_activity`` index, a scan of the rows in an old one)."""
    return db.execute("SELECT MAX(COALESCE(ended, started, dispatched)) FROM attempts"
                      ).fetchone()[0]
