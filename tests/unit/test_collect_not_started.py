"""Resume's "never started" rule (no launch, so even a ``max_retries=0`` job runs again)
needs the host never to have acknowledged the attempt. Found by the chaos run (seed 303,
2 minutes): a ``max_retries=0`` job ran twice. Its first attempt had been acknowledged and
ran; later its attempt directory no longer held its ``job`` file, and a resume read that
absence as "never started". An acknowledged attempt is a launch, whatever is on disk.

A resume with nothing left to run removes the run's directory from the hosts, but not
from a host where an agent of the run still lives (a job there may yet commit a result).

The host is this machine (``LocalTransport``, a real transport): its run dir holds a free
``agent.lock`` (no agent left) and the attempt's directory without a ``job`` file.
"""

from __future__ import annotations

import fcntl
import sys

from sshmr.engine.collect import collect_open_attempts, remove_run_dirs
from sshmr.jobs import AttemptState, JobState
from sshmr.record.journal import Journal
from sshmr.remote import protocol
from sshmr.transport.local import LocalTransport

RUN = "20261130-000000-aa0000"


def _run(tmp_path, *, acked: bool, ended: str | None) -> tuple[Journal, list]:
    (tmp_path / "master").mkdir()
    journal = Journal(str(tmp_path / "master"), create=True)
    journal.add_jobs([(1, '{"i": 1}')])
    journal.dispatch(12, 1, 1, "h0", 1)
    if acked:
        journal.started(12)
    if ended:  # the master saw it end with an unknown outcome: the job is UNKNOWN
        journal.end_attempt(12, AttemptState.FAILED, ended, {})
        journal.give_up(1, JobState.UNKNOWN, "outcome unknown")
    journal.flush()
    workdir = tmp_path / "host"
    run_dir = workdir / "runs" / RUN
    (run_dir / "a" / "12").mkdir(parents=True)  # no job file, no commit marker
    (run_dir / protocol.AGENT_LOCK).write_bytes(b"")  # no agent holds it
    return journal, [(LocalTransport("h0"), sys.executable, str(workdir), None)]


def _job(journal: Journal) -> tuple[str, int]:
    return journal.db.execute("SELECT state, launches FROM jobs WHERE id = 1").fetchone()


def _attempts(journal: Journal) -> list[int]:
    return [r[0] for r in journal.db.execute("SELECT id FROM attempts")]


def test_an_acknowledged_attempt_of_an_unknown_job_stays_a_launch(tmp_path):
    journal, hosts = _run(tmp_path, acked=True, ended="worker_died")
    collect_open_attempts(journal, hosts, RUN, max_retries=0, max_result_size=1 << 30)
    assert _job(journal) == ("UNKNOWN", 1)  # never launched again
    assert _attempts(journal) == [12]


def test_an_acknowledged_open_attempt_is_unknown_not_requeued(tmp_path):
    journal, hosts = _run(tmp_path, acked=True, ended=None)
    collect_open_attempts(journal, hosts, RUN, max_retries=0, max_result_size=1 << 30)
    assert _job(journal) == ("UNKNOWN", 1)
    assert _attempts(journal) == [12]


def test_an_unacknowledged_attempt_with_no_job_file_and_no_agent_never_started(tmp_path):
    journal, hosts = _run(tmp_path, acked=False, ended=None)
    collect_open_attempts(journal, hosts, RUN, max_retries=0, max_result_size=1 << 30)
    assert _job(journal) == ("PENDING", 0)  # no launch: it runs (once) after all
    assert _attempts(journal) == []


def test_an_unacknowledged_attempt_whose_job_file_exists_did_start(tmp_path):
    journal, hosts = _run(tmp_path, acked=False, ended=None)
    job_file = tmp_path / "host" / "runs" / RUN / "a" / "12" / protocol.JOB_FILE
    job_file.write_text("1")
    collect_open_attempts(journal, hosts, RUN, max_retries=0, max_result_size=1 << 30)
    assert _job(journal) == ("UNKNOWN", 1)


def _host_run_dir(tmp_path) -> tuple[list, object]:
    workdir = tmp_path / "host"
    run_dir = workdir / "runs" / RUN
    (run_dir / "a" / "7").mkdir(parents=True)
    (run_dir / protocol.AGENT_LOCK).write_bytes(b"")
    return [(LocalTransport("h0"), sys.executable, str(workdir), None)], run_dir


def test_a_run_dir_with_a_live_agent_is_kept_for_a_later_resume(tmp_path):
    hosts, run_dir = _host_run_dir(tmp_path)
    with open(run_dir / protocol.AGENT_LOCK, "rb") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)  # as an agent (or its worker) of the run holds it
        remove_run_dirs(hosts, RUN)
        assert (run_dir / "a" / "7").is_dir()
    remove_run_dirs(hosts, RUN)  # no agent left: removed
    assert not run_dir.exists()


def test_a_run_dir_without_a_lock_file_is_removed(tmp_path):
    hosts, run_dir = _host_run_dir(tmp_path)
    (run_dir / protocol.AGENT_LOCK).unlink()
    remove_run_dirs(hosts, RUN)
    assert not run_dir.exists()
