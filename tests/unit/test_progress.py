"""The live view's figures, from a journal built here (no SSH, no master), and its drawing."""

from __future__ import annotations

import dataclasses

from rich.console import Console

from sshmr.jobs import AttemptState, JobState
from sshmr.record.journal import Journal
from sshmr.views.live import render
from sshmr.views.progress import Snapshot, figures, read_snapshot


def _journal(tmp_path, created: float) -> Journal:
    j = Journal(str(tmp_path), create=True)
    j.set_meta(run_id="R1", created=created, state="running", target="jobs:Slow")
    j.add_jobs([(i, f'"{i}"') for i in range(1, 9)])
    j.host("h1", "up", slots=2)
    j.host("h2", "quarantined", slots=2, error="5 failures in a row; h2: worker died")
    return j


def _attempt(j: Journal, attempt: int, job: int, host: str, number: int = 1, *,
             state: AttemptState | None = None, reason: str | None = None,
             dur: float | None = None, error: str | None = None) -> None:
    j.dispatch(attempt, job, number, host, 0)
    j.started(attempt)
    if state is not None:
        j.end_attempt(attempt, state, reason, {"dur": dur, "error": error})


def test_counts_hosts_and_failures_from_a_journal(tmp_path):
    import time

    now = time.time()
    j = _journal(tmp_path, now - 20)
    for attempt, dur in ((1, 1.0), (2, 2.0), (3, 3.0)):
        _attempt(j, attempt, attempt, "h1", state=AttemptState.SUCCEEDED, dur=dur)
        j.commit_result(attempt, attempt, "json", b"1")
    _attempt(j, 4, 4, "h1")  # still running
    _attempt(j, 5, 5, "h2", state=AttemptState.FAILED, reason="worker_died")
    _attempt(j, 6, 5, "h1", 2, state=AttemptState.FAILED, reason="error",
             error="Traceback (most recent call last):\n  ...\nValueError: bad 5\n")
    j.give_up(5, JobState.FAILED, "2 attempt(s): worker_died, error")
    _attempt(j, 7, 6, "h2", state=AttemptState.FAILED, reason="cancelled")  # not a failure
    j.give_up(6, JobState.CANCELLED, "cancelled")
    _attempt(j, 8, 7, "h2", state=AttemptState.FAILED, reason="timeout")  # retried
    j.requeue(7)
    j.flush()

    reader = Journal(str(tmp_path), readonly=True)
    try:
        fig = figures(read_snapshot(reader, held=True, now=time.time() + 2))
    finally:
        reader.close()
        j.close()
    assert (fig.total, fig.succeeded, fig.running, fig.failed, fig.queued, fig.cancelled,
            fig.unknown) == (8, 3, 1, 1, 2, 1, 0)
    assert fig.done == 5 and fig.attempts == 8 and fig.state == "running"
    h1, h2 = fig.hosts
    assert (h1.name, h1.state, h1.slots, h1.busy, h1.done, h1.failed) == ("h1", "up", 2, 1, 3, 1)
    assert h1.mean_s == 2.0 and h1.error == "ValueError: bad 5"
    assert (h2.state, h2.busy, h2.done, h2.failed, h2.mean_s) == ("quarantined", 0, 0, 2, None)
    assert h2.error == "5 failures in a row; h2: worker died"  # the host's own error first
    # newest first, one line per job, cancelled attempts left out
    assert [(f["job"], f["number"], f["retried"]) for f in fig.failures] == [
        (7, 1, True), (5, 2, False)]
    assert fig.failures[1]["error"] == "ValueError: bad 5"
    assert fig.failures[0]["error"] == "timeout"
    # 5 jobs ended within the rate window, which began with the first dispatch 2 s ago
    assert 2.3 < fig.jobs_per_s <= 2.5 and fig.eta_s == 3 / fig.jobs_per_s


def _snap(**changes) -> Snapshot:
    base = Snapshot(
        taken_at=1000.0, meta={"run_id": "R", "created": 980.0, "state": "running"},
        counts={"PENDING": 6, "RUNNING": 4, "SUCCEEDED": 18, "FAILED": 2, "UNKNOWN": 0,
                "CANCELLED": 0},
        recent_done=20, first_dispatch=990.0, attempts=24, hosts=[], per_host={},
        host_last_error={}, failures=[])
    return dataclasses.replace(base, **changes)


def test_rate_and_eta_use_the_recent_window():
    fig = figures(_snap())  # 20 jobs ended in the 10 s since the first dispatch
    assert fig.jobs_per_s == 2.0 and fig.eta_s == 5.0 and fig.elapsed_s == 20.0
    later = figures(_snap(taken_at=1100.0, recent_done=15))  # window capped at 30 s
    assert later.jobs_per_s == 0.5 and later.eta_s == 20.0


def test_no_completion_yet_has_no_eta():
    fig = figures(_snap(recent_done=0))
    assert fig.jobs_per_s == 0.0 and fig.eta_s is None


def test_a_finished_run_uses_its_recorded_elapsed_time():
    fig = figures(_snap(meta={"run_id": "R", "created": 980.0, "state": "done",
                              "elapsed_s": 10.0},
                        counts={"PENDING": 0, "RUNNING": 0, "SUCCEEDED": 28, "FAILED": 2,
                                "UNKNOWN": 0, "CANCELLED": 0}))
    assert fig.finished and fig.state == "done"
    assert fig.jobs_per_s == 3.0 and fig.eta_s == 0.0 and fig.elapsed_s == 10.0


