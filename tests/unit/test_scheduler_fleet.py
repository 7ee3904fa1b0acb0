"""Hosts joining and leaving mid-run (``DrainHost``, ``UndrainHost``, ``AddHost``) and the
adaptive timeout (``adaptive=(factor, floor, ceiling)``), on the pure scheduler (no SSH)."""

from __future__ import annotations

from collections import deque

import pytest
from test_scheduler import INF, Sim, of, one

from sshmr.engine.scheduler import (
    AddHost,
    AttemptStarted,
    AttemptSucceeded,
    ConnectHost,
    DrainHost,
    Finished,
    HostDown,
    HostUp,
    JobsAdded,
    Kill,
    Launch,
    RetireSlot,
    SlotDown,
    SlotUp,
    StartSlot,
    TimeoutChanged,
    UndrainHost,
)
from sshmr.jobs import JobState, Reason

# ------------------------------------------------------------------------------ drain


def test_drain_retires_idle_slots_lets_busy_ones_finish_and_sends_nothing_more() -> None:
    sim = Sim(("a", "b"), max_retries=0)
    sim.up("a", 2)
    sim.up("b", 1)
    out = sim.add(1, 2)  # two of the three slots busy
    busy = {launch.slot for launch in of(out, Launch)}
    out = sim.handle(DrainHost("a"))
    retired = {r.slot for r in of(out, RetireSlot)}
    assert retired == {("a", 0), ("a", 1)} - busy  # only the idle ones, at once
    assert of(out, Kill) == []  # running attempts finish
    out = sim.add(*range(3, 13))
    for launch in of(sim.log, Launch):
        if launch.job_id >= 3:
            assert launch.slot[0] == "b", launch
    # the busy slots of a finish their attempts, then retire
    on_a = [launch for launch in of(sim.log, Launch) if launch.slot[0] == "a"]
    queue = deque(of(sim.log, Launch))
    done: set[int] = set()
    while queue:
        launch = queue.popleft()
        if launch.attempt_id in done:
            continue
        done.add(launch.attempt_id)
        out = sim.handle(AttemptSucceeded(launch.attempt_id))
        if launch.slot[0] == "a":
            assert one(out, RetireSlot).slot == launch.slot
        assert all(a.slot[0] == "b" for a in of(out, Launch))
        queue.extend(of(out, Launch))
    states = sim.check(range(1, 13))
    assert set(states.values()) == {JobState.SUCCEEDED}
    assert on_a and all(len(sim.launches(j)) == 1 for j in range(1, 13))


def test_a_drained_host_gets_no_prefetch_and_its_queued_attempts_still_run() -> None:
    sim = Sim(("a",), max_retries=2, prefetch=1, prefetch_below=None)
    sim.up("a", 1)
    out = sim.add(1, 2, 3)
    first, queued = of(out, Launch)  # one running, one prefetched behind it
    assert first.slot == queued.slot == ("a", 0)
    sim.handle(DrainHost("a"))
    out = sim.ok(first)
    assert of(out, Launch, RetireSlot) == []  # the queued one runs now; nothing new
    out = sim.ok(queued)
    assert one(out, RetireSlot).slot == ("a", 0)
    assert sim.sched.pending == 1  # job 3 waits for a host


def test_a_worker_coming_up_on_a_drained_host_retires_and_a_reconnect_starts_none() -> None:
    sim = Sim(("a", "b"))
    sim.handle(HostUp("a", 2))  # StartSlot sent; workers not up yet
    sim.handle(DrainHost("a"))
    out = sim.slots_up(("a", 0))
    assert one(out, RetireSlot).slot == ("a", 0)
    sim.handle(HostDown("a", "lost"))
    out = sim.handle(HostUp("a", 2))
    assert of(out, StartSlot) == []


def test_undrain_starts_the_slots_again_once_their_workers_are_gone() -> None:
    sim = Sim(("a",))
    sim.up("a", 2)
    out = sim.handle(DrainHost("a"))
    assert len(of(out, RetireSlot)) == 2
    out = sim.handle(UndrainHost("a"))
    assert of(out, StartSlot) == []  # the retiring workers are not gone yet
    out = sim.handle(SlotDown(("a", 0), "retired"))
    assert one(out, StartSlot).slot == ("a", 0)
    sim.slots_up(("a", 0))
    out = sim.add(1)
    assert one(out, Launch).slot == ("a", 0)


