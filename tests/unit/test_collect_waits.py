"""Resume waits for a job still running under an orphaned agent, when that job cannot be
launched again (``max_retries=0``): its result is collected once the agent commits it,
instead of the job ending UNKNOWN because resume looked a moment too early. Found by CI
(``test_fleet.py::test_a_drained_host_stays_drained_after_resume``: resume ran while a
0.4 s job was finishing). The wait ends when the agent's lock is free, and is bounded.

The host is this machine (``LocalTransport``, a real transport); the "agent" is a thread
holding the run's ``agent.lock`` as an agent does, then committing a result or not.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import sys
import threading
import time

from sshmr.engine.collect import collect_open_attempts
from sshmr.record.journal import Journal
from sshmr.remote import protocol
from sshmr.transport.local import LocalTransport

RUN = "20261204-000000-bb0000"


def _run(tmp_path, max_launches_left: bool = False) -> tuple[Journal, list, object]:
    (tmp_path / "master").mkdir()
    journal = Journal(str(tmp_path / "master"), create=True)
    journal.add_jobs([(1, '{"i": 1}')])
    journal.dispatch(12, 1, 1, "h0", 1)
    journal.started(12)  # acknowledged: a launch, running when the master died
    journal.flush()
    run_dir = tmp_path / "host" / "runs" / RUN
    (run_dir / "a" / "12").mkdir(parents=True)
    (run_dir / protocol.AGENT_LOCK).write_bytes(b"")
    hosts = [(LocalTransport("h0"), sys.executable, str(tmp_path / "host"), None)]
    return journal, hosts, run_dir


def _agent(run_dir, after: float, commit: bool) -> tuple[threading.Thread, threading.Event]:
    """Holds the lock (as a live agent) for ``after`` seconds or until told to let go (the
    event returned), then commits attempt 12's result (or not) and lets go."""
    held, release = threading.Event(), threading.Event()

    def live() -> None:
        with open(run_dir / protocol.AGENT_LOCK, "rb") as lock:
            fcntl.flock(lock, fcntl.LOCK_SH)
            held.set()
            release.wait(after)
            if commit:
                adir = run_dir / "a" / "12"
                (adir / protocol.RESULT_FILE).write_bytes(b"42")
                (adir / protocol.DONE_FILE).write_text(json.dumps({
                    "t": "done", "a": 12, "status": "ok", "kind": "json",
                    "sha": hashlib.sha256(b"42").hexdigest(), "size": 2}))

    thread = threading.Thread(target=live)
    thread.start()
    assert held.wait(5)
    return thread, release


def _job(journal: Journal) -> tuple[str, int, str | None]:
    return journal.db.execute("SELECT state, launches, result FROM jobs WHERE id = 1").fetchone()


def test_a_running_job_of_a_live_agent_is_waited_for_and_collected(tmp_path):
    journal, hosts, run_dir = _run(tmp_path)
    said: list[str] = []
    thread, _ = _agent(run_dir, 0.8, commit=True)
    collect_open_attempts(journal, hosts, RUN, max_retries=0, max_result_size=1 << 30,
                          progress=said.append, wait_limit=30)
    thread.join()
    assert _job(journal) == ("SUCCEEDED", 1, "42")  # collected, launched once
    assert said == ["resume: waiting for 1 job(s) still running on h0 under the old agent (at"
                    " most 30 s: their timeout or max_living); Ctrl-C stops, and a later"
                    " 'sshmr resume' waits again"]


def test_the_agent_exiting_without_a_result_ends_the_wait_unknown(tmp_path):
    journal, hosts, run_dir = _run(tmp_path)
    thread, _ = _agent(run_dir, 0.5, commit=False)
    started = time.monotonic()
    collect_open_attempts(journal, hosts, RUN, max_retries=0, max_result_size=1 << 30,
                          wait_limit=60)
    thread.join()
    assert time.monotonic() - started < 50  # it ended when the lock was free, not at the limit
    assert _job(journal)[:2] == ("UNKNOWN", 1)


def _collect_while_held(tmp_path, max_retries: int, wait_limit: float):
    """Resume's collection while an agent holds the run's lock and never commits: the
    journal after it, and the seconds it took."""
    journal, hosts, run_dir = _run(tmp_path)
    thread, release = _agent(run_dir, 60, commit=False)
    started = time.monotonic()
    collect_open_attempts(journal, hosts, RUN, max_retries=max_retries,
                          max_result_size=1 << 30, wait_limit=wait_limit)
    waited = time.monotonic() - started
    release.set()
    thread.join()
    return journal, waited


def test_an_agent_that_never_lets_go_is_waited_for_only_wait_limit(tmp_path):
    journal, waited = _collect_while_held(tmp_path, max_retries=0, wait_limit=0.5)
    assert 0.5 <= waited < 30, waited
    assert _job(journal)[:2] == ("UNKNOWN", 1)


def test_a_job_with_launches_left_is_not_waited_for(tmp_path):
    journal, waited = _collect_while_held(tmp_path, max_retries=2, wait_limit=30)
    assert waited < 30, waited  # re-queued at once (not after wait_limit): it may run again
    assert _job(journal)[:2] == ("PENDING", 1)


def test_a_host_whose_lock_cannot_be_read_is_not_waited_for(tmp_path):
    """No lock file (an agent of an older sshmr, or a wiped run dir): nothing to wait on."""
    journal, hosts, run_dir = _run(tmp_path)
    (run_dir / protocol.AGENT_LOCK).unlink()
    started = time.monotonic()
    collect_open_attempts(journal, hosts, RUN, max_retries=0, max_result_size=1 << 30,
                          wait_limit=60)
    assert time.monotonic() - started < 50
    assert _job(journal)[:2] == ("UNKNOWN", 1)