def test_a_running_run_nobody_holds_is_interrupted():
    assert figures(_snap(held=False)).state == "interrupted"
    assert figures(_snap(held=True)).state == "running"


def test_the_view_fits_100_columns_and_names_every_host():
    hosts = [{"name": f"worker-{i:02d}.example.org", "state": "up" if i % 5 else "down",
              "slots": 8, "error": None if i % 5 else f"worker-{i:02d}.example.org: refused"}
             for i in range(20)]
    per_host = {h["name"]: (8, 100 + i, i, 0.5 + i) for i, h in enumerate(hosts)}
    failures = [{"job": 10 + i, "number": 1, "host": hosts[i]["name"], "slot": 0,
                 "reason": "error", "error": "E" * 300, "ended": 999.0, "state": "FAILED"}
                for i in range(8)]
    fig = figures(_snap(hosts=hosts, per_host=per_host, failures=failures))
    console = Console(record=True, width=100, force_terminal=True)
    console.print(render(fig))
    text = console.export_text()
    lines = text.splitlines()
    assert all(len(line) <= 100 for line in lines), max(lines, key=len)
    assert "worker-00.example.org" in text and "+4 more" in text  # 16 rows, then a total
    assert "  refused" in text and "org: refused" not in text  # the row names the host
    assert "ETA 0:05" in text and "2.0 jobs/s" in text
    assert text.count("job 1") == 5 and "latest failures" in text
    assert "28/30 jobs" not in text and "20/30 jobs 66%" in text


def test_prefetched_jobs_are_queued_not_busy(tmp_path):
    import time

    j = _journal(tmp_path, time.time() - 5)
    j.host("h1", "up", slots=2)
    for attempt in range(1, 3):  # started on both slots
        _attempt(j, attempt, attempt, "h1")
    for attempt in range(3, 7):  # prefetched behind them: sent, not started
        j.dispatch(attempt, attempt, 1, "h1", 0)
    j.flush()
    reader = Journal(str(tmp_path), readonly=True)
    try:
        fig = figures(read_snapshot(reader, held=True))
    finally:
        reader.close()
        j.close()
    h1 = fig.hosts[0]
    assert (h1.slots, h1.busy, h1.queued) == (2, 2, 4)  # not "busy 6" on 2 slots
    assert (fig.running, fig.queued) == (2, 6)  # 2 started; 4 prefetched + 2 never sent
    console = Console(record=True, width=100)
    console.print(render(fig))
    text = console.export_text()
    assert "running 2  failed 0  queued 6" in text
    header = next(line for line in text.splitlines() if line.lstrip().startswith("host"))
    assert header.split()[:6] == ["host", "state", "slots", "busy", "queued", "done"]


def test_a_cancelled_or_halted_run_shows_what_was_done_not_100_percent():
    for state in ("cancelled", "halted"):
        fig = figures(_snap(meta={"run_id": "R", "created": 980.0, "state": state,
                                  "elapsed_s": 10.0},
                            counts={"PENDING": 0, "RUNNING": 0, "SUCCEEDED": 18, "FAILED": 2,
                                    "UNKNOWN": 0, "CANCELLED": 20}))
        console = Console(record=True, width=100)
        console.print(render(fig))
        text = console.export_text()
        assert "20/40 jobs 50%" in text and "40/40" not in text and "100%" not in text


def test_a_run_whose_master_was_killed_ends_with_its_last_journal_entry(tmp_path):
    import time

    created = time.time() - 3600  # an hour ago; the master was killed 70 s after the start
    j = _journal(tmp_path, created)
    _attempt(j, 1, 1, "h1", state=AttemptState.SUCCEEDED, dur=1.0)
    j.db.execute("UPDATE attempts SET dispatched = ?, started = ?, ended = ?",
                 (created + 10, created + 11, created + 12))
    j.event("host_up", "h1 up", host="h1")
    j.flush()
    j.db.execute("UPDATE events SET ts = ?", (created + 70,))
    j.db.commit()
    reader = Journal(str(tmp_path), readonly=True)
    try:
        fig = figures(read_snapshot(reader, held=False))
    finally:
        reader.close()
        j.close()
    assert fig.state == "interrupted"
    assert 69 < fig.elapsed_s < 71  # not 0:00, nor the hour since
    console = Console(record=True, width=100)
    console.print(render(fig))
    assert "1:10 elapsed" in console.export_text()


def test_the_counts_line_fits_80_columns():
    from sshmr.views.live import counts_line

    fig = figures(_snap(counts={"PENDING": 9000, "RUNNING": 64, "SUCCEEDED": 10000,
                                "FAILED": 120, "UNKNOWN": 0, "CANCELLED": 0}, attempts=10250))
    assert not fig.finished
    line = counts_line(fig).plain
    assert len(line) <= 80, line
    assert line == ("succeeded 10000  running 64  failed 120  queued 9000  attempts 10250")
    some = figures(_snap(meta={"run_id": "R", "created": 980.0, "state": "cancelled",
                               "elapsed_s": 10.0},
                         counts={"PENDING": 0, "RUNNING": 0, "SUCCEEDED": 900, "FAILED": 20,
                                 "UNKNOWN": 3, "CANCELLED": 77}, attempts=990))
    line = counts_line(some).plain
    assert line == "succeeded 900  failed 20  unknown 3  cancelled 77  attempts 990"
