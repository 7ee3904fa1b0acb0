"""Make docs/report.png: a real run on 2 loopback sshd hosts x 4 slots (200 jobs of
``tests/jobs/jobs_report.py:Mixed``: some fail, some are slow), its HTML report, and a
screenshot of it in headless Chromium. Everything it starts is stopped on exit.

    python docs/screenshot.py [OUT.png]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent / "tests"))
sys.path.insert(0, str(DOCS.parent / "tests" / "jobs"))

import jobs_report  # noqa: E402
from browser import Opened, browser  # noqa: E402
from helpers import write_inventory  # noqa: E402
from sshd_cluster import SshdCluster  # noqa: E402

import sshmr  # noqa: E402


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else DOCS / "report.png"
    with tempfile.TemporaryDirectory(prefix="sshmr-screenshot-") as tmp:
        root = Path(tmp)
        cluster = SshdCluster(root / "cluster", 2)
        try:
            cluster.start()
            inv = write_inventory(cluster, root / "inventory.yaml", slots=4)
            result = sshmr.run(jobs_report.Mixed(), [str(i) for i in range(1, 201)],
                               inventory=str(inv), runs_dir=str(root / "runs"), max_retries=2,
                               timeout=20, seed=3)
        finally:
            cluster.stop()
        print(result)
        path = Path(result.report(root / "report.html"))
        with browser() as b:
            opened = Opened(b, path, width=1280)
            assert opened.errors == [], opened.errors
            # the page down to the first few (collapsed) failed jobs
            top = opened.page.evaluate(
                "() => document.querySelectorAll('#failures details')[5]"
                ".getBoundingClientRect().bottom + window.scrollY + 3")
            opened.page.screenshot(path=str(out), full_page=True,
                                   clip={"x": 0, "y": 0, "width": 1280, "height": top})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
