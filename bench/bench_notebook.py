"""Notebook helper throughput: ``Cluster.map`` of a trivial function vs ``sshmr.run`` of a
JobExecutor doing the same (``bench_jobs.Square``), on a loopback sshd cluster.

Starts its own cluster (``tests/sshd_cluster.py``), warms both paths up once, then runs each
REPEAT times alternately over the same N items and prints the medians. ``Cluster.map``
includes everything a notebook call pays: cloudpickling the function, a new code bundle
pushed to every host (its closure is part of the bundle), and the text bar (to /dev/null).

    python bench/bench_notebook.py [--jobs 1000] [--hosts 4] [--slots 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "tests"))
sys.path.insert(0, str(BENCH))

from bench_jobs import Square  # noqa: E402
from helpers import write_inventory  # noqa: E402
from sshd_cluster import SshdCluster  # noqa: E402

import sshmr  # noqa: E402
from sshmr.notebook import Cluster  # noqa: E402
from sshmr.notebook.view import RunView  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for var in ("SSH_AUTH_SOCK", "SSH_AGENT_PID"):
        os.environ.pop(var, None)
    root = Path(tempfile.mkdtemp(prefix="sshmr-bench-nb-"))
    cluster = SshdCluster(root / "cluster", args.hosts, own_homes=False)
    try:
        cluster.start()
        inventory = write_inventory(cluster, root / "inventory.yaml", slots=args.slots)
        items = list(range(args.jobs))
        offset = 7
        c = Cluster(inventory, runs_dir=str(root / "runs"))
        sink = open(os.devnull, "w")  # noqa: SIM115 - closed below

        def notebook() -> float:
            started = time.perf_counter()
            view = RunView(c.runs_dir, "bench", widget=False, stream=sink)
            with view:  # what Cluster._call does, with the text bar going to /dev/null
                executor, code = ship_function(lambda x: x * x + offset)
                result = sshmr.run(executor, [encode_item(i) for i in items],
                                   inventory=c.inventory, runs_dir=c.runs_dir, code=code,
                                   progress=view.post)
            assert result.results == [x * x + offset for x in items]
            return time.perf_counter() - started

        def engine() -> float:
            started = time.perf_counter()
            result = sshmr.run(Square(), items, inventory=str(inventory),
                               runs_dir=str(root / "runs"))
            assert result.ok
            return time.perf_counter() - started

        from sshmr.notebook.shipping import encode_item, ship_function

        print(f"{args.jobs} trivial jobs over {args.hosts} loopback sshd hosts x {args.slots}"
              f" slots, {os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.2f}")
        notebook(), engine()  # warm-up: page cache, the engine's bundle
        times: dict[str, list[float]] = {"Cluster.map": [], "sshmr.run": []}
        for _ in range(args.repeat):
            times["Cluster.map"].append(notebook())
            times["sshmr.run"].append(engine())
        # and the real call, once, as a notebook makes it (text bar on stderr -> /dev/null)
        saved, sys.stderr = sys.stderr, sink
        try:
            started = time.perf_counter()
            assert c.map(lambda x: x * x + offset, items) == [x * x + offset for x in items]
            real = time.perf_counter() - started
        finally:
            sys.stderr = saved
        sink.close()
        for name, values in times.items():
            med = statistics.median(values)
            print(f"{name:12s} median {med:.3f} s = {args.jobs / med:7.1f} items/s  "
                  f"(runs: {', '.join(f'{v:.3f}' for v in values)})")
        print(f"c.map(lambda, {args.jobs} items) once: {real:.3f} s = "
              f"{args.jobs / real:.1f} items/s")
        print(f"load avg after {os.getloadavg()[0]:.2f}")
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
