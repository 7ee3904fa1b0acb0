"""W1: throughput of trivial jobs over SSH, sshmr vs GNU parallel -M.

Starts its own loopback sshd cluster (``tests/sshd_cluster.py``), runs N trivial jobs
(``bench_jobs.Noop``: returns its payload) over HOSTS x SLOTS with ``sshmr.run`` (one
warm-up run that pushes the code bundle, then REPEAT measured runs, medians reported),
then ``echo {}`` jobs with ``parallel -M --sshloginfile`` over the same hosts, and prints
the numbers (see bench/README.md). Everything it starts is stopped by PID on exit, on
error and on Ctrl-C/SIGTERM; its temporary directory is removed unless ``--keep``.

    python bench/bench_trivial.py [--jobs 1000] [--hosts 4] [--slots 4] [--no-parallel]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "tests"))  # tests/ is not a package
sys.path.insert(0, str(BENCH))

from bench_jobs import Noop  # noqa: E402
from helpers import write_inventory  # noqa: E402
from sshd_cluster import SshdCluster  # noqa: E402
from suite_env import processes_mentioning  # noqa: E402
from suite_env import session_members as _session_members  # noqa: E402

import sshmr  # noqa: E402

PARALLEL_DEFAULT_MAX = 200  # GNU parallel does ~10 jobs/s here: 1000 jobs would take minutes
TERM_GRACE = 3.0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for var in ("SSH_AUTH_SOCK", "SSH_AGENT_PID"):  # only the cluster's own key is used
        os.environ.pop(var, None)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)
    root = Path(tempfile.mkdtemp(prefix="sshmr-bench-"))
    report: dict = {"benchmark": "W1 trivial jobs", "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
                    "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                "platform": platform.platform()},
                    "jobs": args.jobs, "hosts": args.hosts, "slots": args.slots,
                    "load_avg_before": _loadavg()}
    cluster = SshdCluster(root / "cluster", args.hosts, own_homes=False)
    status = 0
    try:
        cluster.start()  # first, while single-threaded: the sshds then die with us
        say(f"W1 trivial jobs: {args.jobs} jobs over {args.hosts} hosts x {args.slots} slots "
            f"(loopback sshd, {os.cpu_count()} CPUs, load avg {report['load_avg_before']})")
        inventory = write_inventory(cluster, root / "inventory.yaml", slots=args.slots)
        hosts = [h.address for h in cluster.hosts]
        report["sshmr"] = bench_sshmr(args, inventory, root / "runs", hosts)
        if args.no_parallel:
            report["gnu_parallel"] = {"skipped": "--no-parallel"}
        elif shutil.which("parallel") is None:
            report["gnu_parallel"] = {"skipped": "GNU parallel is not installed"}
            say("GNU parallel: skipped (not installed)")
        else:
            report["gnu_parallel"] = bench_parallel(args, cluster, root)
        ratio = None
        gp = report["gnu_parallel"]
        if "jobs_per_s" in gp:
            ratio = report["sshmr"]["jobs_per_s"] / gp["jobs_per_s"]
            say(f"ratio sshmr / GNU parallel jobs/s (end-to-end): {ratio:.1f}x "
                f"({report['sshmr']['jobs_per_s']:.1f} / {gp['jobs_per_s']:.2f})")
        report["ratio_sshmr_over_parallel"] = None if ratio is None else round(ratio, 2)
    except KeyboardInterrupt:
        say("interrupted: cleaning up")
        report["error"] = "interrupted"
        status = 130
    except BenchError as exc:
        say(f"error: {exc}")
        report["error"] = str(exc)
        status = 1
    finally:
        with _deferred_signals():
            cluster.stop()
            left = processes_mentioning(str(root))
            report["leftover_processes"] = left
            if left:
                say("leftover processes: " + "; ".join(report["leftover_processes"]))
                status = status or 1
            if args.keep:
                say(f"kept {root}")
            else:
                shutil.rmtree(root, ignore_errors=True)
    report["load_avg_after"] = _loadavg()
    if args.json:
        print(json.dumps(report, sort_keys=False), flush=True)
    return status


class BenchError(Exception):
    pass


# --------------------------------------------------------------------------- sshmr


def bench_sshmr(args: argparse.Namespace, inventory: Path, runs_dir: Path,
                hosts: list[str]) -> dict:
    items = list(range(args.jobs))
    warm = run_sshmr(items, inventory, runs_dir, args.live)
    say(f"sshmr warm-up (pushes the code bundle): {warm['wall_s']:.3f} s, "
        f"{warm['jobs_per_s']:.1f} jobs/s")
    runs = []
    for i in range(args.repeat):
        r = run_sshmr(items, inventory, runs_dir, args.live)
        runs.append(r)
        say(f"sshmr run {i + 1}/{args.repeat}: wall {r['wall_s']:.3f} s = "
            f"{r['jobs_per_s']:.1f} jobs/s; after start-up {r['steady_jobs_per_s']:.1f} jobs/s; "
            f"start-up {r['startup_s']:.3f} s; master CPU {r['cpu_ms_per_job']:.3f} ms/job; "
            f"jobs per host {'/'.join(str(r['attempts_per_host'].get(h, 0)) for h in hosts)}"
            + (f"; live view: {r['live_frames']} frames, {r['live_cpu_ms']:.0f} ms CPU"
               if args.live else ""))

    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    out = {"runs": args.repeat, "warmup": warm, "each": runs,
           "wall_s": med("wall_s"), "jobs_per_s": med("jobs_per_s"),
           "startup_s": med("startup_s"), "steady_s": med("steady_s"),
           "steady_jobs_per_s": med("steady_jobs_per_s"),
           "cpu_ms_per_job": med("cpu_ms_per_job"), "cpu_user_s": med("cpu_user_s"),
           "cpu_sys_s": med("cpu_sys_s"),
           "max_rss_mib": max(r["max_rss_mib"] for r in runs)}
    say(f"sshmr, median of {args.repeat} runs:")
    say(f"  end-to-end wall time        {out['wall_s']:.3f} s")
    say(f"  end-to-end jobs/s           {out['jobs_per_s']:.1f}")
    say(f"  start-up                    {out['startup_s']:.3f} s  (run() called -> first "
        f"dispatch)")
    say(f"  jobs/s after start-up       {out['steady_jobs_per_s']:.1f}  (first dispatch -> last "
        f"attempt end: {out['steady_s']:.3f} s, from the journal)")
    say(f"  master CPU per job          {out['cpu_ms_per_job']:.3f} ms  (user "
        f"{out['cpu_user_s']:.3f} s + sys {out['cpu_sys_s']:.3f} s per run)")
    say(f"  master max RSS              {out['max_rss_mib']:.1f} MiB  (peak of the process)")
    return out


def run_sshmr(items: list[int], inventory: Path, runs_dir: Path, live: bool = False) -> dict:
    """One sshmr.run; with ``live``, the live view of ``sshmr run`` on a terminal redraws it
    all along (in this process, as in the CLI), drawn on a 100-column terminal that is
    /dev/null, so the master CPU measured includes the view's."""
    n = len(items)
    view = contextlib.nullcontext()
    if live:
        from rich.console import Console

        from sshmr.views.live import LiveDisplay

        tty = open(os.devnull, "w")  # noqa: SIM115 - closed below
        view = LiveDisplay(str(runs_dir), Console(file=tty, force_terminal=True, width=100))
    before = resource.getrusage(resource.RUSAGE_SELF)
    t_unix = time.time()
    t0 = time.perf_counter()
    with view:
        result = sshmr.run(Noop(), items, inventory=str(inventory), runs_dir=str(runs_dir),
                           progress=view.post if live else None)
    wall = time.perf_counter() - t0
    if live:
        tty.close()
    after = resource.getrusage(resource.RUSAGE_SELF)
    if result.state == "cancelled":  # sshmr caught our Ctrl-C/SIGTERM and stopped the run
        raise KeyboardInterrupt
    if not result.ok or result.results != items or result.attempts != n:
        raise BenchError(f"sshmr run not clean: {result.summary()} {result.message}")
    first, last, per_host = _journal_span(result.run_dir)
    user = after.ru_utime - before.ru_utime
    sys_ = after.ru_stime - before.ru_stime
    return {"run_id": result.run_id, "wall_s": round(wall, 4), "jobs_per_s": round(n / wall, 2),
            "startup_s": round(first - t_unix, 4), "steady_s": round(last - first, 4),
            "steady_jobs_per_s": round(n / (last - first), 2),
            "cpu_user_s": round(user, 4), "cpu_sys_s": round(sys_, 4),
            "cpu_ms_per_job": round((user + sys_) * 1000 / n, 4),
            "max_rss_mib": round(after.ru_maxrss / 1024, 1),  # Linux: KiB
            "attempts_per_host": per_host, "live_frames": view.frames if live else None,
            "live_cpu_ms": round(view.cpu_s * 1000, 1) if live else None}


