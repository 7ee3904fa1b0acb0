"""Policies under faults: quarantine of a failing host, halt on failures, max_living."""

from __future__ import annotations

import json
import stat
import sys
from collections import defaultdict
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from checks import (  # noqa: E402
    FAST,
    FAULT_JOB,
    assert_nothing_lost,
    events_of,
    hosts_of,
    journal,
    payloads,
    result_of,
    states,
    the_run_dir,
    write_inputs,
)
from helpers import sshmr_cli, write_inventory  # noqa: E402
from jobs_faults import FailingSetup, Fault  # noqa: E402

import sshmr  # noqa: E402
from sshmr import JobState  # noqa: E402

BAD_HOST_VAR = "SSHMR_TEST_BAD_HOST"


def _bad_python(tmp_path: Path) -> str:
    """A ``python`` for the inventory that marks every process of its host as broken."""
    wrapper = tmp_path / "bad-python"
    wrapper.write_text(f'#!/bin/sh\n{BAD_HOST_VAR}=1 exec "{sys.executable}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return str(wrapper)


@pytest.mark.parametrize("fault", ["worker_crash", "setup_fails"])
def test_a_host_that_keeps_failing_is_quarantined(cluster, tmp_path, fault):
    effects = tmp_path / "effects"
    effects.mkdir()
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[0, 1], slots=2,
                          host_overrides={0: {"python": _bad_python(tmp_path), "slots": 1}})
    bad, good = cluster.hosts[0].address, cluster.hosts[1].address
    # Jobs on host 1 hold both its slots until host 0 has failed 3 times (recorded in
    # effects/crashes), so the run cannot end before host 0 is quarantined and pending
    # jobs can only go to host 0 until then.
    if fault == "worker_crash":  # on host 0 every job SIGKILLs its worker
        executor: Fault = Fault()
        items = payloads(effects, 6, sleep=0.05, crash_env=BAD_HOST_VAR, await_crashes=3)
    else:  # setup() raises on host 0: its workers never come up
        executor = FailingSetup(str(effects))
        items = payloads(effects, 6, sleep=0.05, await_crashes=3)
    result = sshmr.run(executor, items, inventory=str(inv), runs_dir=str(tmp_path / "runs"),
                       quarantine_after=3, max_retries=3, seed=1, **FAST)

    by_job = assert_nothing_lost(result, 3, effects, cluster=cluster)
    assert result.ok, result
    hosts = hosts_of(result.run_dir)
    assert hosts[bad]["state"] == "quarantined" and hosts[good]["state"] == "up"
    assert [e["host"] for e in events_of(result.run_dir, "quarantined")] == [bad]
    assert "3 failures in a row" in hosts[bad]["error"]
    assert {j.host for j in result} == {good}
    on_bad = [a for rows in by_job.values() for a in rows if a["host"] == bad]
    (quarantined,) = events_of(result.run_dir, "quarantined")
    (bad_up,) = [e for e in events_of(result.run_dir, "host_up") if e["host"] == bad]
    print(f"\n{fault}: host quarantined {(quarantined['ts'] - bad_up['ts']) * 1000:.0f} ms after"
          f" it came up; run done in {result.elapsed_s:.2f}s")
    if fault == "worker_crash":
        # host 0 has one slot: the quarantine stops it after exactly 3 crashes
        assert [(a["state"], a["reason"]) for a in on_bad] == [("FAILED", "worker_died")] * 3
        assert (effects / "crashes").read_text().count("\n") == 3
    else:
        assert on_bad == []
        assert (effects / "crashes").read_text().count("\n") == 3
        failures = events_of(result.run_dir, "setup_failed")
        assert len(failures) == 3 and all(e["host"] == bad for e in failures)
        assert "this host is broken" in failures[0]["message"]


