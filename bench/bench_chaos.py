"""The chaos run (issue 12), long: seeded random faults under a mixed workload, history checked.

For each seed it starts a fresh loopback sshd cluster (in network namespaces when
``tests/netns_cluster.py`` exists and this is root, so partitions are real; else plain
``SshdCluster``, and partitions are recorded as unavailable), runs ``tests/chaos.py`` for
``--minutes`` and checks the history (``tests/chaos_history.py``). It prints the seed
first, then per seed and in total: faults injected by kind, runs, jobs, relaunches,
discarded duplicates, master kills and resumes, wall time and PASS/FAIL with the failing
checks (and the whole schedule of a failing seed). Exit status 1 if any seed failed.

    python bench/bench_chaos.py --seed 7 --minutes 3          # replay one seed
    python bench/bench_chaos.py --seeds 20 --base 100 --minutes 3 [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "tests"))  # tests/ is not a package

from chaos import Chaos  # noqa: E402
from sshd_cluster import SshdCluster  # noqa: E402

COUNTS = ("runs", "jobs", "attempts", "relaunches", "discarded_duplicates", "master_kills",
          "resumes", "jobs_succeeded", "jobs_failed", "jobs_unknown", "jobs_cancelled")


def make_cluster(root: Path, hosts: int) -> Any:
    if os.geteuid() == 0:
        try:
            from netns_cluster import NetnsCluster
        except ImportError:
            pass
        else:
            return NetnsCluster(root, hosts)
    return SshdCluster(root, hosts)


def one_seed(seed: int, minutes: float, hosts: int, root: Path) -> dict[str, Any]:
    cluster = make_cluster(root / f"cluster-{seed}", hosts)
    cluster.start()
    try:
        chaos = Chaos(cluster, root / f"chaos-{seed}", seed=seed, seconds=minutes * 60,
                      log=lambda line: print(line, flush=True))
        report = chaos.run()
    finally:
        cluster.stop()
    row = dict(report.stats, ok=report.ok, failures=report.failures,
               cluster=type(cluster).__name__)
    _print_seed(row)
    if not report.ok:
        print(report.explain(), flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, help="replay this one seed")
    p.add_argument("--seeds", type=int, default=1, help="how many seeds (default 1)")
    p.add_argument("--base", type=int, default=1, help="first seed of --seeds (default 1)")
    p.add_argument("--minutes", type=float, default=3.0, help="chaos per seed (default 3)")
    p.add_argument("--hosts", type=int, default=4)
    p.add_argument("--json", action="store_true", help="one JSON object as the last line")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args(argv)
    for var in ("SSH_AUTH_SOCK", "SSH_AGENT_PID"):
        os.environ.pop(var, None)
    signal.signal(signal.SIGTERM, _interrupt)
    seeds = [args.seed] if args.seed is not None else list(range(args.base,
                                                                 args.base + args.seeds))
    print(f"chaos seeds {seeds}, {args.minutes:g} min each, {args.hosts} hosts", flush=True)
    root = Path(tempfile.mkdtemp(prefix="sshmr-bench-chaos-"))
    rows: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        for seed in seeds:
            rows.append(one_seed(seed, args.minutes, args.hosts, root))
    except KeyboardInterrupt:
        print("interrupted: the seeds done so far follow", file=sys.stderr)
    if not rows:
        return 2
    total = _total(rows, time.monotonic() - started)
    _print_total(total)
    if args.json:
        print(json.dumps(total))
    if args.keep or total["failed_seeds"]:
        print(f"kept {root} (journals, CLI output, side effects of every run)")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if total["failed_seeds"] == [] else 1


def _total(rows: list[dict[str, Any]], wall: float) -> dict[str, Any]:
    faults: dict[str, Counter] = {}
    for row in rows:
        for kind, c in row["faults"].items():
            faults.setdefault(kind, Counter()).update(c)
    total: dict[str, Any] = {"seeds": [r["seed"] for r in rows],
                             "failed_seeds": [r["seed"] for r in rows if not r["ok"]],
                             "minutes_per_seed": rows[0]["seconds"] / 60,
                             "wall_s": round(wall, 1),
                             "faults": {k: dict(v) for k, v in sorted(faults.items())},
                             "faults_injected": sum(r["faults_injected"] for r in rows)}
    for key in COUNTS:
        total[key] = sum(r.get(key, 0) for r in rows)
    total.update(cluster=rows[0]["cluster"], cpus=os.cpu_count(),
                 python=platform.python_version(), load_avg_after=os.getloadavg()[0],
                 per_seed=[{k: v for k, v in r.items() if k != "faults"} for r in rows])
    return total


def _faults_line(faults: dict[str, dict[str, int]]) -> str:
    return ", ".join(f"{k} {v.get('injected', 0)}/{v.get('planned', 0)}"
                     for k, v in faults.items())


def _print_seed(r: dict[str, Any]) -> None:
    verdict = "PASS" if r["ok"] else f"FAIL ({len(r['failures'])} checks)"
    print(f"seed {r['seed']}: {verdict} in {r['wall_s']:.0f}s on {r['cluster']}; faults injected"
          f"/planned: {_faults_line(r['faults'])}")
    print("  " + ", ".join(f"{k} {r.get(k, 0)}" for k in COUNTS), flush=True)
    for failure in r["failures"][:5]:
        print(f"  failed: {failure}")


def _print_total(t: dict[str, Any]) -> None:
    verdict = "PASS" if not t["failed_seeds"] else f"FAIL (seeds {t['failed_seeds']})"
    print(f"\nchaos: {len(t['seeds'])} seeds x {t['minutes_per_seed']:g} min in "
          f"{t['wall_s']:.0f}s: {verdict}")
    print(f"faults injected/planned: {_faults_line(t['faults'])} "
          f"({t['faults_injected']} injected)")
    print(", ".join(f"{k} {t[k]}" for k in COUNTS))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