def _journal_span(run_dir: str) -> tuple[float, float, dict[str, int]]:
    db = sqlite3.connect(f"file:{Path(run_dir, 'journal.sqlite')}?mode=ro", uri=True)
    try:
        first, last = db.execute("SELECT MIN(dispatched), MAX(ended) FROM attempts").fetchone()
        per_host = dict(db.execute("SELECT host, COUNT(*) FROM attempts GROUP BY host"
                                   " ORDER BY host"))
    finally:
        db.close()
    return first, last, per_host


# --------------------------------------------------------------------------- GNU parallel


def bench_parallel(args: argparse.Namespace, cluster: SshdCluster, root: Path) -> dict:
    n = args.parallel_jobs if args.parallel_jobs is not None else min(args.jobs,
                                                                     PARALLEL_DEFAULT_MAX)
    logins = root / "sshloginfile"
    lines = []
    for h in cluster.hosts:
        ssh = ["ssh", "-F", str(cluster.ssh_config), "-i", str(cluster.client_key),
               "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={cluster.known_hosts}",
               "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-p", str(h.port)]
        lines.append(f"{args.slots}/{shlex.join(ssh)} {cluster.user}@{h.address}")
    logins.write_text("\n".join(lines) + "\n")
    joblog = root / "parallel.joblog"
    tmpdir = root / "ptmp"  # -M control sockets live here
    tmpdir.mkdir()
    cmd = ["parallel", "--will-cite", "-M", "--sshloginfile", str(logins),
           "--joblog", str(joblog), "echo", "{}"]
    env = dict(os.environ, TMPDIR=str(tmpdir))
    label = f"{n} of {args.jobs} jobs" if n != args.jobs else f"{n} jobs"
    say(f"GNU parallel -M ({label}): {shlex.join(cmd)}")
    t0 = time.perf_counter()
    out, err, rc = _run_in_own_session(cmd, "".join(f"{i}\n" for i in range(n)), env)
    wall = time.perf_counter() - t0
    if rc != 0 or sorted(map(int, out.split())) != list(range(n)):
        raise BenchError(f"GNU parallel failed (exit {rc}): {err[-2000:]}")
    starts, ends = [], []
    for row in joblog.read_text().splitlines()[1:]:
        f = row.split("\t")
        if f[6] != "0":
            raise BenchError(f"GNU parallel job failed: {row}")
        starts.append(float(f[2]))
        ends.append(float(f[2]) + float(f[3]))
    steady = max(ends) - min(starts)
    res = {"jobs": n, "subset": n != args.jobs, "command": shlex.join(cmd),
           "sshlogins": lines, "wall_s": round(wall, 3), "jobs_per_s": round(n / wall, 2),
           "steady_s": round(steady, 3), "steady_jobs_per_s": round(n / steady, 2)}
    say(f"GNU parallel -M, {label}{' (subset, --parallel-jobs)' if res['subset'] else ''}:")
    say(f"  end-to-end wall time        {wall:.3f} s")
    say(f"  end-to-end jobs/s           {res['jobs_per_s']:.2f}")
    say(f"  jobs/s after start-up       {res['steady_jobs_per_s']:.2f}  (first start -> last "
        f"end: {steady:.3f} s, from --joblog)")
    return res