def test_halt_on_failures_cancels_the_rest(cluster, tmp_path):
    effects = tmp_path / "effects"
    effects.mkdir()
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[3], slots=2)
    items = payloads(effects, 4, prefix="bad", fail=True) + payloads(effects, 26, sleep=0.2)
    result = sshmr.run(Fault(), items, inventory=str(inv), runs_dir=str(tmp_path / "runs"),
                       max_retries=0, halt_on_failures=3, **FAST)

    assert_nothing_lost(result, 0, effects, cluster=cluster)
    assert result.state == "halted" and "halted" in result.message
    counts = states(result)
    assert counts[JobState.FAILED] == 3
    assert counts[JobState.CANCELLED] >= 20
    assert counts[JobState.FAILED] + counts[JobState.CANCELLED] + counts[
        JobState.SUCCEEDED] == 30
    assert all(j.state is not JobState.FAILED for j in result.jobs[4:])
    db = journal(result.run_dir)
    try:
        third = db.execute("SELECT ended FROM jobs WHERE state = 'FAILED' ORDER BY ended"
                           ).fetchall()[2][0]
        last = db.execute("SELECT MAX(ended) FROM jobs").fetchone()[0]
    finally:
        db.close()
    print(f"\nhalt: 3rd failure -> every other job final after {(last - third) * 1000:.0f} ms")
    assert last - third < 1.0

    # the CLI: the same run exits 1
    effects_cli = tmp_path / "effects-cli"
    effects_cli.mkdir()
    items = payloads(effects_cli, 4, prefix="bad", fail=True) + payloads(
        effects_cli, 26, sleep=0.2)
    inputs = write_inputs(tmp_path / "inputs.txt", items)
    proc = sshmr_cli("run", "-i", str(inv), FAULT_JOB, str(inputs), "--max-retries", "0",
                     "--halt-on-failures", "3", "--json", "--runs-dir",
                     str(tmp_path / "runs-cli"), cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["state"] == "halted" and summary["failed"] == 3
    cli_result = result_of(the_run_dir(tmp_path / "runs-cli"))
    assert_nothing_lost(cli_result, 0, effects_cli, cluster=cluster)
    assert states(cli_result)[JobState.CANCELLED] >= 20


def test_a_job_longer_than_max_living_is_killed(cluster, tmp_path):
    effects = tmp_path / "effects"
    effects.mkdir()
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[1], slots=1)
    result = sshmr.run(Fault(), payloads(effects, 1, sleep=30), inventory=str(inv),
                       runs_dir=str(tmp_path / "runs"), max_living=1.5, max_retries=0, **FAST)

    by_job = assert_nothing_lost(result, 0, effects, cluster=cluster)
    (job,) = result.jobs
    assert job.state is JobState.FAILED and job.error == "max_living"
    (attempt,) = by_job[1]
    assert (attempt["state"], attempt["reason"]) == ("FAILED", "max_living")
    ran = attempt["ended"] - attempt["dispatched"]
    print(f"\nmax_living 1.5s: job killed after {ran:.2f}s")
    assert 1.0 < ran < 1.5 + FAST["kill_grace"] + 0.5


def test_workers_retire_at_max_living_and_new_ones_take_over(cluster, tmp_path):
    effects = tmp_path / "effects"
    effects.mkdir()
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[0, 1], slots=1)
    max_living = 1.5
    result = sshmr.run(Fault(), payloads(effects, 64, sleep=0.1), inventory=str(inv),
                       runs_dir=str(tmp_path / "runs"), max_living=max_living, timeout=0.5,
                       max_retries=2, **FAST)

    by_job = assert_nothing_lost(result, 2, effects, cluster=cluster)
    assert result.ok, result
    assert [j.attempts for j in result] == [1] * 64  # no job was cut short by a retirement
    begin = min(j.result["started"] for j in result)
    end = max(j.result["ended"] for j in result)
    assert end - begin > 3.0
    spans = defaultdict(list)
    for j in result:
        spans[j.result["pid"]] += [j.result["started"], j.result["ended"]]
    print(f"\nmax_living {max_living}s: {len(spans)} workers served 64 jobs in "
          f"{end - begin:.2f}s; longest worker span "
          f"{max(max(v) - min(v) for v in spans.values()):.2f}s")
    assert len(spans) >= 4  # each slot needed at least two workers
    assert all(max(v) - min(v) < max_living for v in spans.values())
    assert by_job  # (journal checked above)

