"""Timeouts: a job past its deadline is killed (with everything it started) and retried."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from checks import FAST, assert_nothing_lost, host_index, launches, survivors  # noqa: E402
from helpers import write_inventory  # noqa: E402
from jobs_faults import Fault  # noqa: E402

import sshmr  # noqa: E402
from sshmr import JobState  # noqa: E402

TIMEOUT = 1.0


def _late(attempt) -> float:
    """Seconds from the attempt's deadline (launch + timeout) to the end the master saw."""
    return attempt["ended"] - (attempt["dispatched"] + TIMEOUT)


def test_timed_out_job_is_killed_and_retried_on_another_host(cluster, tmp_path):
    effects = tmp_path / "effects"
    effects.mkdir()
    inv = write_inventory(cluster, tmp_path / "inv.yaml", slots=1)
    workdirs = [h.workdir for h in cluster.hosts]
    items = [
        # hangs on its first launch only; the barrier makes sure every host is up by then
        {"k": "hang-once", "d": str(effects), "first_sleep": 30, "sleep": 0.05,
         "barrier": workdirs},
        # hangs every time: FAILED once its retries are used up
        {"k": "hang-always", "d": str(effects), "sleep": 30},
    ]
    result = sshmr.run(Fault(), items, inventory=str(inv), runs_dir=str(tmp_path / "runs"),
                       timeout=TIMEOUT, max_retries=1, seed=3, **FAST)

    by_job = assert_nothing_lost(result, 1, effects, cluster=cluster)
    once, always = result.jobs
    assert once.state is JobState.SUCCEEDED and once.result["n"] == 2
    first, second = by_job[1]
    assert (first["state"], first["reason"]) == ("FAILED", "timeout")
    assert second["state"] == "SUCCEEDED"
    assert second["host"] != first["host"], "the retry should avoid the host that timed out"
    assert always.state is JobState.FAILED and always.attempts == 2
    assert [(a["state"], a["reason"]) for a in by_job[2]] == [("FAILED", "timeout")] * 2
    assert always.error == "timeout"
    late = [_late(a) for a in (first, *by_job[2])]
    print(f"\ntimeout -> attempt ended (plain sleep, SIGTERM): "
          f"{', '.join(f'{x * 1000:.0f} ms' for x in late)}")
    assert all(-0.05 < x < 0.5 for x in late), late  # SIGTERM ends a sleeping job at once
    retried_at = second["dispatched"] - first["ended"]
    print(f"timed-out job relaunched {retried_at * 1000:.0f} ms after the kill was reported")
    assert retried_at < 0.5


def test_timeout_kills_term_ignoring_workers_children_and_grandchildren(cluster, tmp_path):
    effects = tmp_path / "effects"
    effects.mkdir()
    inv = write_inventory(cluster, tmp_path / "inv.yaml", slots=1)
    common = {"d": str(effects), "first_sleep": 30, "sleep": 0.05}
    items = [
        dict(common, k="ignores-term", ignore_term=True),  # the worker itself ignores TERM
        dict(common, k="term-child", term_child=True),  # a child of the job ignores TERM
        dict(common, k="grandchild", grandchild=True),  # double fork + setsid: own session
    ]
    result = sshmr.run(Fault(), items, inventory=str(inv), runs_dir=str(tmp_path / "runs"),
                       timeout=TIMEOUT, max_retries=1, seed=5, **FAST)

    by_job = assert_nothing_lost(result, 1, effects, cluster=cluster)
    assert [j.state for j in result] == [JobState.SUCCEEDED] * 3, result
    assert [j.result["n"] for j in result] == [2, 2, 2]
    recorded = launches(effects)
    lines = []
    for job, key in zip(result, ("ignores-term", "term-child", "grandchild"), strict=True):
        first = by_job[job.job][0]
        assert (first["state"], first["reason"]) == ("FAILED", "timeout"), dict(first)
        late = _late(first)
        lines.append(f"{key} {late * 1000:.0f} ms")
        # the agent escalates to SIGKILL after kill_grace; the master's own deadline
        # (timeout + kill_grace + host_silence) must never be what ended the attempt
        assert late < FAST["kill_grace"] + 0.5, (key, late)
        assert host_index(recorded[key][0][2]) >= 0
    print("\ntimeout -> attempt ended: " + ", ".join(lines))
    # nothing the timed-out jobs started is still running
    assert len(list(effects.glob("*.pids"))) == 2
    assert survivors(effects) == []


def test_adaptive_timeout_kills_a_hung_job_at_about_three_times_the_median(cluster, tmp_path):
    """``timeout="300%:1s:30s"``: the hung job (started after 7 others succeeded) is killed
    at about 3x their median runtime, far below the 30 s ceiling."""
    import statistics

    from checks import events_of

    effects = tmp_path / "effects"
    effects.mkdir()
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[0], slots=2)
    items = [{"k": f"quick{i}", "d": str(effects), "sleep": 1.0} for i in range(8)]
    items.append({"k": "hung", "d": str(effects), "sleep": 60})
    result = sshmr.run(Fault(), items, inventory=str(inv), runs_dir=str(tmp_path / "runs"),
                       timeout="300%:1s:30s", max_retries=0, **FAST)

    by_job = assert_nothing_lost(result, 0, effects, cluster=cluster)
    assert [j.state for j in result.jobs] == [JobState.SUCCEEDED] * 8 + [JobState.FAILED]
    (hung,) = by_job[9]
    assert hung["reason"] == "timeout"
    ok = [a["ended"] - a["started"] for rows in list(by_job.values())[:8] for a in rows]
    median = statistics.median(ok)
    ran = hung["ended"] - hung["started"]
    changes = [e["message"] for e in events_of(result.run_dir, "timeout")]
    print(f"\nmedian {median:.2f}s; hung job killed after {ran:.2f}s; timeouts: {changes}")
    assert changes[0].startswith("30.000s") and len(changes) >= 2  # the ceiling, then 3x
    assert 2.0 * median < ran < 3.0 * median + 3.0, (median, ran)
