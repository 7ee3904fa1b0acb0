"""Issue 12, fault 2: packet loss and delay on the hosts' links while a run goes.

The kernel of the test machine has no ``netem`` qdisc (``tc qdisc ... netem`` answers
"Specified qdisc kind is unknown"), so ``NetnsCluster.impair`` does it with netfilter in
each host's network namespace: ``iptables -m statistic --mode random --probability 0.1
-j DROP`` on the host's link, incoming and outgoing (10 % of the packets each way are
dropped by the kernel), and every packet that survives goes through NFQUEUE to a delay
line (``tests/netdelay.py``) that gives it back to the kernel 50 ms later (so a round trip
is 100 ms longer). TCP retransmits what is lost; the run must complete, exact, with no hang
(the CLI runs under a time limit), with the default heartbeat and ``host_silence``. At the
end every host's run directory is gone, or the run named the host that kept it and
``sshmr gc`` removes it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from checks import (  # noqa: E402
    FAULT_JOB,
    assert_nothing_lost,
    attempts_of,
    events_of,
    payloads,
    result_of,
    the_run_dir,
    write_inputs,
)
from helpers import sshmr_cli, write_inventory  # noqa: E402
from jobs_faults import blob  # noqa: E402

from sshmr import JobState  # noqa: E402

pytestmark = pytest.mark.root
LOSS_PCT, DELAY_MS = 10, 50


def test_run_over_lossy_slow_links_completes_exact_without_hanging(netns_cluster, tmp_path):
    c = netns_cluster(2)
    effects = tmp_path / "effects"
    effects.mkdir()
    inv = write_inventory(c, tmp_path / "inv.yaml", slots=2, connect_timeout=20)
    n_jobs = 40
    items = payloads(effects, n_jobs, sleep=0.2)
    items[3]["result_kb"] = 256  # a result fetched as a file, through the same bad link
    inputs = write_inputs(tmp_path / "inputs.txt", items)
    for h in c.hosts:
        c.impair(h.index, loss_pct=LOSS_PCT, delay_ms=DELAY_MS)

    proc = sshmr_cli("run", "-i", str(inv), FAULT_JOB, str(inputs), "--max-retries", "2",
                     "--json", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path,
                     timeout=240)  # a hang fails the test here
    counters = [c.impairment_counters(h.index) for h in c.hosts]
    for h in c.hosts:
        c.unimpair(h.index)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["state"] == "done"

    result = result_of(the_run_dir(tmp_path / "runs"))
    # The master removes each host's run dir, over the bad link too; a host where it could
    # not within its patience, or lost during the run, is named with the dir for 'sshmr gc'.
    kept = [h for h in c.hosts if Path(h.workdir, "runs", result.run_id).exists()]
    for h in kept:  # named, on one line, with its dir (kept, or lost: it may be left)
        left = Path(h.workdir, "runs", result.run_id)
        assert [line for line in proc.stderr.splitlines()
                if line.startswith(f"sshmr: host {h.address} ") and str(left) in line
                and line.endswith("'sshmr gc' removes it")], proc.stderr
    if kept:
        gc = sshmr_cli("gc", "-i", str(inv), "--runs-dir", str(tmp_path / "runs"),
                       cwd=tmp_path, timeout=120)
        assert gc.returncode == 0, gc.stderr
    assert_nothing_lost(result, 2, effects, cluster=c)
    assert result.ok and len(result.jobs) == n_jobs
    for job, item in zip(result.jobs, items, strict=True):
        assert job.state is JobState.SUCCEEDED
        if "result_kb" in item:
            assert job.result == blob(256 * 1024)
        else:
            assert job.result["k"] == item["k"], (job.job, job.result)
    for i, n in enumerate(counters):  # the impairment really bit, on both links
        assert n["dropped"] > 0 and n["delayed"] > 0, (i, n)
    downs = events_of(result.run_dir, "host_down")
    began = min(a["dispatched"] for a in attempts_of(result.run_dir))
    connected = max(e["ts"] for e in events_of(result.run_dir, "host_up")) - began
    retries = events_of(result.run_dir, "retry")
    print(f"\n{LOSS_PCT}% loss + {DELAY_MS} ms delay each way on both links: {n_jobs} jobs done "
          f"exact in {result.elapsed_s:.2f}s; packets dropped/delayed per host: "
          f"{[(n['dropped'], n['delayed']) for n in counters]}; host_down events: "
          f"{len(downs)}, retries: {len(retries)}; last host up {connected:+.2f}s after the "
          f"first dispatch; run dirs kept at the end (then removed by gc): "
          f"{[h.address for h in kept]}")
