"""The suite's workloads: one sshmr run and one GNU parallel run of each, measured.

Each ``sshmr_*`` function does one full ``sshmr.run`` (connect, start agents, run, read
results back), checks every result, and returns its numbers: wall time, jobs/s, start-up
(run() called -> first dispatch), jobs/s after start-up (first dispatch -> last end, from
the journal), master CPU per job (getrusage of this process, all threads), the master's
peak RSS during the run (VmHWM, reset before the run through /proc/self/clear_refs), and
the spread of jobs across hosts once all are up (the largest deviation from the mean of
the attempts dispatched after every host's first one, over that mean). Each ``parallel_*``
function runs GNU parallel ``-M`` on the same hosts as the same account (see suite_env).
"""

from __future__ import annotations

import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import suite_env as env  # noqa: E402
from bench_jobs import FileEcho, Noop, Sleep  # noqa: E402

import sshmr  # noqa: E402

W2_SLEEP = 0.1


def _reset_peak_rss() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(executor, items=None, *, inventory: Path, runs_dir: Path, expect=None,
            during=None, **kw) -> dict:
    """One sshmr.run, checked and measured (see the module docstring)."""
    _reset_peak_rss()
    before = resource.getrusage(resource.RUSAGE_SELF)
    t_unix = time.time()
    t0 = time.perf_counter()
    side = None
    if during is not None:
        side = threading.Thread(target=during, daemon=True)
        side.start()
    result = sshmr.run(executor, items, inventory=str(inventory), runs_dir=str(runs_dir), **kw)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF)
    if side is not None:
        side.join(30)
    if result.state == "cancelled":
        raise KeyboardInterrupt
    n = len(result.jobs)
    if not result.ok:
        raise env.BenchError(f"sshmr run not clean: {result.summary()} {result.message}")
    if expect is not None:
        expect(result)
    db = sqlite3.connect(f"file:{Path(result.run_dir, 'journal.sqlite')}?mode=ro", uri=True)
    try:
        first, last = db.execute("SELECT MIN(dispatched), MAX(ended) FROM attempts").fetchone()
        per_host = dict(db.execute("SELECT host, COUNT(*) FROM attempts GROUP BY host"))
        # the spread once every host is up: attempts dispatched after each host's first
        all_up = db.execute("SELECT MAX(t) FROM (SELECT MIN(dispatched) AS t FROM attempts"
                            " GROUP BY host)").fetchone()[0]
        after_up = dict(db.execute("SELECT host, COUNT(*) FROM attempts WHERE dispatched >= ?"
                                   " GROUP BY host", (all_up,)))
    finally:
        db.close()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    counts = [after_up.get(h, 0) for h in per_host]
    mean = statistics.mean(counts) if counts else 0
    spread = max(abs(c - mean) for c in counts) / mean if mean else 0.0
    journal = Path(result.run_dir, "journal.sqlite").stat().st_size
    return {"run_id": result.run_id, "jobs": n, "attempts": result.attempts,
            "wall_s": round(wall, 3), "jobs_per_s": round(n / wall, 1),
            "startup_s": round(first - t_unix, 3), "steady_s": round(last - first, 3),
            "steady_jobs_per_s": round(n / (last - first), 1),
            "all_up_s": round(all_up - first, 3), "after_all_up_s": round(last - all_up, 3),
            "after_all_up_jobs": sum(after_up.values()),
            "cpu_ms_per_job": round(cpu * 1000 / n, 4), "peak_rss_mib": round(_peak_rss_mib(), 1),
            "jobs_per_host": per_host, "jobs_per_host_after_all_up": after_up,
            "spread": round(spread, 3),
            "journal_mib": round(journal / 2**20, 2), "run_dir": result.run_dir}


# --------------------------------------------------------------------------- W1, W4, W7


def sshmr_trivial(inv: Path, runs: Path, jobs: int, during=None) -> dict:
    items = list(range(jobs))

    def check(result) -> None:
        if result.results != items or result.attempts != jobs:
            raise env.BenchError("trivial jobs: results differ from the inputs")

    return measure(Noop(), items, inventory=inv, runs_dir=runs, expect=check, during=during)


