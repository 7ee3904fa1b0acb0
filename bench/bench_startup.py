"""Start-up of a fleet: how long from ``sshmr.run`` until the first host, and until every
host, runs a job, for 16 and 32 loopback sshd hosts (1 slot each, a code bundle already
pushed, as for any run after the first; 2 s apart, so the last run's hosts are quiet).

Each run is a fresh master process (``python -c``): ``--hosts`` hosts x 1 slot, 4 ``Noop``
jobs per host. From the journal: ``first`` = the first dispatch, ``all`` = the last host's
first dispatch, both from the call to ``sshmr.run`` (imports before it excluded); plus
the master's CPU seconds for the whole run, and the whole machine's (``/proc/stat``: the
master, every sshd, sftp-server and agent; on a 2-core lab start-up is bound by it). The
hosts have homes of their own (no shell rc files: a plain-shell account;
``--account-home`` uses this account's home and rc files).

    python bench/bench_startup.py [--hosts 16 32] [--reps 3] [--account-home]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "tests"))

from helpers import write_inventory  # noqa: E402
from sshd_cluster import SshdCluster  # noqa: E402

MASTER = """
import json, resource, sqlite3, sys, time
sys.path.insert(0, {bench!r})
import sshmr
from bench_jobs import Noop
t = time.time()
r = sshmr.run(Noop(), list(range({jobs})), inventory={inv!r}, runs_dir={runs!r})
wall = time.time() - t
db = sqlite3.connect(r.run_dir + "/journal.sqlite")
firsts = [row[0] for row in db.execute("SELECT MIN(dispatched) FROM attempts GROUP BY host")]
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({{"ok": r.ok, "hosts": len(firsts), "first_s": min(firsts) - t,
                  "all_s": max(firsts) - t, "wall_s": wall,
                  "cpu_s": ru.ru_utime + ru.ru_stime}}))
"""


def machine_busy_s() -> float:
    """CPU seconds this machine has been busy (every process: the master, sshd, agents)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def one_run(inv: Path, runs: Path, jobs: int) -> dict:
    code = MASTER.format(bench=str(BENCH), jobs=jobs, inv=str(inv), runs=str(runs))
    busy = machine_busy_s()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    busy = machine_busy_s() - busy
    if proc.returncode != 0:
        raise SystemExit(f"sshmr failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["machine_cpu_s"] = busy
    if not out["ok"]:
        raise SystemExit(f"sshmr run not clean: {out}")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hosts", type=int, nargs="+", default=[16, 32])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--account-home", action="store_true",
                   help="hosts share this account's home and shell rc files")
    p.add_argument("--json-out", default="bench-startup.json")
    args = p.parse_args()
    for var in ("SSH_AUTH_SOCK", "SSH_AGENT_PID"):
        os.environ.pop(var, None)
    root = Path(tempfile.mkdtemp(prefix="sshmr-startup-"))
    report: dict = {"load_avg_start": os.getloadavg()[0], "rows": []}
    cluster = None
    try:
        cluster = SshdCluster(root / "cluster", max(args.hosts),
                              own_homes=not args.account_home)
        cluster.start()
        print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
              f"{'account home' if args.account_home else 'own homes (no rc files)'}")
        for n in args.hosts:
            inv = write_inventory(cluster, root / f"inv{n}.yaml",
                                  hosts=list(range(n)), slots=1)
            runs = root / f"runs{n}"
            one_run(inv, runs, n)  # warm-up: pushes the code bundle to every host
            got = []
            for _ in range(args.reps):
                time.sleep(2)  # the last run's agents and sshd sessions have exited
                got.append(one_run(inv, runs, 4 * n))
            row = {"hosts": n, "runs": got}
            for key in ("first_s", "all_s", "wall_s", "cpu_s", "machine_cpu_s"):
                row[key] = round(statistics.median(r[key] for r in got), 3)
            report["rows"].append(row)
            alls = ", ".join(f"{r['all_s']:.2f}" for r in got)
            print(f"  {n:3d} hosts: first host running {row['first_s']:.2f} s, every host "
                  f"{row['all_s']:.2f} s (runs: {alls}), whole run "
                  f"{row['wall_s']:.2f} s, master CPU {row['cpu_s']:.2f} s, the machine's "
                  f"{row['machine_cpu_s']:.2f} s")
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    report["load_avg_end"] = os.getloadavg()[0]
    Path(args.json_out).write_text(json.dumps(report, indent=2))
    print(f"(numbers written to {args.json_out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