def _run_in_own_session(cmd: list[str], stdin: str, env: dict) -> tuple[str, str, int]:
    """Run ``cmd`` as a new session; on any exit path, end every process left in it (by PID)."""
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    sid = proc.pid
    try:
        out, err = proc.communicate(stdin)
        return out, err, proc.returncode
    finally:
        with _deferred_signals():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)  # parallel: stop starting jobs
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.communicate(timeout=TERM_GRACE)
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for pid in _session_members(sid):  # ssh ControlMasters it may have left
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- helpers


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)  # sshmr then stops like on Ctrl-C


@contextlib.contextmanager
def _deferred_signals():
    """Hold SIGINT/SIGTERM/SIGHUP while cleaning up, so a second Ctrl-C cannot cut it short."""
    sigs = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def say(text: str) -> None:
    print(text, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=1000, help="jobs per run (default 1000)")
    p.add_argument("--hosts", type=int, default=4, help="loopback sshd hosts (default 4)")
    p.add_argument("--slots", type=int, default=4, help="slots per host (default 4)")
    p.add_argument("--repeat", type=int, default=3,
                   help="measured sshmr runs after the warm-up; medians are reported (default 3)")
    p.add_argument("--parallel-jobs", type=int, default=None,
                   help=f"jobs for the GNU parallel run (default: --jobs, at most "
                        f"{PARALLEL_DEFAULT_MAX})")
    p.add_argument("--no-parallel", action="store_true", help="skip GNU parallel")
    p.add_argument("--live", action="store_true",
                   help="draw the live view of 'sshmr run' (to /dev/null) during each run")
    p.add_argument("--json", action="store_true",
                   help="print all numbers as one JSON object on the last line")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args(argv)
    for name in ("jobs", "hosts", "slots", "repeat"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1")
    if args.parallel_jobs is not None and args.parallel_jobs < 1:
        p.error("--parallel-jobs must be >= 1")
    return args


if __name__ == "__main__":
    sys.exit(main())
