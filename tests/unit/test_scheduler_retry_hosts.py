"""A retried job goes to a host it has not failed on, no SSH.

A host that fails its jobs fast frees its slots first; if a retry took whichever slot was
free, such a host would take retry after retry of the same job and fail it for good while
healthy hosts were only busy (CI: a job failed four times on one bad host of three). A
retry waits for a slot of a host it has not failed on while one is up, and takes any slot
when every up host has failed it.
"""

from __future__ import annotations

import pytest
from test_scheduler import Sim, of, one

from sshmr.engine.scheduler import HostDown, Launch, QuarantineHost
from sshmr.engine.scheduler.dispatch import WAIT_SCAN
from sshmr.jobs import JobState, Reason


def _busy_b_and_a_failing(sim: Sim, jobs: tuple[int, ...]) -> tuple[Launch, Launch]:
    """Job 1 runs on a, job 2 on b; job 1 fails on a. Returns (a's launch, b's launch)."""
    sim.add(*jobs)
    on_a = one(sim.up("a", 1), Launch)
    on_b = one(sim.up("b", 1), Launch)
    assert (on_a.job_id, on_b.job_id) == (1, 2)
    return on_a, on_b


def test_a_retry_waits_for_a_host_it_has_not_failed_on() -> None:
    sim = Sim(("a", "b"), max_retries=3)
    on_a, on_b = _busy_b_and_a_failing(sim, (1, 2))
    assert of(sim.fail(on_a), Launch) == []  # a's slot is free, but job 1 failed there
    out = sim.ok(on_b)  # b's slot frees: the retry goes there
    assert one(out, Launch).job_id == 1 and one(out, Launch).slot == ("b", 0)
    sim.ok(one(out, Launch))
    assert sim.check([1, 2]) == {1: JobState.SUCCEEDED, 2: JobState.SUCCEEDED}


def test_jobs_behind_a_waiting_retry_take_the_free_slot() -> None:
    sim = Sim(("a", "b"), max_retries=3)
    on_a, on_b = _busy_b_and_a_failing(sim, (1, 2, 3))
    out = sim.fail(on_a)
    assert one(out, Launch).job_id == 3 and one(out, Launch).slot == ("a", 0)
    assert sim.sched.pending == 1  # job 1 keeps its place at the front
    retry = one(sim.ok(on_b), Launch)
    assert retry.job_id == 1 and retry.slot == ("b", 0)


def test_a_retry_takes_a_host_it_failed_on_when_every_up_host_failed_it() -> None:
    sim = Sim(("a", "b"), max_retries=3)
    on_a, on_b = _busy_b_and_a_failing(sim, (1, 2))
    sim.fail(on_a)
    out = sim.handle(HostDown("b", "lost", fatal=True))  # b is gone: a is all there is
    job_2 = one(out, Launch)  # lost on b, retried first (to the front), on a
    assert job_2.job_id == 2 and job_2.slot == ("a", 0)
    retry = one(sim.ok(job_2), Launch)
    assert retry.job_id == 1 and retry.slot == ("a", 0) and retry.number == 2
    third = one(sim.fail(retry), Launch)
    assert third.job_id == 1 and third.slot == ("a", 0) and third.number == 3


def test_a_retry_does_not_wait_for_a_quarantined_host() -> None:
    sim = Sim(("a", "b"), max_retries=3, quarantine_after=1)
    on_a, on_b = _busy_b_and_a_failing(sim, (1, 2))
    sim.fail(on_a)
    out = sim.fail(on_b, Reason.WORKER_DIED, slot_alive=False)  # b: quarantined, job 2 retried
    assert one(out, QuarantineHost).host == "b"
    assert {x.job_id for x in of(out, Launch)} <= {1, 2}
    assert of(out, Launch) and all(x.slot == ("a", 0) for x in of(out, Launch))


@pytest.mark.parametrize("seed", range(5))
def test_a_host_that_fails_everything_fast_does_not_fail_jobs_for_good(seed: int) -> None:
    """Three hosts, one fails every attempt at once; the others are slow: every job ends
    succeeded, having failed at most once (on the bad host)."""
    sim = Sim(("bad", "g1", "g2"), max_retries=1, seed=seed)
    jobs = tuple(range(1, 31))
    sim.add(*jobs)
    running = []
    for host in ("bad", "g1", "g2"):
        running += of(sim.up(host, 2), Launch)
    while running:
        launch = running.pop(0)
        if launch.slot[0] == "bad":
            running += of(sim.fail(launch), Launch)
        else:
            running += of(sim.ok(launch), Launch)
    states = sim.check(jobs)
    assert set(states.values()) == {JobState.SUCCEEDED}
    for job_id in jobs:
        assert [x.slot[0] == "bad" for x in sim.launches(job_id)].count(True) <= 1


def test_the_scan_for_a_job_that_may_go_is_bounded() -> None:
    """More retries wait than dispatch looks past: the job behind them waits too, and they
    all keep their order at the front of the queue."""
    n = WAIT_SCAN + 5
    sim = Sim(("a", "b"), max_retries=3)
    sim.add(*range(1, n + 3))  # n jobs on a, one on b, one left over
    first = of(sim.up("a", n), Launch)
    on_b = one(sim.up("b", 1), Launch)
    for launch in first:  # every job on a fails: a's n slots are free
        assert of(sim.fail(launch), Launch) == [] or launch is first[0]
    assert sim.sched.pending == n  # the left-over job went to a at the first failure
    assert of(sim.add(n + 3), Launch) == []  # behind more than WAIT_SCAN waiting retries
    retry = one(sim.ok(on_b), Launch)
    assert retry.slot == ("b", 0) and retry.job_id == first[-1].job_id  # retried last: first
