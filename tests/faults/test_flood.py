"""A job that floods stdout and stderr: it completes, the journal keeps only bounded
tails, and the master's memory does not grow with the output."""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from checks import FAST, assert_nothing_lost, payloads  # noqa: E402
from helpers import write_inventory  # noqa: E402
from jobs_faults import Fault  # noqa: E402

import sshmr  # noqa: E402
from sshmr.remote.protocol import TAIL_BYTES  # noqa: E402

MB = 50


def _status_kb(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1))


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so the peak is this test's own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def test_stdout_and_stderr_flood(cluster, tmp_path):
    effects = tmp_path / "effects"
    effects.mkdir()
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[3], slots=1)
    runs = str(tmp_path / "runs")
    # warm up: imports, SSH and journal machinery are allocated before the measurement
    (tmp_path / "warm").mkdir()
    warm = sshmr.run(Fault(), payloads(tmp_path / "warm", 1), inventory=str(inv),
                     runs_dir=runs, **FAST)
    assert warm.ok
    reset = _reset_peak_rss()
    before = _status_kb("VmHWM") if reset else _status_kb("VmRSS")
    result = sshmr.run(Fault(), payloads(effects, 1, flood_mb=MB), inventory=str(inv),
                       runs_dir=runs, max_retries=0, **FAST)
    grew_mb = (_status_kb("VmHWM") - before) / 1024

    by_job = assert_nothing_lost(result, 0, effects, cluster=cluster)
    assert result.ok, result
    (attempt,) = by_job[1]
    header = f"[... {MB * 1024 * 1024 + 20 - TAIL_BYTES} bytes before]\n"
    for tail, end in ((attempt["stdout_tail"], "end of stdout flood\n"),
                      (attempt["stderr_tail"], "end of stderr flood\n")):
        assert tail.startswith(header) and tail.endswith(end)
        assert len(tail.encode()) == len(header) + TAIL_BYTES
    print(f"\n{MB} MiB to stdout and {MB} MiB to stderr in "
          f"{attempt['ended'] - attempt['dispatched']:.2f}s; master peak RSS grew "
          f"{grew_mb:.1f} MiB (peak reset: {reset})")
    assert grew_mb < 20
