"""Issue 12, fault 1: a real network partition, then the link heals.

Host 0's sshd sits in a network namespace behind a veth link (``tests/netns_cluster.py``).
Mid-job the link goes down both ways, silently (no RST, no FIN: the master only stops
hearing the host). The master declares the host lost after ``host_silence`` and its jobs
run on host 1. Meanwhile the cut-off agent's jobs finish and commit their results to the
host's disk. When the link heals the master reconnects; it finds those results there and
records each as a discarded duplicate (the job already has its result from host 1: never
a second one) or, for a job still without one, as its result; and host 0 gets work again.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from checks import (  # noqa: E402
    FAST,
    Background,
    assert_nothing_lost,
    attempts_of,
    events_of,
    host_index,
    launches,
    payloads,
    wait_for,
)
from helpers import write_inventory  # noqa: E402
from jobs_faults import Fault  # noqa: E402

import sshmr  # noqa: E402
from sshmr.remote import protocol  # noqa: E402

pytestmark = pytest.mark.root


def _run_dir(runs: Path) -> Path | None:
    found = [p for p in runs.glob("*") if (p / "journal.sqlite").exists()]
    return found[0] if found else None


def _partition_then_heal(c, effects: Path, runs: Path, times: dict[str, float],
                         lost_ids: list[int], *, heal_after_retries: bool) -> None:
    """Cut host 0 mid-job; once it is declared lost and its cut-off jobs have committed
    their results on its disk (and, if asked, succeeded again on host 1), heal the link."""
    h0 = c.hosts[0].address

    def busy_on_0() -> bool:
        return sum(1 for runs_ in launches(effects).values()
                   if any(host_index(r[2]) == 0 for r in runs_)) >= 2
    wait_for(busy_on_0, 20, "jobs on host 0")
    time.sleep(0.3)  # mid-job
    times["cut"] = time.time()
    c.partition(0)
    assert c.partitioned(0)
    run_dir = wait_for(lambda: _run_dir(runs), 10, "the run's journal")
    wait_for(lambda: [e for e in events_of(run_dir, "host_down") if e["host"] == h0],
             10, "host 0 declared lost")
    lost_ids.extend(a["id"] for a in attempts_of(run_dir)
                    if a["host"] == h0 and a["reason"] == "host_lost")
    assert lost_ids, "host 0 was cut off while it ran jobs"
    remote = Path(c.hosts[0].workdir, "runs", run_dir.name)
    wait_for(lambda: all((Path(protocol.attempt_dir(str(remote), a)) / protocol.DONE_FILE)
                         .exists() for a in lost_ids), 15,
             "the cut-off agent's jobs to commit their results on host 0")
    if heal_after_retries:
        jobs = {a["job"] for a in attempts_of(run_dir) if a["id"] in lost_ids}

        def done_elsewhere() -> bool:
            won = {a["job"] for a in attempts_of(run_dir) if a["state"] == "SUCCEEDED"}
            return jobs <= won
        wait_for(done_elsewhere, 20, "the cut-off jobs to succeed on host 1")
    times["heal"] = time.time()
    c.heal(0)
    assert not c.partitioned(0)


def _rejoined(result, c, times: dict[str, float], attempts: dict) -> tuple[float, list]:
    """Host 0 connected again after the heal and ran jobs again: (rejoin time, its attempts
    dispatched after that)."""
    h0 = c.hosts[0].address
    ups = [e["ts"] for e in events_of(result.run_dir, "host_up") if e["host"] == h0]
    rejoined = [t for t in ups if t > times["heal"]]
    assert rejoined, f"host 0 never came back after the heal (host_up at {ups})"
    after = [a for a in attempts.values() if a["host"] == h0 and a["dispatched"] > rejoined[0]]
    assert after and all(a["state"] == "SUCCEEDED" for a in after), after
    return rejoined[0] - times["heal"], after


def test_partitioned_host_is_lost_its_late_results_are_discarded_and_it_rejoins(
        netns_cluster, tmp_path):
    c = netns_cluster(2)
    effects = tmp_path / "effects"
    effects.mkdir()
    runs = tmp_path / "runs"
    inv = write_inventory(c, tmp_path / "inv.yaml", slots=2, connect_timeout=2)
    h0 = c.hosts[0].address
    times: dict[str, float] = {}
    lost_ids: list[int] = []

    fault = Background(lambda: _partition_then_heal(c, effects, runs, times, lost_ids,
                                                    heal_after_retries=True))
    fault.start()
    result = sshmr.run(Fault(), payloads(effects, 20, sleep=1.5), inventory=str(inv),
                       runs_dir=str(runs), max_retries=2, seed=5, master_grace=3.0,
                       reconnect_backoff=(0.5, 2.0), **FAST)
    fault.join()

    by_job = assert_nothing_lost(result, 2, effects, cluster=c)
    assert result.ok, result
    attempts = {a["id"]: a for rows in by_job.values() for a in rows}

    down = [e for e in events_of(result.run_dir, "host_down") if e["host"] == h0]
    detect = down[0]["ts"] - times["cut"]
    assert FAST["host_silence"] - 0.2 < detect < FAST["host_silence"] + 1.5, detect

    # every attempt cut off by the partition left its result on the host; each was found
    # when the host came back: a discarded duplicate, or the job's one result
    late = {e["attempt"] for e in events_of(result.run_dir, "late_result")}
    assert late == set(lost_ids), (late, lost_ids)
    discarded = [a for a in lost_ids if attempts[a]["state"] == "DISCARDED"]
    assert discarded, "a late result of a job already done elsewhere is a discarded duplicate"
    for a in lost_ids:
        row = attempts[a]
        job = row["job"]
        if row["state"] == "DISCARDED":
            assert row["reason"] == "duplicate"
            winner = [x for x in by_job[job] if x["state"] == "SUCCEEDED"]
            assert len(winner) == 1 and winner[0]["host"] != h0, by_job[job]
        else:  # committed late: its retry (if any) lost the race, nothing ran twice more
            assert row["state"] == "SUCCEEDED", dict(row)
    dup_events = {e["attempt"] for e in events_of(result.run_dir, "discarded")}
    assert set(discarded) <= dup_events

    rejoin, after = _rejoined(result, c, times, attempts)
    print(f"\npartition -> host_down after {detect:.2f}s (host_silence {FAST['host_silence']}s);"
          f" heal -> host up again after {rejoin:.2f}s; {len(lost_ids)} cut-off attempts: "
          f"{len(discarded)} discarded duplicates, {len(lost_ids) - len(discarded)} committed "
          f"late; {len(after)} jobs on the host after it rejoined; run took "
          f"{result.elapsed_s:.2f}s")


def test_max_retries_0_a_cut_off_job_is_unknown_until_its_result_is_found(netns_cluster,
                                                                            tmp_path):
    """No retry: the cut-off jobs end UNKNOWN, never launched again; when the host comes
    back their results, left on its disk, are theirs (one launch, one result each)."""
    c = netns_cluster(2)
    effects = tmp_path / "effects"
    effects.mkdir()
    runs = tmp_path / "runs"
    inv = write_inventory(c, tmp_path / "inv.yaml", slots=2, connect_timeout=2)
    times: dict[str, float] = {}
    lost_ids: list[int] = []
    fault = Background(lambda: _partition_then_heal(c, effects, runs, times, lost_ids,
                                                    heal_after_retries=False))
    fault.start()
    result = sshmr.run(Fault(), payloads(effects, 16, sleep=1.5), inventory=str(inv),
                       runs_dir=str(runs), max_retries=0, seed=5, master_grace=3.0,
                       reconnect_backoff=(0.5, 2.0), **FAST)
    fault.join()

    by_job = assert_nothing_lost(result, 0, effects, cluster=c)
    assert result.ok, result
    attempts = {a["id"]: a for rows in by_job.values() for a in rows}
    late = {e["attempt"] for e in events_of(result.run_dir, "late_result")}
    assert late == set(lost_ids), (late, lost_ids)
    counted = launches(effects)
    for a in lost_ids:
        row = attempts[a]
        assert row["state"] == "SUCCEEDED" and by_job[row["job"]] == [row], by_job[row["job"]]
        key = result.jobs[row["job"] - 1].input["k"]
        assert len(counted[key]) == 1, counted[key]
    rejoin, after = _rejoined(result, c, times, attempts)
    print(f"\nmax_retries 0: {len(lost_ids)} cut-off jobs UNKNOWN, then SUCCEEDED with the "
          f"result found on the host {rejoin:.2f}s after the heal; {len(after)} more jobs ran "
          f"there")