def test_a_drained_hosts_retired_slot_going_down_is_not_restarted() -> None:
    sim = Sim(("a", "b"))
    sim.up("a", 1)
    sim.up("b", 1)
    sim.handle(DrainHost("a"))
    out = sim.handle(SlotDown(("a", 0), "retired"))
    assert of(out, StartSlot) == []


@pytest.mark.parametrize("seed", range(6))
def test_max_retries_0_with_drains_and_undrains_never_runs_a_job_twice(seed: int) -> None:
    """Drains, undrains and host losses while jobs run: every job ends once, none twice."""
    import random

    rng = random.Random(seed)
    sim = Sim(("a", "b", "c"), max_retries=0, seed=seed)
    for h in ("a", "b", "c"):
        sim.up(h, 2)
    sim.add(*range(1, 41))
    running: dict[int, Launch] = {a.attempt_id: a for a in of(sim.log, Launch)}
    t = 0.0
    while running or sim.sched.pending:
        t += 1.0
        roll = rng.random()
        host = rng.choice("abc")
        if roll < 0.1:
            out = sim.handle(DrainHost(host), now=t)
        elif roll < 0.2:
            out = sim.handle(UndrainHost(host), now=t)
        elif running:
            attempt = rng.choice(list(running))
            out = sim.handle(AttemptSucceeded(attempt), now=t)
            del running[attempt]
        else:  # everything drained: undrain one
            out = sim.handle(UndrainHost(host), now=t)
        for r in of(out, RetireSlot):  # the agent retires the worker
            out += sim.handle(SlotDown(r.slot, "retired"), now=t)
        for s in of(out, StartSlot):
            out += sim.handle(SlotUp(s.slot, INF), now=t)
        running.update({a.attempt_id: a for a in of(sim.log, Launch)
                        if a.attempt_id not in running and sim.sched._attempts.get(a.attempt_id)})
        for a in of(out, Launch):
            assert not sim.sched.is_drained(a.slot[0]), a
    states = sim.check(range(1, 41))
    assert set(states.values()) == {JobState.SUCCEEDED}


# -------------------------------------------------------------------------------- add


def test_an_added_host_is_connected_and_takes_jobs_once_up() -> None:
    sim = Sim(("a",))
    sim.up("a", 1)
    out = sim.add(1, 2, 3)
    out = sim.handle(AddHost("z"))
    assert of(out, ConnectHost) == [ConnectHost("z")]
    sim.up("z", 2)
    assert {a.slot[0] for a in of(sim.log, Launch)} == {"a", "z"}
    assert sim.handle(AddHost("z")) == []  # known already: nothing


def test_adding_a_drained_host_undrains_it() -> None:
    sim = Sim(("a",))
    sim.up("a", 1)
    sim.handle(DrainHost("a"))
    sim.handle(SlotDown(("a", 0), "retired"))
    out = sim.handle(AddHost("a"))
    assert of(out, ConnectHost) == []
    assert one(out, StartSlot).slot == ("a", 0)


# ------------------------------------------------------------------- adaptive timeout


def _run_jobs(sim: Sim, durations: list[float], start: float = 0.0) -> float:
    """Run one job per duration on slot a/0, one after the other; return the clock."""
    t = start
    for i, d in enumerate(durations):
        launch = one(sim.add(1000 + i + int(start)), Launch)
        sim.handle(AttemptStarted(launch.attempt_id), now=t)
        t += d
        sim.handle(AttemptSucceeded(launch.attempt_id), now=t)
    return t


