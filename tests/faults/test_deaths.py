"""Deaths: a worker killed by SIGKILL, a host killed mid-run, every host killed."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from checks import (  # noqa: E402
    FAST,
    FAULT_JOB,
    Background,
    assert_nothing_lost,
    events_of,
    host_index,
    launch_count,
    launches,
    payloads,
    result_of,
    start_cli,
    states,
    stop_process,
    the_run_dir,
    wait_for,
    write_inputs,
)
from helpers import write_inventory  # noqa: E402
from jobs_faults import Fault  # noqa: E402

import sshmr  # noqa: E402
from sshmr import JobState  # noqa: E402


def test_killed_worker_is_detected_at_once_and_replaced(cluster, tmp_path):
    effects = tmp_path / "effects"
    effects.mkdir()
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[2], slots=1)
    items = [{"k": "dies", "d": str(effects), "die_first": True}]
    items += payloads(effects, 4, sleep=0.05)
    result = sshmr.run(Fault(), items, inventory=str(inv), runs_dir=str(tmp_path / "runs"),
                       max_retries=2, **FAST)

    by_job = assert_nothing_lost(result, 2, effects, cluster=cluster)
    assert result.ok, result
    died, retry = by_job[1]
    assert (died["state"], died["reason"], died["exit_code"]) == ("FAILED", "worker_died", -9)
    detected = died["ended"] - died["started"]
    print(f"\nworker SIGKILLed -> attempt ended {detected * 1000:.0f} ms after it started")
    assert detected < 2.0
    assert retry["state"] == "SUCCEEDED" and retry["slot"] == died["slot"] == 0
    dead_pid = int(launches(effects)["dies"][0][1])
    # one new worker serves the slot from then on: every job ran in it, none in the dead one
    pids = {j.result["pid"] for j in result}
    assert len(pids) == 1 and dead_pid not in pids, (dead_pid, pids)


def test_host_killed_mid_run_its_jobs_finish_on_the_other_host(fresh_cluster, tmp_path):
    c = fresh_cluster(2)
    effects = tmp_path / "effects"
    effects.mkdir()
    inv = write_inventory(c, tmp_path / "inv.yaml", slots=2)
    n_jobs, seconds, slots = 16, 0.5, 4
    killed_at: list[float] = []

    def kill_host_0_once_busy() -> None:
        def busy_on_0() -> bool:
            return sum(1 for runs in launches(effects).values()
                       if any(host_index(r[2]) == 0 for r in runs)) >= 3
        wait_for(busy_on_0, 20, "jobs on host 0")
        time.sleep(0.2)  # mid-job
        killed_at.append(time.time())
        c.kill_host(0)

    killer = Background(kill_host_0_once_busy)
    killer.start()
    result = sshmr.run(Fault(), payloads(effects, n_jobs, sleep=seconds),
                       inventory=str(inv), runs_dir=str(tmp_path / "runs"), max_retries=2,
                       seed=11, **FAST)
    killer.join()

    by_job = assert_nothing_lost(result, 2, effects, cluster=c, dead_hosts=[0])
    assert result.ok, result
    h0, h1 = (h.address for h in c.hosts)
    lost = [a for rows in by_job.values() for a in rows if a["reason"] == "host_lost"]
    assert lost, "host 0 was killed while it ran jobs"
    for a in lost:
        assert a["host"] == h0
        final = by_job[a["job"]][-1]
        assert final["state"] == "SUCCEEDED" and final["host"] == h1
        assert len(by_job[a["job"]]) == 2  # host_lost once, then done on host 1
    down = [e for e in events_of(result.run_dir, "host_down") if e["host"] == h0]
    assert down, "the master noticed host 0 going down"
    detect = down[0]["ts"] - killed_at[0]
    retried = {e["attempt"]: e["ts"] for e in events_of(result.run_dir, "retry")}
    requeued = max(retried[a["id"]] for a in lost) - killed_at[0]
    begin = min(a["dispatched"] for rows in by_job.values() for a in rows)
    makespan = max(a["ended"] for rows in by_job.values() for a in rows) - begin
    ideal = n_jobs * seconds / slots
    print(f"\nhost killed -> host_down after {detect * 1000:.0f} ms, its {len(lost)} jobs "
          f"re-queued after {requeued * 1000:.0f} ms; makespan {makespan:.2f}s vs "
          f"{ideal:.2f}s without the fault (+{makespan - ideal:.2f}s)")
    assert detect < 1.0 and requeued < 1.0


def test_every_host_killed_ends_no_hosts_running_jobs_unknown(fresh_cluster, tmp_path):
    """max_retries=0: jobs that were running are UNKNOWN, never relaunched; the rest
    CANCELLED."""
    c = fresh_cluster(2)
    effects = tmp_path / "effects"
    effects.mkdir()
    inv = write_inventory(c, tmp_path / "inv.yaml", slots=2)

    def kill_all_once_busy() -> None:
        wait_for(lambda: launch_count(effects) >= 4, 20, "4 running jobs")
        c.kill_host(0)
        c.kill_host(1)

    killer = Background(kill_all_once_busy)
    killer.start()
    result = sshmr.run(Fault(), payloads(effects, 12, sleep=30), inventory=str(inv),
                       runs_dir=str(tmp_path / "runs"), max_retries=0, **FAST)
    killer.join()

    by_job = assert_nothing_lost(result, 0, effects, cluster=c, dead_hosts=[0, 1])
    assert result.state == "no_hosts", result
    counted = launches(effects)
    for job in result:
        ran = len(counted.get(job.input["k"], []))
        if job.state is JobState.UNKNOWN:
            assert ran == 1 and [a["reason"] for a in by_job[job.job]] == ["host_lost"]
        else:
            assert job.state is JobState.CANCELLED and ran == 0 and not by_job[job.job]
    assert states(result)[JobState.UNKNOWN] == 4
    assert states(result)[JobState.CANCELLED] == 8


def test_every_host_killed_cli_exits_3(fresh_cluster, tmp_path):
    c = fresh_cluster(2)
    effects = tmp_path / "effects"
    effects.mkdir()
    inv = write_inventory(c, tmp_path / "inv.yaml", slots=2)
    inputs = write_inputs(tmp_path / "inputs.txt", payloads(effects, 12, sleep=30))
    cli = start_cli("run", "-i", str(inv), FAULT_JOB, str(inputs), "--max-retries", "2",
                    "--json", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    try:
        wait_for(lambda: launch_count(effects) >= 4, 20, "4 running jobs")
        killed = time.monotonic()
        c.kill_host(0)
        c.kill_host(1)
        code = cli.wait(30)
        ended = time.monotonic() - killed
    finally:
        stop_process(cli)
    assert code == 3, (tmp_path / "cli.err").read_text()
    summary = json.loads((tmp_path / "cli.out").read_text().splitlines()[-1])
    assert summary["state"] == "no_hosts"
    result = result_of(the_run_dir(tmp_path / "runs"))
    assert_nothing_lost(result, 2, effects, cluster=c, dead_hosts=[0, 1])
    assert set(states(result)) == {JobState.CANCELLED}  # retries re-queue; no_hosts cancels
    print(f"\nevery host killed -> CLI exited 3 after {ended:.2f}s")
    assert ended < 5.0
