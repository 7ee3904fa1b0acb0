"""The benchmark suite: every workload, sshmr side by side with GNU parallel -M, one command.

    python bench/suite.py            # the full suite (about 25 min on 2 CPUs, both accounts)
    python bench/suite.py --quick    # smaller sizes, 1 repetition, parallel capped at 8 s

Starts its own loopback sshd cluster (tests/sshd_cluster.py), then for each account (root,
and as root also the plain-shell user ``sshmrbench``, see suite_env) runs W1-W7 and the
scheduler simulation; sshmr and GNU parallel alternate (which goes first flips each
repetition). Prints a table of medians with the ratio sshmr / parallel, and writes every
number to JSON (``--json-out``). Every process it starts is stopped by PID, also on errors
and Ctrl-C; it then checks that nothing mentioning its temp dir is left. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import simulate  # noqa: E402
import suite_env as env  # noqa: E402
import suite_work as work  # noqa: E402

SIZES = {  # full, quick
    "w1_jobs": (1000, 1000), "w2_jobs": (320, 320), "w3_files": (100, 100),
    "w4_jobs": (20_000, 5000), "w6_mb": (100, 20), "w7_jobs": (100_000, 20_000),
    "sim_jobs": (1_000_000, 100_000), "reps": (3, 1), "cap": (20.0, 8.0),
}
W5_KILL_AT = 1.2


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    size = {k: v[1 if args.quick else 0] for k, v in SIZES.items()}
    if args.reps:
        size["reps"] = args.reps
    if args.cap:
        size["cap"] = args.cap
    for var in ("SSH_AUTH_SOCK", "SSH_AGENT_PID"):
        os.environ.pop(var, None)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    root = Path(tempfile.mkdtemp(prefix="sshmr-suite-"))
    report = {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "quick": args.quick,
              "sizes": size, "machine": machine(), "load_avg": [loadavg()], "rows": []}
    say(f"sshmr benchmark suite ({'quick' if args.quick else 'full'}), {report['date']}, "
        f"{report['machine']['cpus']} CPUs, load average {loadavg()}")
    n_hosts = 32 if "w7" in args.only else 16
    cluster = None
    accounts: list[env.Account] = []
    status = 0
    try:
        cluster = env.start_cluster(root, n_hosts, plain=os.geteuid() == 0 and not args.no_plain)
        accounts = env.accounts(root, cluster, not args.no_plain)
        for account in accounts:
            say(f"== account {account.label}: {account.user}, python {account.python}")
            run_account(args, size, root, cluster, account, report)
        if "sim" in args.only:
            for hosts in (10, 100, 1000):
                r = simulate.simulate(hosts, 8, size["sim_jobs"])
                add_row(report, "sim", "-", f"{hosts} hosts x 8 slots, {size['sim_jobs']} jobs",
                        r, None, f"{r['us_per_event']:.2f} us/event, {r['us_per_job']:.2f} us/job")
    except KeyboardInterrupt:
        say("interrupted: cleaning up")
        report["error"] = "interrupted"
        status = 130
    except (env.BenchError, subprocess.CalledProcessError) as exc:
        say(f"error: {exc}")
        report["error"] = str(exc)
        status = 1
    finally:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
        if cluster is not None:
            cluster.stop()
            for account in accounts:
                env.remove_key(account, cluster)
        left = env.processes_mentioning(str(root))
        report["leftover_processes"] = left
        if left:
            say("leftover processes: " + "; ".join(left))
            status = status or 1
        shutil.rmtree(root, ignore_errors=True)
    report["load_avg"].append(loadavg())
    print_table(report)
    Path(args.json_out).write_text(json.dumps(report, indent=1, default=str))
    say(f"(all numbers in {args.json_out})")
    return status


# --------------------------------------------------------------------------- per account


def run_account(args, size: dict, root: Path, cluster, account: env.Account,
                report: dict) -> None:
    lab = account.label
    runs = root / f"runs-{lab}"
    inv4 = account.inventory(cluster, root / f"inv4-{lab}.yaml", 4, 4)
    logins4 = env.sshlogins(cluster, account, 4, 4)
    cap, reps = size["cap"], size["reps"]
    work.sshmr_trivial(inv4, runs, 16)  # warm-up: pushes the code bundle to the 4 hosts
    w2_walls: list[float] = []

    if "w1" in args.only:
        n = size["w1_jobs"]
        mine, theirs = alternate(reps, lambda: work.sshmr_trivial(inv4, runs, n),
                                 lambda: work.parallel_trivial(root, f"w1-{lab}", logins4, n, cap))
        s = med(mine)
        add_row(report, "W1", lab, f"{n} trivial jobs, 4 hosts x 4 slots", s, theirs,
                f"start-up {s['startup_s']:.2f} s, {s['steady_jobs_per_s']:.0f} jobs/s after "
                f"start-up, spread {s['spread']:.0%}, {s['cpu_ms_per_job']:.3f} ms CPU/job")
    if "w2" in args.only:
        n = size["w2_jobs"]
        mine, theirs = alternate(reps, lambda: work.sshmr_sleep(inv4, runs, n, 16),
                                 lambda: work.parallel_sleep(root, f"w2-{lab}", logins4, n, cap))
        s = med(mine)
        w2_walls = [m["wall_s"] for m in mine]
        add_row(report, "W2", lab, f"{n} x sleep {work.W2_SLEEP}, 16 slots", s, theirs,
                f"ideal {s['ideal_s']:.1f} s, slot efficiency {s['efficiency']:.2f} end to end, "
                f"{s['efficiency_after_startup']:.2f} after the first dispatch, "
                f"{s['efficiency_all_up']:.2f} once every host is up ({s['all_up_s']:.2f} s"
                f" later)")
    if "w3" in args.only:
        files = work.make_files(root, size["w3_files"])
        mine, theirs = alternate(reps, lambda: work.sshmr_files(inv4, runs, files),
                                 lambda: work.parallel_files(root, f"w3-{lab}", logins4, files,
                                                             cap, account))
        s = med(mine)
        add_row(report, "W3", lab, f"{len(files)} x 1 MiB pushed + 1 MiB returned, 4 x 4", s,
                theirs, f"{s['mib_each_way'] * 2 / s['wall_s']:.0f} MiB/s both ways")
    if "w4" in args.only:
        n = size["w4_jobs"]
        inv16 = account.inventory(cluster, root / f"inv16-{lab}.yaml", 16, 2)
        logins16 = env.sshlogins(cluster, account, 16, 2)
        work.sshmr_trivial(inv16, runs, 64)  # warm-up of the 12 other hosts
        mine, theirs = alternate(reps, lambda: work.sshmr_trivial(inv16, runs, n),
                                 lambda: work.parallel_trivial(root, f"w4-{lab}", logins16, n,
                                                               cap))
        s = med(mine)
        add_row(report, "W4", lab, f"{n} trivial jobs, 16 hosts x 2 slots", s, theirs,
                f"master {s['cpu_ms_per_job']:.3f} ms CPU/job, peak RSS "
                f"{s['peak_rss_mib']:.0f} MiB, spread {s['spread']:.0%}")
    if "w5" in args.only:
        n = size["w2_jobs"]
        victim = 3

        def kill() -> None:
            cluster.kill_host(victim)

        mine = []
        for _ in range(reps):
            r = work.sshmr_sleep(inv4, runs, n, 16, kill=(W5_KILL_AT, kill))
            cluster.start_host(victim)
            work_s = n * work.W2_SLEEP  # slot-seconds of work; 16 slots, then 12 after the kill
            done_by_kill = 16 * max(0.0, W5_KILL_AT - r["startup_s"])
            ideal = W5_KILL_AT + max(0.0, work_s - done_by_kill) / 12 + work.W2_SLEEP
            r["ideal_s"] = round(ideal, 3)
            r["beyond_s"] = round(r["wall_s"] - ideal, 3)
            mine.append(r)
        s = med(mine)
        ref = f", W2 wall {statistics.median(w2_walls):.2f} s" if w2_walls else ""
        add_row(report, "W5", lab, f"W2 with host {victim} killed at {W5_KILL_AT} s", s, None,
                f"{s['beyond_s']:+.2f} s beyond the ideal with the lost work redone "
                f"({s['ideal_s']:.2f} s){ref}; attempts {s['attempts']}")
    if "w6" in args.only:
        add_row(report, "W6", lab, f"wordcount {size['w6_mb']} MB, 4 x 4",
                *w6(root, size["w6_mb"], inv4, lab))
    if "w7" in args.only:
        w7(size, root, cluster, account, report)


def w6(root: Path, mb: int, inv: Path, lab: str) -> tuple[dict, None, str]:
    """sshmr on the 4 x 4 lab, beside (same minutes, same input) the plain Counter loop,
    sshmr local and, if installed, Dask distributed with 2 workers (cluster start
    excluded)."""
    import bench_wordcount as wc

    data = root / "w6-words.txt"
    if not data.exists():
        wc.generate(data, mb)
    size_mb = data.stat().st_size / 1e6
    t = time.time()
    expected = wc.count_words(data)
    loop_s = time.time() - t
    local = wc.run_master(root, data, f"w6-{lab}-local", None, os.cpu_count() or 1)
    wc.check(root / f"out-w6-{lab}-local", expected)
    out = wc.run_master(root, data, f"w6-{lab}", str(inv), 16)
    wc.check(root / f"out-w6-{lab}", expected)
    out["mb_per_s"] = round(size_mb / out["wall_s"], 2)
    out["jobs_per_s"] = None
    out["local_mb_per_s"] = round(size_mb / local["wall_s"], 2)
    out["loop_mb_per_s"] = round(size_mb / loop_s, 2)
    beside = (f"; beside it: sshmr local {out['local_mb_per_s']:.1f} MB/s, Counter loop (1"
              f" process) {out['loop_mb_per_s']:.1f} MB/s")
    try:
        import dask.distributed  # noqa: F401
    except ImportError:
        beside += ", Dask: not installed"
    else:
        dask = wc.run_dask(root, data, expected)
        out["dask_mb_per_s"] = round(size_mb / dask["wall_s"], 2)
        beside += (f", Dask distributed 2 workers {out['dask_mb_per_s']:.1f} MB/s (cluster start"
                   " excluded)")
    return out, None, (f"{out['mb_per_s']:.1f} MB/s, master peak RSS {out['rss_mb']:.0f} MB, "
                       f"shuffle {out['shuffle_mb']:.1f} MB, {out['tasks']} tasks" + beside)


def w7(size: dict, root: Path, cluster, account: env.Account, report: dict) -> None:
    n = size["w7_jobs"]
    lab = account.label
    runs = root / f"runs7-{lab}"
    inv = account.inventory(cluster, root / f"inv32-{lab}.yaml", 32, 1)
    work.sshmr_trivial(inv, runs, 64)  # warm-up of hosts 16-31
    times: list[float] = []
    stop = threading.Event()
    try:
        r = work.sshmr_trivial(inv, runs, n, during=work.status_probe(runs, times, stop))
    finally:
        stop.set()
    r["status_s"] = times
    r["status_import_floor_s"] = work.status_import_floor()
    st = f"status {statistics.median(times):.2f} s (max {max(times):.2f})" if times else \
        "status: no probe landed during the run"
    add_row(report, "W7", lab, f"{n} trivial jobs, 32 hosts x 1 slot", r, None,
            f"{r['cpu_ms_per_job']:.3f} ms CPU/job, peak RSS {r['peak_rss_mib']:.0f} MiB, "
            f"journal {r['journal_mib']:.0f} MiB, {st}")


# --------------------------------------------------------------------------- helpers


def alternate(reps: int, mine, theirs) -> tuple[list[dict], list[dict]]:
    a: list[dict] = []
    b: list[dict] = []
    for i in range(reps):
        order = [(mine, a), (theirs, b)] if i % 2 == 0 else [(theirs, b), (mine, a)]
        for fn, into in order:
            into.append(fn())
            say(f"   {'sshmr' if into is a else 'parallel'}: {brief(into[-1])}")
    return a, b


def brief(r: dict) -> str:
    if "done" in r:
        return (f"{r['done']}/{r['jobs']} jobs in {r['wall_s']:.1f} s = {r['jobs_per_s']:.2f} "
                f"jobs/s{' (capped)' if r['capped'] else ''}")
    return (f"wall {r['wall_s']:.2f} s = {r['jobs_per_s']:.0f} jobs/s, start-up "
            f"{r['startup_s']:.2f} s, after start-up {r['steady_jobs_per_s']:.0f} jobs/s, "
            f"{r['cpu_ms_per_job']:.3f} ms CPU/job, per host "
            f"{'/'.join(str(v) for v in r['jobs_per_host'].values())}")


def med(runs: list[dict]) -> dict:
    out = dict(runs[-1])
    for key, value in runs[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = statistics.median(r[key] for r in runs)
    out["each"] = runs
    return out


def add_row(report: dict, wl: str, account: str, what: str, mine: dict,
            theirs: list[dict] | None, note: str) -> None:
    row = {"workload": wl, "account": account, "what": what, "sshmr": mine, "note": note,
           "load_avg": loadavg()}
    if theirs:
        p = med(theirs)
        row["parallel"] = p
        row["ratio"] = round(mine["jobs_per_s"] / p["jobs_per_s"], 1) if p["jobs_per_s"] else None
    report["rows"].append(row)
    say(f"{wl} [{account}] {what}: {note}")


def print_table(report: dict) -> None:
    say("")
    say("| workload | account | sshmr jobs/s | GNU parallel -M jobs/s | ratio | notes |")
    say("|---|---|---|---|---|---|")
    for row in report["rows"]:
        s = row["sshmr"]
        mine = f"{s['jobs_per_s']:.1f}" if s.get("jobs_per_s") else "-"
        p = row.get("parallel")
        theirs = "-"
        if p:
            theirs = f"{p['jobs_per_s']:.2f}" + (" (capped)" if p.get("capped") else "")
        ratio = f"{row['ratio']}x" if row.get("ratio") else "-"
        say(f"| {row['workload']} {row['what']} | {row['account']} | {mine} | {theirs} | "
            f"{ratio} | {row['note']} |")


def machine() -> dict:
    def version(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (out.stdout or out.stderr).splitlines()[0].strip()
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"

    import paramiko

    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "paramiko": paramiko.__version__,
            "openssh": version(["ssh", "-V"]), "parallel": version(["parallel", "--version"])}


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def say(text: str) -> None:
    print(text, flush=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


WORKLOADS = ("w1", "w2", "w3", "w4", "w5", "w6", "w7", "sim")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller sizes, 1 repetition")
    p.add_argument("--reps", type=int, help="repetitions of W1-W5 (default 3, quick 1)")
    p.add_argument("--cap", type=float, help="seconds GNU parallel may run (default 20/8)")
    p.add_argument("--only", nargs="+", choices=WORKLOADS, default=list(WORKLOADS),
                   help="run only these workloads")
    p.add_argument("--no-plain", action="store_true",
                   help="as root, skip the plain-shell user (no useradd)")
    p.add_argument("--json-out", default="bench-suite.json", help="where to write the numbers")
    args = p.parse_args(argv)
    if shutil.which("parallel") is None:
        p.error("GNU parallel is not installed (apt-get install -y parallel)")
    if "w3" in args.only and shutil.which("rsync") is None:
        p.error("rsync is not installed; GNU parallel --transferfile needs it "
                "(apt-get install -y rsync)")
    return args


if __name__ == "__main__":
    sys.exit(main())