@pytest.mark.parametrize("durations, expected", [
    ([1.0] * 4, 100.0),  # fewer than 5 successes: the ceiling
    ([1.0] * 5, 10.0),  # 3 x 1 s is below the floor
    ([10.0] * 5, 30.0),  # 3 x the median
    ([10.0, 10.0, 10.0, 1.0, 1.0, 50.0], 30.0),  # the median, not the mean
    ([60.0] * 5, 100.0),  # 3 x 60 s is above the ceiling
])
def test_adaptive_timeout_is_factor_times_the_median_within_floor_and_ceiling(
        durations: list[float], expected: float) -> None:
    sim = Sim(("a",), adaptive=(3.0, 10.0, 100.0), max_retries=1)
    sim.up("a", 1)
    _run_jobs(sim, durations)
    launch = one(sim.add(1), Launch)
    assert launch.timeout == pytest.approx(expected)
    changes = of(sim.log, TimeoutChanged)
    assert (changes[-1].seconds if changes else 100.0) == pytest.approx(expected)


def test_adaptive_timeout_kills_a_hung_attempt_at_its_own_timeout() -> None:
    sim = Sim(("a",), adaptive=(3.0, 1.0, 100.0), max_retries=1, deadline_grace=0.5)
    sim.up("a", 1)
    t = _run_jobs(sim, [2.0] * 5)
    hung = one(sim.add(1), Launch)
    assert hung.timeout == pytest.approx(6.0)
    sim.handle(AttemptStarted(hung.attempt_id), now=t)
    assert of(sim.tick(t + 6.4), Kill) == []
    kill = one(sim.tick(t + 6.6), Kill)
    assert (kill.attempt_id, kill.reason) == (hung.attempt_id, Reason.TIMEOUT)


def test_an_attempt_keeps_the_timeout_it_was_launched_with() -> None:
    sim = Sim(("a", "b"), adaptive=(3.0, 1.0, 100.0), deadline_grace=0.0)
    sim.up("a", 1)
    long = one(sim.add(1), Launch)  # launched under the ceiling
    sim.handle(AttemptStarted(long.attempt_id), now=0.0)
    sim.up("b", 1)
    t = 0.0
    for i in range(5):
        launch = one(sim.add(10 + i), Launch)
        sim.handle(AttemptStarted(launch.attempt_id), now=t)
        t += 1.0
        sim.handle(AttemptSucceeded(launch.attempt_id), now=t)
    assert sim.sched.current_timeout() == pytest.approx(3.0)
    assert of(sim.tick(50.0), Kill) == []  # still under its 100 s
    assert one(sim.tick(100.5), Kill).attempt_id == long.attempt_id


def test_a_small_drift_is_not_journaled_every_time() -> None:
    sim = Sim(("a",), adaptive=(3.0, 1.0, 1000.0))
    sim.up("a", 1)
    _run_jobs(sim, [10.0] * 5 + [10.1, 10.2, 10.1, 10.0] * 5)
    assert len(of(sim.log, TimeoutChanged)) == 1


def test_a_new_phase_reopens_the_finished_run_on_the_same_slots_and_forgets_runtimes() -> None:
    """MapReduce: the reduce phase is added once the map phase finished; it runs on the
    slots already up (no new HostUp), under the ceiling again (map runtimes say nothing of
    reduce tasks), and the run finishes a second time when it is done."""
    sim = Sim(("a",), adaptive=(3.0, 1.0, 100.0), max_retries=1)
    sim.up("a", 1)
    launch, t = one(sim.add(1, 2, 3, 4, 5), Launch), 0.0  # the map phase: five 1 s tasks
    while launch is not None:
        assert of(sim.log, Finished) == []
        sim.handle(AttemptStarted(launch.attempt_id), now=t)
        t += 1.0
        launch = next(iter(of(sim.handle(AttemptSucceeded(launch.attempt_id), now=t), Launch)),
                      None)
    assert one(sim.log, Finished) == Finished("done", "")
    assert sim.sched.current_timeout() == pytest.approx(3.0)
    out = sim.handle(JobsAdded((6, 7), new_phase=True))
    assert of(out, TimeoutChanged) == [TimeoutChanged(100.0, None)]
    first = one(out, Launch)
    assert (first.job_id, first.slot, first.timeout) == (6, ("a", 0), pytest.approx(100.0))
    second = one(sim.ok(first), Launch)
    assert of(sim.log, Finished) == [Finished("done", "")], "finished before the phase ended"
    assert sim.ok(second)[-1] == Finished("done", "")
    assert len(of(sim.log, Finished)) == 2
