"""The master killed at random, longer (issue 12, fault 5): ``--kills N`` SIGKILLs per run.

Starts its own loopback sshd cluster and runs the workload of
``tests/faults/test_master_kills.py`` (many short jobs, a big result every few jobs)
through the CLI, killing ``sshmr run`` and then each ``sshmr resume`` at seeded random
times (some as soon as a result is being downloaded) until ``--kills`` kills are done and
a last resume finishes; then it checks the history (every job's result exactly once and
the expected one, no ``max_retries 0`` job started twice, no attempt open, nothing left on
the hosts) and prints what the kills hit and how long it took. Status 1 if a check fails.

    python bench/bench_master_kills.py --kills 100 [--max-retries 0] [--jobs 300] [--seed S]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
for sub in ("tests", "tests/faults", "tests/jobs"):
    sys.path.insert(0, str(BENCH.parent / sub))

from helpers import write_inventory  # noqa: E402
from sshd_cluster import SshdCluster  # noqa: E402
from test_master_kills import check_history, kill_until_done, workload  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=50)
    p.add_argument("--max-retries", type=int, default=2)
    p.add_argument("--jobs", type=int, default=300, help="short jobs (default 300)")
    p.add_argument("--big", type=int, default=30, help="jobs with a 6 MiB result")
    p.add_argument("--hosts", type=int, default=2)
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    print(f"seed {seed} (--seed {seed} replays the kill schedule)", flush=True)
    with tempfile.TemporaryDirectory(prefix="sshmr-bench-kills-") as tmp_name:
        tmp = Path(tmp_name)
        with SshdCluster(tmp / "cluster", args.hosts) as cluster:
            inv = write_inventory(cluster, tmp / "inv.yaml", slots=2)
            effects = tmp / "run" / "effects"
            effects.mkdir(parents=True)
            started = time.monotonic()
            try:
                run_dir, stats = kill_until_done(
                    cluster, tmp / "run", inv, workload(effects, args.jobs, args.big),
                    args.max_retries, args.kills, random.Random(seed))
                outcome = check_history(run_dir, effects, args.max_retries, cluster)
            except AssertionError as exc:
                print(f"FAILED (seed {seed}): {exc}")
                return 1
            took = time.monotonic() - started
    print(f"{stats['kills']} kills ({stats['during_download']} during a result download,"
          f" {stats['restarted']} before the jobs were recorded) of a run of"
          f" {args.jobs + args.big} jobs, max_retries {args.max_retries}: {dict(outcome)};"
          f" {took:.1f}s in all, {took / max(1, stats['kills']):.2f}s per kill + resume")
    return 0


if __name__ == "__main__":
    sys.exit(main())
