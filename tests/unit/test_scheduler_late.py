"""Late results of attempts given up when their host was lost (``LateResult``), no SSH.

The attempt ended as host_lost; when the host came back its result was found on disk.
First result wins: it is committed unless the job already has one or ended for good, a
waiting retry leaves the queue, a running retry is killed, and a ``max_retries=0`` job is
never launched a second time.
"""

from __future__ import annotations

from test_scheduler import Sim, of, one

from sshmr.engine.scheduler import (
    AttemptEnded,
    AttemptFailed,
    Commit,
    Discard,
    Finished,
    GiveUp,
    HostDown,
    Kill,
    LateResult,
    Launch,
)
from sshmr.jobs import JobState, Reason


def _lost_on_a(sim: Sim, jobs: tuple[int, ...], b_slots: int = 0) -> tuple[Launch, list]:
    """Job 1 runs on host a, which is then lost; returns its launch and the HostDown actions."""
    sim.add(*jobs)
    first = one(sim.up("a", 1), Launch)
    assert first.job_id == 1
    if b_slots:
        sim.up("b", b_slots)
    return first, sim.handle(HostDown("a", "no message from the host"))


def test_a_late_result_of_a_queued_job_is_its_result_and_it_never_runs_again() -> None:
    sim = Sim(("a", "b"), max_retries=2)
    first, out = _lost_on_a(sim, (1,))
    assert one(out, AttemptEnded) == AttemptEnded(first.attempt_id, 1, Reason.HOST_LOST, True)
    assert sim.sched.pending == 1  # no slot anywhere: it waits for its retry
    out = sim.handle(LateResult(first.attempt_id))
    assert out == [Commit(first.attempt_id, 1), Finished("done", "")]
    assert sim.sched.pending == 0 and sim.sched.job_state(1) is JobState.SUCCEEDED
    assert of(sim.up("b", 2), Launch) == []  # a slot comes: nothing left to launch
    assert sim.check([1]) == {1: JobState.SUCCEEDED}


def test_a_late_result_wins_over_the_retry_running_elsewhere() -> None:
    sim = Sim(("a", "b"), max_retries=2)
    first, _ = _lost_on_a(sim, (1,))
    retry = one(sim.up("b", 1), Launch)
    assert (retry.job_id, retry.number, retry.slot[0]) == (1, 2, "b")
    out = sim.handle(LateResult(first.attempt_id))
    assert out == [Commit(first.attempt_id, 1), Kill(retry.attempt_id, retry.slot,
                                                     Reason.SPECULATION)]
    out = sim.handle(AttemptFailed(retry.attempt_id, Reason.SPECULATION, slot_alive=False))
    assert out == [AttemptEnded(retry.attempt_id, 1, Reason.SPECULATION, False),
                   Finished("done", "")]
    assert sim.check([1]) == {1: JobState.SUCCEEDED}


def test_a_late_result_of_a_job_that_has_one_is_discarded() -> None:
    sim = Sim(("a", "b"), max_retries=2)
    first, _ = _lost_on_a(sim, (1, 2))
    launches = of(sim.up("b", 2), Launch)
    for launch in launches:
        sim.ok(launch)
    assert sim.handle(LateResult(first.attempt_id)) == [Discard(first.attempt_id, 1)]
    assert sim.check([1, 2]) == {1: JobState.SUCCEEDED, 2: JobState.SUCCEEDED}


def test_a_late_result_of_a_job_that_failed_for_good_is_discarded() -> None:
    sim = Sim(("a", "b"), max_retries=1)
    first, _ = _lost_on_a(sim, (1,))
    retry = one(sim.up("b", 1), Launch)
    out = sim.fail(retry, Reason.ERROR)
    assert one(out, GiveUp).state is JobState.FAILED
    assert sim.handle(LateResult(first.attempt_id)) == [Discard(first.attempt_id, 1)]
    assert sim.sched.job_state(1) is JobState.FAILED


def test_max_retries_0_an_unknown_job_gets_its_late_result_and_runs_once() -> None:
    sim = Sim(("a", "b"), max_retries=0)
    first, out = _lost_on_a(sim, (1, 2), b_slots=1)
    assert one(out, GiveUp) == GiveUp(1, JobState.UNKNOWN, "outcome unknown: host_lost")
    other = [x for x in of(sim.log, Launch) if x.job_id == 2]
    assert len(other) == 1
    assert sim.handle(LateResult(first.attempt_id)) == [Commit(first.attempt_id, 1)]
    assert sim.sched.job_state(1) is JobState.SUCCEEDED
    assert of(sim.ok(other[0]), Finished) == [Finished("done", "")]
    assert len(sim.launches(1)) == 1  # never launched a second time


def test_a_late_result_counts_once_and_unknown_attempts_are_ignored() -> None:
    sim = Sim(("a", "b"), max_retries=2)
    first, _ = _lost_on_a(sim, (1,))
    assert of(sim.handle(LateResult(first.attempt_id)), Commit) == [Commit(first.attempt_id, 1)]
    assert sim.handle(LateResult(first.attempt_id)) == []  # found twice: still one result
    assert sim.handle(LateResult(999)) == []  # never launched
    assert len(of(sim.log, Commit, Discard)) == 1
