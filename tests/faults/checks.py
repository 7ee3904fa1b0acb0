"""Shared checks and helpers of the fault-injection suite.

``assert_nothing_lost`` is the end of every scenario. It reads the run's journal and the
jobs' own side-effect files (``<dir>/<key>.launches``, one line per launch, written by the
job itself before it does any work, see ``tests/jobs/jobs_faults.py``) and checks:

* every job is in exactly one final state (journal and ``RunResult`` agree);
* no job has two committed results: at most one SUCCEEDED attempt per job, and a
  SUCCEEDED job's ``result_attempt`` is exactly that attempt (others have none);
* no attempt is left open (DISPATCHED/RUNNING) once the run has ended;
* launches per job <= 1 + max_retries, both in the journal and counted by the job's own
  side-effect file (so for max_retries=0: launched at most once, whatever sshmr believes),
  and never more side-effect launches than journaled attempts;
* the run's remote directory ``WORKDIR/runs/<run_id>`` is gone from every live host;
* the journal's running totals (what ``sshmr status`` reads, kept by SQLite triggers) equal
  the counts of its rows, through every kill, resume and fault of the scenario.

"No sshmr process left on any host" is checked by the cluster fixtures after each test.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent.parent
for _p in (TESTS, TESTS / "jobs"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from helpers import JOBS  # noqa: E402

from sshmr import JobState  # noqa: E402
from sshmr.result import RunResult, load_run_result  # noqa: E402

FINAL = {JobState.SUCCEEDED, JobState.FAILED, JobState.UNKNOWN, JobState.CANCELLED}
# Short enough for a fast suite, long enough for a loaded 2-core machine.
FAST = {"kill_grace": 0.5, "heartbeat": 0.2, "host_silence": 1.5}


# ---------------------------------------------------------------------------- journal


def journal(run_dir: str | Path) -> sqlite3.Connection:
    db = sqlite3.connect(f"file:{Path(run_dir) / 'journal.sqlite'}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    return db


def attempts_of(run_dir: str | Path, job: int | None = None) -> list[sqlite3.Row]:
    db = journal(run_dir)
    try:
        if job is None:
            return db.execute("SELECT * FROM attempts ORDER BY id").fetchall()
        return db.execute("SELECT * FROM attempts WHERE job = ? ORDER BY id", (job,)).fetchall()
    finally:
        db.close()


def events_of(run_dir: str | Path, kind: str | None = None) -> list[sqlite3.Row]:
    db = journal(run_dir)
    try:
        if kind is None:
            return db.execute("SELECT * FROM events ORDER BY id").fetchall()
        return db.execute("SELECT * FROM events WHERE kind = ? ORDER BY id", (kind,)).fetchall()
    finally:
        db.close()


def hosts_of(run_dir: str | Path) -> dict[str, sqlite3.Row]:
    db = journal(run_dir)
    try:
        return {r["name"]: r for r in db.execute("SELECT * FROM hosts")}
    finally:
        db.close()


# ------------------------------------------------------------------------ side effects


def launches(side_effect_dir: str | Path) -> dict[str, list[list[str]]]:
    """key -> one [number, pid, host tag, time] per launch, from the jobs' own files."""
    out = {}
    for path in Path(side_effect_dir).glob("*.launches"):
        out[path.name[: -len(".launches")]] = [ln.split() for ln in path.read_text().splitlines()]
    return out


def key_of(job_input: Any) -> str | None:
    if isinstance(job_input, str):
        try:
            job_input = json.loads(job_input)
        except ValueError:
            return None
    return job_input.get("k") if isinstance(job_input, dict) else None


def host_index(tag: str) -> int:
    """The cluster host index from a job's ``SSHD_CLUSTER_TAG`` (``<cluster id>-h<i>``)."""
    return int(tag.rsplit("-h", 1)[1])


def _proc_start(pid: int) -> tuple[int, str] | None:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    rest = data[data.rindex(b")") + 2:].split()
    return int(rest[19]), rest[0].decode()


def survivors(side_effect_dir: str | Path) -> list[str]:
    """Processes recorded in ``*.pids`` files (pid, start time, label) that still run."""
    alive = []
    for path in Path(side_effect_dir).glob("*.pids"):
        for line in path.read_text().splitlines():
            pid, start, label = line.split()
            now = _proc_start(int(pid))
            if now is not None and now[0] == int(start) and now[1] not in ("Z", "X"):
                alive.append(f"{path.name}: {label} pid {pid}")
    return alive


# ----------------------------------------------------------------------- the invariant


def assert_totals_match(db: sqlite3.Connection) -> None:
    """The totals the triggers kept are the counts of the rows (per job state; per host and
    attempt bucket, with the sum and count of succeeded attempts' durations)."""
    from sshmr.record import totals

    assert totals.has_totals(db), "the journal has no running totals"
    assert totals.job_counts(db, True) == totals.job_counts(db, False)
    kept, counted = totals.host_counts(db, True), totals.host_counts(db, False)
    assert kept.keys() == counted.keys(), (kept, counted)
    for host, entry in counted.items():
        assert kept[host]["n"] == entry["n"], (host, kept[host], entry)
        assert kept[host]["dur_n"] == entry["dur_n"], (host, kept[host], entry)
        assert abs(kept[host]["dur_sum"] - entry["dur_sum"]) < 1e-6 * max(1, entry["dur_n"])


