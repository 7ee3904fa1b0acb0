"""The journal's running totals (record/totals.py) equal the aggregates of its rows after any
sequence of the writes the master makes, on a new journal and on one written before the
totals existed (backfilled when a master opens it; counted from the rows when it is only
read)."""

from __future__ import annotations

import random
import sqlite3

import pytest

from sshmr.jobs import AttemptState, JobState
from sshmr.record import totals
from sshmr.record.journal import Journal
from sshmr.views.progress import last_activity, read_snapshot

HOSTS = ["a", "b", "c"]
REASONS = [None, "error", "timeout", "cancelled", "speculation", "host_lost"]


def _figures(db: sqlite3.Connection, kept: bool) -> tuple:
    return (totals.job_counts(db, kept), totals.host_counts(db, kept),
            totals.last_activity(db, kept))


def _assert_agree(journal: Journal) -> None:
    journal.flush()
    kept, counted = _figures(journal.db, True), _figures(journal.db, False)
    assert kept[0] == counted[0]
    assert kept[1].keys() == counted[1].keys()
    for host, entry in kept[1].items():
        assert entry["n"] == counted[1][host]["n"], host
        assert entry["dur_n"] == counted[1][host]["dur_n"]
        assert entry["dur_sum"] == pytest.approx(counted[1][host]["dur_sum"])
    assert kept[2] == counted[2]


def _random_writes(journal: Journal, rnd: random.Random, jobs: int, steps: int,
                   check: bool = False) -> None:
    journal.add_jobs((j, "{}") for j in range(1, jobs + 1))
    next_id, open_attempts, launches = 1, {}, dict.fromkeys(range(1, jobs + 1), 0)
    for _ in range(steps):
        op = rnd.random()
        if op < 0.3 or not open_attempts:
            job = rnd.randint(1, jobs)
            launches[job] += 1
            journal.dispatch(next_id, job, launches[job], rnd.choice(HOSTS), rnd.randint(0, 3))
            open_attempts[next_id] = job
            next_id += 1
        elif op < 0.45:
            journal.started(rnd.choice(list(open_attempts)))
        elif op < 0.75:
            attempt = rnd.choice(list(open_attempts))
            job = open_attempts.pop(attempt)
            state = rnd.choice([AttemptState.SUCCEEDED, AttemptState.FAILED,
                                AttemptState.DISCARDED])
            journal.end_attempt(attempt, state, rnd.choice(REASONS),
                                {"dur": rnd.choice([None, rnd.random() * 5])})
            if state is AttemptState.SUCCEEDED:
                journal.commit_result(job, attempt, "json", b"1")
            elif rnd.random() < 0.5:
                journal.give_up(job, rnd.choice([JobState.FAILED, JobState.UNKNOWN,
                                                 JobState.CANCELLED]), "x")
            else:
                journal.requeue(job)
        elif op < 0.85:
            attempt = rnd.choice(list(open_attempts))
            open_attempts.pop(attempt)
            journal.undispatch(attempt, requeued=rnd.random() < 0.5)
        elif op < 0.92:
            job = rnd.randint(1, jobs)
            launches[job] += 1
            journal.adopt_attempt(next_id, job, rnd.choice(HOSTS))
            open_attempts[next_id] = job
            next_id += 1
        elif check:
            _assert_agree(journal)


@pytest.mark.parametrize("seed", range(12))
def test_totals_equal_the_rows_after_random_writes(tmp_path, seed):
    journal = Journal(str(tmp_path), create=True)
    rnd = random.Random(seed)
    _random_writes(journal, rnd, jobs=rnd.randint(1, 30), steps=rnd.randint(0, 400),
                   check=True)
    _assert_agree(journal)
    journal.close()


def test_a_snapshot_reads_the_same_with_and_without_totals(tmp_path):
    journal = Journal(str(tmp_path), create=True)
    _random_writes(journal, random.Random(3), jobs=40, steps=300)
    journal.close()
    reader = Journal(str(tmp_path), readonly=True)
    assert reader.kept
    snap = read_snapshot(reader, now=1e10)
    act = last_activity(reader)
    reader.kept = False  # the rows instead of the totals: what an old journal gives
    old = read_snapshot(reader, now=1e10)
    assert (snap.counts, snap.per_host.keys(), snap.per_host_queued, snap.attempts,
            snap.started_jobs) == (old.counts, old.per_host.keys(), old.per_host_queued,
                                   old.attempts, old.started_jobs)
    for host, (busy, done, failed, mean) in snap.per_host.items():
        assert (busy, done, failed) == old.per_host[host][:3]
        assert mean == pytest.approx(old.per_host[host][3])
    assert act == last_activity(reader)
    reader.close()


def _strip_totals(path: str) -> None:
    """Make the journal look like one an sshmr without totals wrote."""
    db = sqlite3.connect(path)
    for kind, name in db.execute("SELECT type, name FROM sqlite_master WHERE name LIKE"
                                 " '%total%' OR name IN ('attempts_activity', 'attempts_running',"
                                 " 'attempts_failed', 'jobs_ended')").fetchall():
        if kind in ("table", "trigger", "index"):
            db.execute(f"DROP {kind.upper()} IF EXISTS {name}")
    db.commit()
    db.close()


def test_an_old_journal_is_read_from_its_rows_and_backfilled_by_a_master(tmp_path):
    journal = Journal(str(tmp_path), create=True)
    _random_writes(journal, random.Random(5), jobs=25, steps=200)
    journal.close()
    _strip_totals(str(tmp_path / Journal.FILE))

    reader = Journal(str(tmp_path), readonly=True)
    assert not reader.kept  # read-only: nothing written, the figures come from the rows
    counted = _figures(reader.db, False)
    assert reader.counts()[JobState.SUCCEEDED.value] == counted[0].get("SUCCEEDED", 0)
    reader.close()

    writer = Journal(str(tmp_path))  # a resumed master: backfills in one transaction
    assert writer.kept
    assert _figures(writer.db, True)[0] == counted[0]
    _assert_agree(writer)
    writer.dispatch(10_000, 1, 99, "a", 0)
    _assert_agree(writer)
    writer.close()
