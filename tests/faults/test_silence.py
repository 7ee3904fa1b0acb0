"""A host that goes silent mid-run (it answers nothing, but no connection is closed).

Every process of host 0 (its sshd listener and sessions, the agent, the workers) is
frozen with SIGSTOP: TCP stays up, nothing answers. The master must notice the missing
heartbeats after ``host_silence`` and move the host's jobs to the other host.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from checks import (  # noqa: E402
    FAST,
    Background,
    assert_nothing_lost,
    events_of,
    host_index,
    launches,
    payloads,
    wait_for,
)
from helpers import write_inventory  # noqa: E402
from jobs_faults import Fault  # noqa: E402

import sshmr  # noqa: E402


def test_a_silent_host_is_declared_lost_and_its_jobs_move(fresh_cluster, tmp_path):
    c = fresh_cluster(2)
    effects = tmp_path / "effects"
    effects.mkdir()
    inv = write_inventory(c, tmp_path / "inv.yaml", slots=2)
    frozen: list[int] = []
    frozen_at: list[float] = []

    def freeze_host_0_once_busy() -> None:
        def busy_on_0() -> bool:
            return sum(1 for runs in launches(effects).values()
                       if any(host_index(r[2]) == 0 for r in runs)) >= 2
        wait_for(busy_on_0, 20, "jobs on host 0")
        pids = [c.hosts[0].pid] + [pid for pid, _ in c.descendants(0, include_sshd=True)]
        frozen_at.append(time.time())
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
            frozen.append(pid)

    freezer = Background(freeze_host_0_once_busy)
    freezer.start()
    try:
        result = sshmr.run(Fault(), payloads(effects, 12, sleep=0.5), inventory=str(inv),
                           runs_dir=str(tmp_path / "runs"), max_retries=2, seed=3, **FAST)
        freezer.join()
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        c.kill_host(0)  # what the frozen host was doing is of no interest any more

    by_job = assert_nothing_lost(result, 2, effects, cluster=c, dead_hosts=[0])
    assert result.ok, result
    h0, h1 = (h.address for h in c.hosts)
    down = [e for e in events_of(result.run_dir, "host_down") if e["host"] == h0]
    assert down and "no message from the host" in down[0]["message"]
    detect = down[0]["ts"] - frozen_at[0]
    assert FAST["host_silence"] - 0.2 < detect < FAST["host_silence"] + 1.0, detect
    lost = [a for rows in by_job.values() for a in rows if a["reason"] == "host_lost"]
    assert lost and all(a["host"] == h0 for a in lost)
    for a in lost:
        assert by_job[a["job"]][-1]["host"] == h1
    print(f"\nhost silent -> declared lost after {detect:.2f}s (host_silence "
          f"{FAST['host_silence']}s); {len(lost)} jobs moved to the other host; run took "
          f"{result.elapsed_s:.2f}s")
    assert result.elapsed_s < 10  # a connection to the frozen host must not hold the end
