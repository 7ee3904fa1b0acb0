"""The long orphan stress (issue 13): many short runs, after each one no process left on any host.

Starts its own loopback sshd cluster (``tests/sshd_cluster.py``) and runs the rounds of
``tests/orphan_stress.py``: the entry points take turns (``sshmr.run`` in a fresh Python
process, the CLI, the CLI SIGKILLed at a random moment, the CLI sent SIGINT at a random
moment). Every sshd is restarted before each round, busy-loop processes load the CPU, and
half the agent start-ups are slowed down. After each round every process on every host
must be gone within master_grace + 2 s, and the run's remote directories must be removed
(or collected by ``sshmr gc``). It prints per entry point the rounds, leftovers and times,
and ends with status 1 if any round left something. Everything it starts is stopped by
PID, also on Ctrl-C/SIGTERM.

    python bench/bench_orphans.py --rounds 500 [--hosts 4] [--hogs 2] [--minutes M] [--json]
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
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "tests"))  # tests/ is not a package

from orphan_stress import ENTRY_POINTS, Stress  # noqa: E402
from sshd_cluster import SshdCluster  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=40, help="rounds in all (default 40)")
    p.add_argument("--hosts", type=int, default=4)
    p.add_argument("--hogs", type=int, default=2, help="busy-loop processes (default 2)")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--minutes", type=float, help="stop after this long (rounds done are kept)")
    p.add_argument("--json", action="store_true", help="one JSON object as the last line")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--entries", default=",".join(ENTRY_POINTS),
                   help="entry points taking turns (default: all of "
                   f"{','.join(ENTRY_POINTS)})")
    args = p.parse_args(argv)
    entries = [e for e in args.entries.split(",") if e]
    if not entries or set(entries) - set(ENTRY_POINTS):
        p.error(f"--entries: choose from {','.join(ENTRY_POINTS)}")
    for var in ("SSH_AUTH_SOCK", "SSH_AGENT_PID"):
        os.environ.pop(var, None)
    signal.signal(signal.SIGTERM, _interrupt)
    root = Path(tempfile.mkdtemp(prefix="sshmr-bench-orphans-"))
    cluster = SshdCluster(root / "cluster", args.hosts)
    started = time.monotonic()
    stop_at = started + args.minutes * 60 if args.minutes else float("inf")
    stress = None
    try:
        cluster.start()
        with Stress(cluster, root / "stress", seed=args.seed, hogs=args.hogs) as stress:
            for n in range(args.rounds):
                if time.monotonic() >= stop_at:
                    break
                r = stress.round(entries[n % len(entries)])
                if not r.ok or (n + 1) % 20 == 0:
                    print(f"round {r.number}/{args.rounds} {r.entry}: "
                          f"{'ok' if r.ok else 'FAILED'} ({time.monotonic() - started:.0f} s)",
                          flush=True)
                if r.problem:
                    print(f"    {r.problem}", flush=True)
                for line in r.evidence:
                    print(f"    {line}", flush=True)
    except KeyboardInterrupt:
        print("interrupted: the rounds done so far follow", file=sys.stderr)
    finally:
        cluster.stop()
    elapsed = time.monotonic() - started
    if stress is None or not stress.rounds:
        return 2
    summary = stress.summary()
    done = summary["rounds"]
    summary.update(seconds=round(elapsed, 1), seconds_per_round=round(elapsed / done, 2),
                   projected_500_rounds_min=round(elapsed / done * 500 / 60, 1),
                   hosts=args.hosts, hogs=args.hogs, cpus=os.cpu_count(),
                   python=platform.python_version(), load_avg_after=os.getloadavg()[0])
    _print(summary)
    for line in stress.failures():
        print("  " + line)
    if args.json:
        print(json.dumps(summary))
    if args.keep:
        print(f"kept {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if summary["failed_rounds"] == 0 else 1


def _print(s: dict) -> None:
    print(f"\norphan stress: {s['rounds']} rounds in {s['seconds']:.0f} s "
          f"({s['seconds_per_round']:.1f} s/round; 500 rounds ~{s['projected_500_rounds_min']:.0f}"
          f" min), {s['hosts']} hosts x 4 slots, {s['hogs']} CPU hogs on {s['cpus']} CPUs")
    print(f"{'entry':8} {'rounds':>6} {'leftover':>8} {'procs':>6} {'gc dirs':>7} {'left':>5} "
          f"{'problems':>8} {'^C out':>7} {'median s':>8} {'clean<= s':>9}  exits")
    for entry, e in s["by_entry"].items():
        print(f"{entry:8} {e['rounds']:>6} {e['with_leftovers']:>8} {e['leftover_processes']:>6} "
              f"{e['dirs_removed_by_gc']:>7} {e['dirs_left']:>5} {e['problems']:>8} "
              f"{e['interrupted_outside_handler']:>7} {e['median_s']:>8} "
              f"{e['max_clean_after_s']:>9}  {e['exits']}")
    print(f"failed rounds: {s['failed_rounds']}")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
