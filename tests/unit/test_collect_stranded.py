"""Resume's sweep of jobs left RUNNING with no open attempt (found by the chaos run, seed
22: a master killed right after it re-queued jobs of a lost host, before it dispatched
them again, left them RUNNING in the journal and resume never ran them). No SSH."""

from __future__ import annotations

from sshmr.engine.collect import collect_open_attempts
from sshmr.jobs import AttemptState
from sshmr.record.journal import Journal


def _stranded(tmp_path, launches: int, reason: str) -> Journal:
    journal = Journal(str(tmp_path), create=True)
    journal.add_jobs([(1, '{"i": 1}'), (2, '{"i": 2}')])
    for number in range(1, launches + 1):
        journal.dispatch(number, 1, number, "h0", 0)
        journal.end_attempt(number, AttemptState.FAILED, reason, {})
    journal.flush()
    return journal


def _state(journal: Journal, job: int = 1) -> str:
    return journal.db.execute("SELECT state FROM jobs WHERE id = ?", (job,)).fetchone()[0]


def test_a_stranded_job_with_launches_left_goes_back_to_the_queue(tmp_path):
    journal = _stranded(tmp_path, 1, "host_lost")
    assert _state(journal) == "RUNNING"
    collect_open_attempts(journal, [], "run", max_retries=2, max_result_size=1 << 30)
    assert _state(journal) == "PENDING"
    assert _state(journal, 2) == "PENDING"  # untouched


def test_a_stranded_job_without_launches_left_fails_with_its_last_reason(tmp_path):
    journal = _stranded(tmp_path, 3, "timeout")
    collect_open_attempts(journal, [], "run", max_retries=2, max_result_size=1 << 30)
    assert _state(journal) == "FAILED"
    reason = journal.db.execute("SELECT reason FROM jobs WHERE id = 1").fetchone()[0]
    assert reason == "3 attempt(s), last: timeout"


def test_a_stranded_max_retries_0_job_whose_host_was_lost_is_unknown_never_rerun(tmp_path):
    journal = _stranded(tmp_path, 1, "host_lost")
    collect_open_attempts(journal, [], "run", max_retries=0, max_result_size=1 << 30)
    assert _state(journal) == "UNKNOWN"