def assert_nothing_lost(result: RunResult, max_retries: int,
                        side_effect_dir: str | Path | None = None, *, cluster: Any = None,
                        dead_hosts: Iterable[int] = (), remote_dirs_removed: bool = True,
                        final: bool = True) -> dict[int, list[sqlite3.Row]]:
    """See the module docstring. Returns job id -> its attempts, for further checks."""
    db = journal(result.run_dir)
    try:
        jobs = db.execute("SELECT * FROM jobs ORDER BY id").fetchall()
        attempts = db.execute("SELECT * FROM attempts ORDER BY id").fetchall()
        assert_totals_match(db)
    finally:
        db.close()
    by_job: dict[int, list[sqlite3.Row]] = {j["id"]: [] for j in jobs}
    for a in attempts:
        assert a["job"] in by_job, f"attempt {a['id']} of unknown job {a['job']}"
        by_job[a["job"]].append(a)

    assert [j["id"] for j in jobs] == [j.job for j in result.jobs] == list(
        range(1, len(jobs) + 1)), "each job exactly once"
    for row, job in zip(jobs, result.jobs, strict=True):
        state = JobState(row["state"])
        assert state is job.state
        if final:
            assert state in FINAL, f"job {job.job} ended the run in state {state.value}"
        mine = by_job[job.job]
        won = [a for a in mine if a["state"] == "SUCCEEDED"]
        assert len(won) <= 1, f"job {job.job} has {len(won)} committed results"
        if state is JobState.SUCCEEDED:
            assert len(won) == 1 and row["result_attempt"] == won[0]["id"], (
                f"job {job.job}: result_attempt {row['result_attempt']} is not its one"
                f" SUCCEEDED attempt {[a['id'] for a in won]}")
        else:
            assert not won and row["result_attempt"] is None, f"job {job.job}: stray result"
        assert len(mine) <= 1 + max_retries, (
            f"job {job.job} launched {len(mine)} times with max_retries={max_retries}")
        assert row["launches"] == len(mine) == job.attempts
        assert [a["number"] for a in mine] == list(range(1, len(mine) + 1))
        if final:
            still_open = [a["id"] for a in mine if a["state"] in ("DISPATCHED", "RUNNING")]
            assert not still_open, f"job {job.job}: attempts {still_open} never ended"

    if side_effect_dir is not None:
        counted = {k: len(v) for k, v in launches(side_effect_dir).items()}
        keys = {key_of(job.input): job.job for job in result.jobs}
        unknown = set(counted) - set(keys)
        assert not unknown, f"launches of jobs not in this run: {unknown}"
        for key, job_id in keys.items():
            n = counted.get(key, 0)
            assert n <= 1 + max_retries, f"job {key} ran {n} times (max_retries={max_retries})"
            if max_retries == 0:
                assert n <= 1, f"job {key} ran {n} times with max_retries=0"
            assert n <= len(by_job[job_id]), (
                f"job {key} ran {n} times but the journal has {len(by_job[job_id])} attempts")

    if cluster is not None and remote_dirs_removed:
        dead = set(dead_hosts)
        for h in cluster.hosts:
            left = Path(h.workdir, "runs", result.run_id)
            if h.index not in dead:
                assert not left.exists(), f"{h.name}: {left} was left behind"
    return by_job


# ------------------------------------------------------------------------------ misc


def payloads(side_effect_dir: Path, count: int, prefix: str = "j", **spec: Any) -> list[dict]:
    return [dict(spec, k=f"{prefix}{i}", d=str(side_effect_dir)) for i in range(count)]


def states(result: RunResult) -> Counter:
    return Counter(j.state for j in result.jobs)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, step: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


class Background(threading.Thread):
    """A thread whose exception (e.g. a failed ``wait_for``) is re-raised by ``join``."""

    def __init__(self, target: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self._fn = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            self.error = exc

    def join(self, timeout: float | None = 60) -> None:
        super().join(timeout)
        assert not self.is_alive(), "background fault injector did not finish"
        if self.error is not None:
            raise self.error


def launch_count(side_effect_dir: Path) -> int:
    return sum(len(v) for v in launches(side_effect_dir).values())


def start_cli(*args: str, cwd: Path) -> subprocess.Popen:
    """``python -m sshmr ARGS`` in the background; output goes to cwd/cli.out, cli.err."""
    env = dict(os.environ)
    env.pop("SSH_AUTH_SOCK", None)
    with open(cwd / "cli.out", "wb") as out, open(cwd / "cli.err", "wb") as err:
        return subprocess.Popen([sys.executable, "-m", "sshmr", *args], cwd=cwd, env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=err)


def cli_output(cwd: Path) -> str:
    return (cwd / "cli.out").read_text() + (cwd / "cli.err").read_text()


def stop_process(proc: subprocess.Popen) -> None:
    """Make sure a process the test started is gone (by its pid)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def write_inputs(path: Path, items: list[dict]) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return path


def the_run_dir(runs_dir: Path) -> Path:
    runs = [p for p in runs_dir.iterdir() if (p / "journal.sqlite").exists()]
    assert len(runs) == 1, runs
    return runs[0]


def result_of(run_dir: Path) -> RunResult:
    return load_run_result(str(run_dir))


FAULT_JOB = f"{JOBS}/jobs_faults.py:Fault"