def parallel_trivial(root: Path, name: str, logins: list[str], jobs: int, cap: float) -> dict:
    return env.run_parallel(root, name, logins, ["echo", "{}"], [str(i) for i in range(jobs)],
                            cap)


# --------------------------------------------------------------------------- W2, W5


def sshmr_sleep(inv: Path, runs: Path, jobs: int, slots: int, kill=None) -> dict:
    """W2 (and W5 with ``kill``: a callable run on a timer thread during the run)."""
    items = [W2_SLEEP] * jobs
    timer = None
    if kill is not None:
        timer = threading.Timer(kill[0], kill[1])
        timer.start()
    try:
        r = measure(Sleep(), items, inventory=inv, runs_dir=runs, max_retries=3)
    finally:
        if timer is not None:
            timer.cancel()
    ideal = jobs * W2_SLEEP / slots
    r["ideal_s"] = round(ideal, 3)
    r["efficiency"] = round(ideal / r["wall_s"], 3)
    r["efficiency_after_startup"] = round(ideal / r["steady_s"], 3)
    # once every host runs jobs (the last host's first dispatch): the work of the jobs
    # dispatched since over the slot-seconds since (jobs already running then not counted)
    r["efficiency_all_up"] = round(r["after_all_up_jobs"] * W2_SLEEP
                                   / (slots * r["after_all_up_s"]), 3)
    return r


def parallel_sleep(root: Path, name: str, logins: list[str], jobs: int, cap: float) -> dict:
    return env.run_parallel(root, name, logins, ["sleep"], [str(W2_SLEEP)] * jobs, cap)


# --------------------------------------------------------------------------- W3


def make_files(root: Path, n: int, size: int = 1 << 20) -> list[Path]:
    folder = root / "w3" / "in"
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        path = folder / f"f{i:04d}"
        if not path.exists():
            path.write_bytes(os.urandom(size))
        files.append(path)
    return files


def sshmr_files(inv: Path, runs: Path, files: list[Path]) -> dict:
    def check(result) -> None:
        for path, job in zip(files, result.jobs, strict=True):
            if job.result != path.read_bytes():
                raise env.BenchError(f"W3: job {job.job} returned other bytes than {path}")

    r = measure(FileEcho(), files=[str(f) for f in files], split="files", inventory=inv,
                runs_dir=runs, expect=check)
    r["mib_each_way"] = round(sum(f.stat().st_size for f in files) / 2**20, 1)
    return r


def parallel_files(root: Path, name: str, logins: list[str], files: list[Path], cap: float,
                   account: env.Account) -> dict:
    """--transferfile / --return / --cleanup, relative paths under a remote --wd."""
    base = files[0].parent.parent  # root/w3: inputs are in/fNNNN
    wd = root / f"pwd-{account.label}"
    wd.mkdir(exist_ok=True)
    if account.workroot is not None:
        import pwd

        entry = pwd.getpwnam(account.user)
        os.chown(wd, entry.pw_uid, entry.pw_gid)
    for f in base.glob("in/*.out"):
        f.unlink()
    args = ["--wd", str(wd), "--transferfile", "{}", "--return", "{}.out", "--cleanup",
            "cat {} > {}.out"]
    r = env.run_parallel(root, name, logins, args, [f"in/{f.name}" for f in files], cap,
                         cwd=base)
    back = list(base.glob("in/*.out"))
    if not r["capped"] and len(back) != len(files):
        raise env.BenchError(f"GNU parallel W3 returned {len(back)} of {len(files)} files")
    return r


# --------------------------------------------------------------------------- W7 status


def status_probe(runs: Path, times: list[float], stop: threading.Event, every: float = 2.0):
    """During a run: time ``sshmr status`` (a fresh process, as a user types it)."""

    def probe() -> None:
        time.sleep(every)
        while not stop.is_set():
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "sshmr", "status", "--runs-dir",
                                   str(runs)], capture_output=True, text=True, timeout=60)
            if proc.returncode == 0 and "running" in proc.stdout:
                times.append(round(time.perf_counter() - t0, 3))
            if stop.wait(every):
                return

    return probe


def status_import_floor() -> float:
    """How long a bare ``python -c 'import sshmr.cli'`` takes (the floor of any command)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import sshmr.cli"], check=True)
    return round(time.perf_counter() - t0, 3)
