"""R1: the HTML run report at scale: its size, render time and load time in Chromium.

Builds a 10,000-job journal (``tests/synth_journal.py``: 4 hosts x 4 slots, retries,
timeouts, 100 failed jobs), or with ``--real`` runs JOBS trivial jobs locally, writes
the report and loads it REPEAT times in headless Chromium (Debian's ``chromium`` via
Playwright), printing the medians.

    python bench/bench_report.py [--jobs 10000] [--hosts 4] [--slots 4] [--real] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "tests"))  # tests/ is not a package
sys.path.insert(0, str(BENCH))

from browser import Opened, browser  # noqa: E402
from synth_journal import make_journal  # noqa: E402

from sshmr.views.report import write_report  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--hosts", type=int, default=4)
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--real", action="store_true", help="run trivial jobs locally instead")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sshmr-bench-report-") as tmp:
        t0 = time.perf_counter()
        if args.real:
            from bench_jobs import Noop

            import sshmr

            run_dir = Path(sshmr.run(Noop(), range(args.jobs), runs_dir=f"{tmp}/runs").run_dir)
        else:
            run_dir = make_journal(Path(tmp, "run"), jobs=args.jobs, hosts=args.hosts,
                                   slots=args.slots)
        made = time.perf_counter() - t0
        renders = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            path = Path(write_report(run_dir, Path(tmp, "report.html")))
            renders.append(time.perf_counter() - t0)
        size = path.stat().st_size
        loads, navs, shapes = [], [], 0
        with browser() as b:
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                opened = Opened(b, path)
                loads.append(time.perf_counter() - t0)
                navs.append(opened.page.evaluate(  # ms from navigation to a frame drawn
                    "() => new Promise(r => requestAnimationFrame(() =>"
                    " requestAnimationFrame(() => r(performance.now()))))"))
                shapes = opened.page.locator("#timeline rect").count()
                assert opened.errors == [], opened.errors
                opened.page.close()
    out = {"jobs": args.jobs, "source": "real local run" if args.real else "synthetic journal",
           "journal_s": round(made, 3), "render_s": round(statistics.median(renders), 3),
           "size_bytes": size, "timeline_shapes": shapes,
           "chromium_load_s": round(statistics.median(loads), 3),
           "chromium_painted_ms": round(statistics.median(navs), 1)}
    print(f"report of {args.jobs} jobs ({out['source']}): {size / 1e6:.2f} MB, rendered in "
          f"{out['render_s']:.2f} s; Chromium: page open to load event {out['chromium_load_s']:.2f}"
          f" s (first frame drawn {out['chromium_painted_ms']:.0f} ms after navigation), "
          f"{shapes} timeline shapes")
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
