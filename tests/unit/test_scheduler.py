"""Unit tests for sshmr.scheduler: a pure state machine, driven by hand (no threads, no I/O).

``Sim`` wraps a ``Scheduler`` with a fake clock and a log of every action it returned;
``World`` (at the bottom) plays the master and the host agents for seeded random runs that
check the invariants: every job ends in exactly one final state, at most one Commit per
job, and at most ``1 + max_retries`` launches per job.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict, deque

import pytest

from sshmr.engine.scheduler import (
    AttemptEnded,
    AttemptFailed,
    AttemptStarted,
    AttemptSucceeded,
    CancelRequested,
    Commit,
    Discard,
    Finished,
    GiveUp,
    HostDown,
    HostUp,
    JobsAdded,
    Kill,
    Launch,
    QuarantineHost,
    ReconnectHost,
    RetireSlot,
    Scheduler,
    SlotDown,
    SlotUp,
    StartSlot,
    Tick,
)
from sshmr.jobs import JobState, Reason

INF = float("inf")
FINAL = (JobState.SUCCEEDED, JobState.FAILED, JobState.UNKNOWN, JobState.CANCELLED)


# --------------------------------------------------------------------------- harness


def of(actions: list, *types: type) -> list:
    """The actions of the given types, in order."""
    return [a for a in actions if isinstance(a, types)]


def one(actions: list, kind: type):
    found = of(actions, kind)
    assert len(found) == 1, f"expected exactly one {kind.__name__} in {actions}"
    return found[0]


class Sim:
    """A scheduler, a clock and the log of every action it returned."""

    def __init__(self, hosts=("a", "b"), **options) -> None:
        options.setdefault("seed", 0)
        self.sched = Scheduler(hosts, **options)
        self.max_retries = self.sched.max_retries
        self.now = 0.0
        self.log: list = []

    def handle(self, *events, now: float | None = None) -> list:
        if now is not None:
            self.now = now
        out = self.sched.handle(self.now, *events)
        self.log.extend(out)
        return out

    def add(self, *job_ids: int) -> list:
        return self.handle(JobsAdded(tuple(job_ids)))

    def up(self, host: str, slots: int, expires_at: float = INF) -> list:
        """HostUp, check the StartSlots, then SlotUp every slot. All actions returned."""
        out = self.handle(HostUp(host, slots))
        assert [a.slot for a in of(out, StartSlot)] == [(host, i) for i in range(slots)]
        return out + self.slots_up(*[(host, i) for i in range(slots)], expires_at=expires_at)

    def slots_up(self, *slots, expires_at: float = INF) -> list:
        return self.handle(*(SlotUp(slot, expires_at) for slot in slots))

    def ok(self, launch: Launch) -> list:
        return self.handle(AttemptSucceeded(launch.attempt_id))

    def fail(self, launch: Launch, reason: Reason = Reason.ERROR, slot_alive: bool = True) -> list:
        return self.handle(AttemptFailed(launch.attempt_id, reason, slot_alive))

    def tick(self, now: float) -> list:
        return self.handle(Tick(), now=now)

    # ---- what the log says

    def launches(self, job_id: int | None = None) -> list[Launch]:
        return [a for a in of(self.log, Launch) if job_id is None or a.job_id == job_id]

    def finals(self) -> dict[int, list[JobState]]:
        """job -> the final states the actions gave it (exactly one is expected)."""
        out: dict[int, list[JobState]] = defaultdict(list)
        for action in of(self.log, Commit, GiveUp):
            out[action.job_id].append(
                JobState.SUCCEEDED if isinstance(action, Commit) else action.state)
        return out

    def check(self, job_ids) -> dict[int, JobState]:
        """The invariants; returns job -> final state."""
        finals = self.finals()
        assert set(finals) <= set(job_ids)
        states = {}
        for job_id in job_ids:
            assert len(finals[job_id]) == 1, (job_id, finals[job_id])
            states[job_id] = finals[job_id][0]
            assert states[job_id] in FINAL
            assert self.sched.job_state(job_id) is states[job_id]
            launches = self.launches(job_id)
            assert len(launches) <= 1 + self.max_retries, (job_id, launches)
            assert [a.number for a in launches] == list(range(1, len(launches) + 1))
            if self.max_retries > 0:
                assert states[job_id] is not JobState.UNKNOWN
        commits = Counter(a.job_id for a in of(self.log, Commit))
        assert max(commits.values(), default=0) <= 1
        launched = {a.attempt_id: a.job_id for a in of(self.log, Launch)}
        for action in of(self.log, Commit, Discard, AttemptEnded):
            assert launched[action.attempt_id] == action.job_id
        finished = of(self.log, Finished)
        assert len(finished) == 1, finished
        after = self.log[self.log.index(finished[0]):]
        assert of(after, Launch, Commit) == [], "launched or committed after the end"
        assert self.sched.running == 0 and self.sched.pending == 0
        return states


def run_out(sim: Sim, actions: list, outcome=None) -> None:
    """Answer every Launch (and those that follow) with ``outcome(launch)`` (default: ok)."""
    queue = deque(of(actions, Launch))
    while queue:
        launch = queue.popleft()
        event = outcome(launch) if outcome else AttemptSucceeded(launch.attempt_id)
        queue.extend(of(sim.handle(event), Launch))


# ------------------------------------------------------------------------ happy path


def test_all_succeed_one_launch_and_one_commit_per_job_then_done_once() -> None:
    sim = Sim(("a", "b"))
    assert sim.add(*range(1, 11)) == []  # no host yet: nothing to do, and not finished
    first = of(sim.up("a", 2) + sim.up("b", 2), Launch)
    assert len(first) == 4 and len({a.slot for a in first}) == 4
    assert sim.sched.running == 4 and sim.sched.pending == 6
    queue = deque(first)
    while queue:
        assert not of(sim.log, Finished), "finished before the last job"
        out = sim.ok(queue.popleft())
        queue.extend(of(out, Launch))
    assert sim.log[-1] == Finished("done", "")
    states = sim.check(range(1, 11))
    assert set(states.values()) == {JobState.SUCCEEDED}
    assert Counter(a.job_id for a in sim.launches()) == {j: 1 for j in range(1, 11)}
    assert all(a.number == 1 for a in sim.launches())
    assert {c.attempt_id for c in of(sim.log, Commit)} == {a.attempt_id for a in sim.launches()}
    assert of(sim.log, AttemptEnded, GiveUp, Kill, Discard) == []


def test_no_jobs_finishes_done() -> None:
    sim = Sim(("a",))
    sim.up("a", 1)
    assert sim.add() == [Finished("done", "")]


def test_jobs_wait_for_slots_and_attempt_started_changes_nothing() -> None:
    sim = Sim(("a",))
    sim.add(1, 2)
    out = sim.handle(HostUp("a", 1))
    assert out == [StartSlot(("a", 0))]  # no Launch before the slot is up
    launch = one(sim.slots_up(("a", 0)), Launch)
    assert launch.job_id == 1 and launch.number == 1
    assert sim.handle(AttemptStarted(launch.attempt_id)) == []
    assert one(sim.ok(launch), Launch).job_id == 2


def test_negative_max_retries_is_rejected() -> None:
    with pytest.raises(ValueError):
        Scheduler(["a"], max_retries=-1)


# ------------------------------------------------------------------ random placement


def first_wave(seed: int) -> dict[int, tuple[str, int]]:
    sim = Sim(("a", "b", "c"), seed=seed)
    sim.add(*range(1, 13))
    out = sim.up("a", 4) + sim.up("b", 4) + sim.up("c", 4)
    return {a.job_id: a.slot for a in of(out, Launch)}


def one_at_a_time(seed: int, n: int = 60) -> list[tuple[str, int]]:
    """Slots chosen for ``n`` jobs run one after the other while 5 of 6 slots are free."""
    sim = Sim(("a", "b", "c"), seed=seed)
    sim.add(0)  # holds one slot, and keeps the run from finishing
    blocker = one(sim.up("a", 2) + sim.up("b", 2) + sim.up("c", 2), Launch)
    slots = []
    for job_id in range(1, n + 1):
        launch = one(sim.add(job_id), Launch)
        slots.append(launch.slot)
        assert sim.ok(launch) == [Commit(launch.attempt_id, job_id)]
    assert sim.ok(blocker)[-1] == Finished("done", "")
    return slots


def test_assignment_is_reproducible_with_a_seed() -> None:
    assert first_wave(7) == first_wave(7)
    assert one_at_a_time(7) == one_at_a_time(7)


def test_assignment_uses_every_slot_and_differs_between_seeds() -> None:
    wave = first_wave(1)
    assert len(set(wave.values())) == 12  # 12 jobs, 12 slots: one each
    assert len({first_wave(seed)[1] for seed in range(20)}) > 1
    assert len({tuple(first_wave(seed).values()) for seed in range(5)}) == 5
    sequence = one_at_a_time(1)
    counts = Counter(sequence)
    assert len(counts) == 5  # every free slot was used ...
    assert len({host for host, _ in sequence}) == 3  # ... on every host
    assert max(counts.values()) < 25  # and not one slot taking nearly all of them
    assert one_at_a_time(2) != sequence


# ---------------------------------------------------------------------------- retries


@pytest.mark.parametrize("max_retries", [1, 2, 3, 5])
def test_error_is_retried_max_retries_times_then_failed(max_retries: int) -> None:
    sim = Sim(("a",), max_retries=max_retries)
    sim.add(1, 2)
    run_out(sim, sim.up("a", 1),
            lambda a: AttemptFailed(a.attempt_id, Reason.ERROR, True) if a.job_id == 1
            else AttemptSucceeded(a.attempt_id))
    launches = sim.launches(1)
    assert len(launches) == 1 + max_retries
    assert [a.number for a in launches] == list(range(1, max_retries + 2))
    assert {a.slot for a in sim.launches()} == {("a", 0)}  # the slot stayed usable
    ended = [e for e in of(sim.log, AttemptEnded) if e.job_id == 1]
    assert [e.retry for e in ended] == [True] * max_retries + [False]
    assert {e.reason for e in ended} == {Reason.ERROR}
    give_up = one(sim.log, GiveUp)
    assert give_up.job_id == 1 and give_up.state is JobState.FAILED
    assert f"{1 + max_retries} attempt(s)" in give_up.reason
    assert sim.check([1, 2]) == {1: JobState.FAILED, 2: JobState.SUCCEEDED}
    assert sim.sched.failed_jobs == 1
    assert sim.log[-1] == Finished("done", "")


def test_error_then_success_commits_the_retry() -> None:
    sim = Sim(("a", "b"), max_retries=2)
    sim.add(1)
    first = one(sim.up("a", 1) + sim.up("b", 1), Launch)
    out = sim.fail(first)
    assert one(out, AttemptEnded) == AttemptEnded(first.attempt_id, 1, Reason.ERROR, True)
    second = one(out, Launch)
    assert second.number == 2 and second.slot[0] != first.slot[0]  # prefers another host
    assert sim.ok(second) == [Commit(second.attempt_id, 1), Finished("done", "")]
    assert sim.check([1]) == {1: JobState.SUCCEEDED}


def _error(sim, launch):
    return sim.fail(launch, Reason.ERROR)


def _corrupt(sim, launch):
    return sim.fail(launch, Reason.CORRUPT)


def _timeout(sim, launch):
    return sim.tick(sim.now + 10 + 5)


def _host_lost(sim, launch):
    return sim.handle(HostDown(launch.slot[0], "eof"))


def _slot_down(sim, launch):
    return sim.handle(SlotDown(launch.slot, "worker_died"))


def _worker_died(sim, launch):
    return (sim.fail(launch, Reason.WORKER_DIED, slot_alive=False)
            + sim.handle(SlotDown(launch.slot, "worker_died")))


@pytest.mark.parametrize("failure, state, killed", [
    (_error, JobState.FAILED, False),
    (_corrupt, JobState.FAILED, False),
    (_timeout, JobState.FAILED, True),
    (_host_lost, JobState.UNKNOWN, False),
    (_slot_down, JobState.UNKNOWN, False),
    (_worker_died, JobState.UNKNOWN, False),
])
def test_max_retries_0_never_launches_a_job_twice(failure, state, killed) -> None:
    sim = Sim(("a", "b"), max_retries=0, timeout=10, deadline_grace=5)
    sim.add(1)
    launch = one(sim.up("a", 2) + sim.up("b", 2), Launch)
    out = failure(sim, launch)
    assert one(out, AttemptEnded).retry is False
    give_up = one(out, GiveUp)
    assert (give_up.job_id, give_up.state) == (1, state)
    if state is JobState.UNKNOWN:
        assert give_up.reason.startswith("outcome unknown")
    if killed:
        assert one(out, Kill) == Kill(launch.attempt_id, launch.slot, Reason.TIMEOUT)
    else:
        assert of(out, Kill) == []
    # whatever happens next, the job is not launched again
    if of(out, ReconnectHost):
        sim.up(launch.slot[0], 2)
    else:  # the slot's worker is replaced (if it was not already)
        sim.handle(SlotDown(launch.slot, "retired"))
        sim.slots_up(launch.slot)
    sim.tick(sim.now + 1000)
    sim.handle(AttemptFailed(launch.attempt_id, Reason.ERROR, True))
    assert sim.launches() == [launch]
    assert sim.check([1]) == {1: state}


# --------------------------------------------------------------------------- timeouts


@pytest.mark.parametrize("seed", range(8))
def test_timeout_kills_at_the_deadline_and_retries_on_another_host(seed: int) -> None:
    sim = Sim(("a", "b"), seed=seed, timeout=10, deadline_grace=5, max_retries=1)
    sim.now = 100.0
    sim.add(1)
    first = one(sim.up("a", 2) + sim.up("b", 2), Launch)
    assert sim.sched.next_deadline() == 115.0
    assert sim.tick(101) == []
    assert sim.tick(114.99) == []
    out = sim.tick(115.0)
    assert out[0] == Kill(first.attempt_id, first.slot, Reason.TIMEOUT)
    assert one(out, AttemptEnded) == AttemptEnded(first.attempt_id, 1, Reason.TIMEOUT, True)
    second = one(out, Launch)
    assert second.number == 2
    assert second.slot[0] != first.slot[0]  # a free slot on the other host is preferred
    assert sim.sched.next_deadline() == 130.0
    out = sim.tick(131)  # the retry times out too: no retries left
    assert one(out, Kill).attempt_id == second.attempt_id and of(out, Launch) == []
    assert one(out, GiveUp).state is JobState.FAILED
    assert sim.check([1]) == {1: JobState.FAILED}


def test_no_timeout_means_no_deadline() -> None:
    sim = Sim(("a",), timeout=None)
    sim.add(1)
    sim.up("a", 1)
    assert sim.sched.next_deadline() is None
    assert sim.tick(1e9) == []


@pytest.mark.parametrize("timeout,limit,deadline,reason", [
    (None, 60.0, 165.0, Reason.MAX_LIVING),  # no timeout: the worker's max_living bounds it
    (10.0, 60.0, 115.0, Reason.TIMEOUT),  # a timeout comes first
    (None, None, None, None),  # neither: no deadline
])
def test_an_attempt_without_a_timeout_ends_at_the_attempt_limit(timeout, limit, deadline,
                                                                reason) -> None:
    """A host that ignores max_living (a hostile one) cannot hold a job forever."""
    sim = Sim(("a", "b"), timeout=timeout, attempt_limit=limit, deadline_grace=5,
              max_retries=1)
    sim.now = 100.0
    sim.add(1)
    first = one(sim.up("a", 1) + sim.up("b", 1), Launch)
    sim.handle(AttemptStarted(first.attempt_id))
    assert sim.sched.next_deadline() == deadline
    if deadline is None:
        assert sim.tick(1e9) == []
        return
    assert sim.tick(deadline - 0.01) == []
    out = sim.tick(deadline)
    assert out[0] == Kill(first.attempt_id, first.slot, reason)
    assert one(out, AttemptEnded) == AttemptEnded(first.attempt_id, 1, reason, True)
    assert one(out, Launch).slot[0] == "b"


def test_timed_out_slot_is_not_reused_until_its_worker_is_back() -> None:
    sim = Sim(("a",), timeout=10, deadline_grace=0, max_retries=1)
    sim.add(1)
    first = one(sim.up("a", 1), Launch)
    out = sim.tick(10)
    assert of(out, Kill) and of(out, Launch) == []  # the only slot is being killed
    assert sim.handle(SlotDown(("a", 0), "timeout")) == [StartSlot(("a", 0))]
    second = one(sim.slots_up(("a", 0)), Launch)
    assert second.number == 2 and second.attempt_id != first.attempt_id


def test_late_success_of_a_timed_out_attempt_is_discarded() -> None:
    sim = Sim(("a", "b"), timeout=10, deadline_grace=0, max_retries=1)
    sim.add(1)
    first = one(sim.up("a", 1) + sim.up("b", 1), Launch)
    second = one(sim.tick(10), Launch)
    assert sim.ok(second) == [Commit(second.attempt_id, 1), Finished("done", "")]
    assert sim.ok(first) == [Discard(first.attempt_id, 1)]  # never a second Commit
    assert sim.handle(AttemptFailed(first.attempt_id, Reason.TIMEOUT, False)) == []
    assert sim.check([1]) == {1: JobState.SUCCEEDED}


def test_late_success_while_the_retry_runs_is_discarded_and_the_retry_wins() -> None:
    sim = Sim(("a", "b"), timeout=10, deadline_grace=0, max_retries=1)
    sim.add(1)
    first = one(sim.up("a", 1) + sim.up("b", 1), Launch)
    second = one(sim.tick(10), Launch)
    assert sim.ok(first) == [Discard(first.attempt_id, 1)]
    assert sim.ok(second) == [Commit(second.attempt_id, 1), Finished("done", "")]
    assert sim.check([1]) == {1: JobState.SUCCEEDED}


def test_second_success_for_a_committed_job_is_discarded() -> None:
    sim = Sim(("a",))
    sim.add(1)
    launch = one(sim.up("a", 1), Launch)
    assert of(sim.ok(launch), Commit) == [Commit(launch.attempt_id, 1)]
    assert sim.ok(launch) == [Discard(launch.attempt_id, 1)]
    assert sim.handle(AttemptSucceeded(999)) == []  # never launched: ignored
    assert len(of(sim.log, Commit)) == 1


# ------------------------------------------------------------------------ host losses


def test_host_down_requeues_its_jobs_on_other_hosts_and_reconnects() -> None:
    sim = Sim(("a", "b"), max_retries=2)
    sim.add(1, 2)
    on_a = of(sim.up("a", 2), Launch)
    sim.add(3, 4)
    on_b = of(sim.up("b", 2), Launch)
    assert {a.job_id for a in on_a} == {1, 2} and {a.job_id for a in on_b} == {3, 4}
    out = sim.handle(HostDown("a", "connection reset"), now=50)
    assert {(e.job_id, e.reason, e.retry) for e in of(out, AttemptEnded)} == {
        (1, Reason.HOST_LOST, True), (2, Reason.HOST_LOST, True)}
    assert of(out, ReconnectHost) == [ReconnectHost("a", 51.0)]
    assert of(out, Launch, QuarantineHost, Finished) == []  # b is full
    retries = of(sim.ok(on_b[0]), Launch) + of(sim.ok(on_b[1]), Launch)
    assert sorted(a.job_id for a in retries) == [1, 2]
    assert all(a.slot[0] == "b" and a.number == 2 for a in retries)
    run_out(sim, retries)
    assert set(sim.check([1, 2, 3, 4]).values()) == {JobState.SUCCEEDED}


def test_reconnect_backoff_grows_is_capped_and_resets_on_host_up() -> None:
    sim = Sim(("a", "b"), reconnect_backoff=(1.0, 30.0))
    sim.add(1)
    sim.up("a", 1)
    sim.up("b", 1)
    delays = []
    for now in range(0, 700, 100):
        reconnect = one(sim.handle(HostDown("a", "unreachable"), now=now), ReconnectHost)
        delays.append(reconnect.at - now)
    assert delays == [1, 2, 4, 8, 16, 30, 30]
    sim.up("a", 1)
    assert one(sim.handle(HostDown("a", "eof"), now=1000), ReconnectHost).at == 1001


def test_fatal_host_down_is_never_reconnected() -> None:
    sim = Sim(("a", "b"))
    sim.add(1, 2, 3)
    sim.up("a", 1)
    sim.up("b", 1)
    out = sim.handle(HostDown("a", "host key changed", fatal=True))
    assert of(out, ReconnectHost, Finished) == []
    # b remains: the run goes on; when b goes too and its reconnects fail, it stops
    out = sim.handle(HostDown("b", "eof"))
    assert of(out, Finished) == [] and of(out, ReconnectHost) == [ReconnectHost("b", 1.0)]
    out = fail_reconnects(sim, "b")
    assert out[-1] == Finished("no_hosts", "every host is down or quarantined")
    assert set(sim.check([1, 2, 3]).values()) == {JobState.CANCELLED}


def fail_reconnects(sim: Sim, host: str) -> list:
    """Every reconnect of ``host`` fails, ``host_retries`` times; returns the last actions."""
    out: list = []
    for _ in range(sim.sched.host_retries):
        assert of(out, Finished) == []
        out = sim.handle(HostDown(host, "connection refused"))
    return out


def test_a_host_that_comes_back_within_its_retries_keeps_the_run_going() -> None:
    sim = Sim(("a",))
    sim.add(1, 2)
    first = of(sim.up("a", 1), Launch)
    sim.handle(HostDown("a", "eof"))
    out = sim.handle(HostDown("a", "refused (MaxStartups)"))  # one failed reconnect
    assert of(out, Finished) == [] and of(out, ReconnectHost) == [ReconnectHost("a", 2.0)]
    again = of(sim.up("a", 1), Launch)
    assert [x.job_id for x in again] == [first[0].job_id]  # the lost job goes first
    sim.ok(again[0])
    sim.ok(of(sim.log, Launch)[-1])
    assert set(sim.check([1, 2]).values()) == {JobState.SUCCEEDED}


def test_fatal_down_of_the_only_host_stops_the_run() -> None:
    sim = Sim(("a",))
    sim.add(1)
    sim.up("a", 1)
    out = sim.handle(HostDown("a", "host key changed", fatal=True))
    assert of(out, ReconnectHost) == []
    assert sim.check([1]) == {1: JobState.CANCELLED}
    assert out[-1].state == "no_hosts"


@pytest.mark.parametrize("max_retries, running_state", [
    (0, JobState.UNKNOWN),
    (2, JobState.CANCELLED),
])
def test_every_host_down_finishes_no_hosts(max_retries, running_state) -> None:
    sim = Sim(("a", "b"), max_retries=max_retries)
    sim.add(*range(1, 6))
    running = of(sim.up("a", 1) + sim.up("b", 1), Launch)
    assert len(running) == 2
    out = sim.handle(HostDown("a", "eof"))
    assert of(out, Finished) == []
    out = sim.handle(HostDown("b", "eof"))
    assert of(out, Finished) == []
    fail_reconnects(sim, "a")
    out = fail_reconnects(sim, "b")
    assert out[-1] == Finished("no_hosts", "every host is down or quarantined")
    states = sim.check(range(1, 6))  # each job ends in exactly one final state
    for job_id, state in states.items():
        was_running = job_id in {a.job_id for a in running}
        assert state is (running_state if was_running else JobState.CANCELLED)
    # nothing launches after the end
    sim.handle(HostUp("a", 1))
    sim.slots_up(("a", 0))
    assert len(sim.launches()) == 2 and len(of(sim.log, Finished)) == 1


def test_slot_events_of_a_host_that_is_down_are_ignored() -> None:
    sim = Sim(("a", "b"))
    sim.add(1)
    sim.up("b", 1)
    sim.handle(HostUp("a", 1))
    sim.handle(HostDown("a", "eof"))
    assert sim.handle(SlotUp(("a", 0), INF)) == []
    assert sim.handle(SlotDown(("a", 0), "eof")) == []


# ------------------------------------------------------------------------- quarantine


def _fault_worker_died(sim, launch):
    out = sim.fail(launch, Reason.WORKER_DIED, slot_alive=False)
    out += sim.handle(SlotDown(launch.slot, "worker_died"))
    if of(out, StartSlot):
        out += sim.slots_up(launch.slot)
    return out


def _fault_slot_down(sim, launch):
    out = sim.handle(SlotDown(launch.slot, "worker_died"))
    if of(out, StartSlot):
        out += sim.slots_up(launch.slot)
    return out


def _fault_corrupt(sim, launch):
    return sim.fail(launch, Reason.CORRUPT)


def _fault_system(sim, launch):
    return sim.fail(launch, Reason.SYSTEM)


@pytest.mark.parametrize("fault", [_fault_worker_died, _fault_slot_down, _fault_corrupt,
                                   _fault_system])
def test_host_faults_in_a_row_quarantine_the_host(fault) -> None:
    sim = Sim(("a", "b"), quarantine_after=3, max_retries=10)
    sim.add(*range(1, 6))
    launch = one(sim.up("a", 1), Launch)
    for _ in range(2):
        out = fault(sim, launch)
        assert of(out, QuarantineHost) == []
        launch = one(out, Launch)
        assert launch.slot == ("a", 0)
    out = fault(sim, launch)
    assert one(out, QuarantineHost) == QuarantineHost("a", "3 failures in a row")
    assert of(out, Launch, StartSlot) == []
    # a stray SlotUp from a is not used; a is not reconnected, and if it comes back
    # anyway, no slot is started there
    assert sim.handle(SlotUp(("a", 0), INF)) == []
    assert of(sim.handle(HostDown("a", "eof")), ReconnectHost) == []
    assert sim.handle(HostUp("a", 1)) == []
    out = sim.up("b", 2)
    quarantined_at = sim.log.index(one(sim.log, QuarantineHost))
    run_out(sim, out)
    assert all(a.slot[0] == "b" for a in of(sim.log[quarantined_at:], Launch))
    assert len(of(sim.log, QuarantineHost)) == 1
    assert set(sim.check(range(1, 6)).values()) == {JobState.SUCCEEDED}


def test_failed_worker_starts_quarantine_the_host() -> None:
    """``SlotDown(failed_start=True)`` comes for a slot that never sent SlotUp (setup failed)."""
    sim = Sim(("a", "b"), quarantine_after=3)
    sim.add(1, 2)
    assert sim.handle(HostUp("a", 2)) == [StartSlot(("a", 0)), StartSlot(("a", 1))]
    setup_failed = SlotDown(("a", 0), "setup", failed_start=True)
    assert sim.handle(setup_failed) == [StartSlot(("a", 0))]  # counted, and tried again
    assert sim.handle(setup_failed) == [StartSlot(("a", 0))]
    out = sim.handle(setup_failed)
    assert out == [QuarantineHost("a", "3 failures in a row")]
    assert sim.handle(SlotUp(("a", 1), INF)) == []  # its other slot is not used either
    run_out(sim, sim.up("b", 1))
    assert {a.slot for a in sim.launches()} == {("b", 0)}
    assert set(sim.check([1, 2]).values()) == {JobState.SUCCEEDED}


def test_setup_failing_everywhere_ends_the_run_instead_of_hanging() -> None:
    sim = Sim(("a",), quarantine_after=3)
    sim.add(1, 2)
    out = sim.handle(HostUp("a", 1))
    for _ in range(10):
        if not of(out, StartSlot):
            break
        out = sim.handle(SlotDown(("a", 0), "setup", failed_start=True))
    assert of(out, QuarantineHost) == [QuarantineHost("a", "3 failures in a row")]
    assert out[-1] == Finished("no_hosts", "every host is down or quarantined")
    assert set(sim.check([1, 2]).values()) == {JobState.CANCELLED}


def test_errors_and_timeouts_do_not_count_towards_quarantine() -> None:
    sim = Sim(("a",), quarantine_after=2, max_retries=6, timeout=10, deadline_grace=0)
    sim.add(1)
    launch = one(sim.up("a", 1), Launch)
    for _ in range(3):
        launch = one(sim.fail(launch, Reason.ERROR), Launch)
    for _ in range(3):
        out = sim.tick(sim.now + 10)
        assert of(out, Kill)
        out += sim.handle(SlotDown(("a", 0), "timeout"))
        out += sim.slots_up(("a", 0))
        launch = one(out, Launch)
    sim.fail(launch, Reason.ERROR)
    assert of(sim.log, QuarantineHost) == []
    assert sim.check([1]) == {1: JobState.FAILED}


def test_a_success_resets_the_failure_streak() -> None:
    sim = Sim(("a",), quarantine_after=3, max_retries=10)
    sim.add(*range(1, 10))
    launch = one(sim.up("a", 1), Launch)
    for outcome in ["corrupt", "system", "ok", "corrupt", "system", "ok", "corrupt", "system"]:
        if outcome == "ok":
            out = sim.ok(launch)
        else:
            out = sim.fail(launch, Reason(outcome))
        assert of(out, QuarantineHost) == []
        launch = one(out, Launch)
    out = sim.fail(launch, Reason.CORRUPT)  # the third in a row
    assert one(out, QuarantineHost).host == "a"
    assert out[-1] == Finished("no_hosts", "every host is down or quarantined")
    sim.check(range(1, 10))


def test_quarantine_lets_busy_slots_finish_and_then_drops_them() -> None:
    sim = Sim(("a", "b"), quarantine_after=1, max_retries=3)
    sim.add(1, 2)
    first, second = of(sim.up("a", 2), Launch)
    out = sim.fail(first, Reason.SYSTEM)
    assert one(out, QuarantineHost).host == "a"
    assert of(out, Kill, Launch) == []  # the other attempt goes on
    assert sim.ok(second) == [Commit(second.attempt_id, second.job_id)]
    run_out(sim, sim.up("b", 1))
    assert all(a.slot[0] == "b" for a in sim.launches()[2:])
    assert set(sim.check([1, 2]).values()) == {JobState.SUCCEEDED}


def test_losing_a_busy_host_does_not_quarantine_it() -> None:
    """A lost connection is not a job fault of the host: it is reconnected, not quarantined,
    however many attempts were running on it."""
    sim = Sim(("a", "b"), quarantine_after=2, max_retries=3)
    sim.add(*range(1, 7))
    assert len(of(sim.up("a", 4), Launch)) == 4
    sim.up("b", 1)
    out = sim.handle(HostDown("a", "eof"))
    assert of(out, QuarantineHost) == []
    assert of(out, ReconnectHost) == [ReconnectHost("a", 1.0)]
    assert len(of(sim.up("a", 4), StartSlot)) == 4


def test_losing_a_host_with_busy_and_idle_slots_under_a_strict_quarantine() -> None:
    """Regression: counting the lost attempt quarantined the host while HostDown walked its
    slots, and the walk then failed (KeyError) on an idle slot the quarantine had dropped."""
    sim = Sim(("a", "b"), quarantine_after=1, max_retries=1)
    sim.add(1)
    launch = one(sim.up("a", 3), Launch)
    sim.up("b", 1)
    out = sim.handle(HostDown("a", "eof"))
    assert of(out, QuarantineHost) == [] and of(out, ReconnectHost) == [ReconnectHost("a", 1.0)]
    retry = one(out, Launch)
    assert retry.slot == ("b", 0) and retry.job_id == launch.job_id


# ------------------------------------------------------------------- slot expiry


@pytest.mark.parametrize("timeout, expires_at, launched", [
    (10, 5, False),
    (10, 10, False),  # exactly at the deadline: too close
    (10, 10.5, True),
    (10, INF, True),
    (None, 0.5, True),
    (None, 0, False),
])
def test_slot_too_close_to_max_living_is_retired(timeout, expires_at, launched) -> None:
    sim = Sim(("a",), timeout=timeout)
    sim.add(1)
    out = sim.up("a", 1, expires_at=expires_at)
    if launched:
        assert one(out, Launch).slot == ("a", 0)
    else:
        assert of(out, Launch) == [] and one(out, RetireSlot) == RetireSlot(("a", 0))


def test_retired_slot_is_replaced_and_the_job_goes_elsewhere() -> None:
    sim = Sim(("a", "b"), timeout=10)
    sim.add(1, 2)
    out = sim.up("a", 1, expires_at=5)
    assert of(out, Launch) == [] and of(out, RetireSlot) == [RetireSlot(("a", 0))]
    launch = one(sim.up("b", 1), Launch)
    assert launch.slot == ("b", 0) and launch.job_id == 1
    assert sim.handle(SlotDown(("a", 0), "retired")) == [StartSlot(("a", 0))]
    assert one(sim.slots_up(("a", 0)), Launch) == Launch(launch.attempt_id + 1, 2, ("a", 0), 1)


@pytest.mark.parametrize("seed", range(6))
def test_free_slot_that_no_longer_fits_is_retired_when_a_job_comes(seed: int) -> None:
    sim = Sim(("a", "b"), seed=seed, timeout=10)
    sim.up("a", 1, expires_at=50)
    sim.up("b", 1)
    out = sim.handle(JobsAdded((1,)), now=45.0)  # 45 + 10 > 50: only b fits now
    assert one(out, Launch).slot == ("b", 0)
    assert of(out, RetireSlot) in ([], [RetireSlot(("a", 0))])  # if a was drawn first


# ------------------------------------------------------------------- cancel and halt


def test_cancel_kills_running_gives_up_pending_and_finishes() -> None:
    sim = Sim(("a",))
    sim.add(*range(1, 6))
    running = of(sim.up("a", 2), Launch)
    out = sim.handle(CancelRequested())
    assert sorted(of(out, Kill), key=lambda k: k.attempt_id) == [
        Kill(a.attempt_id, a.slot, Reason.CANCELLED) for a in running]
    assert {(g.job_id, g.state) for g in of(out, GiveUp)} == {
        (j, JobState.CANCELLED) for j in range(1, 6)}
    assert out[-1] == Finished("cancelled", "")
    # nothing launches or commits after a cancel
    assert sim.ok(running[0]) == [Discard(running[0].attempt_id, running[0].job_id)]
    assert sim.fail(running[1]) == []
    assert sim.handle(SlotDown(running[1].slot, "cancelled")) == []
    sim.handle(HostUp("a", 2))
    sim.slots_up(("a", 0), ("a", 1))
    sim.tick(1e6)
    assert sim.add(6) == [GiveUp(6, JobState.CANCELLED, "cancelled")]
    assert sim.handle(CancelRequested()) == []
    assert of(sim.log, Launch) == running and of(sim.log, Commit) == []
    assert len(of(sim.log, Finished)) == 1
    assert set(sim.check(range(1, 7)).values()) == {JobState.CANCELLED}


def test_halt_after_two_failed_jobs() -> None:
    sim = Sim(("a",), max_retries=0, halt_on_failures=2)
    sim.add(*range(1, 7))
    first, second = of(sim.up("a", 2), Launch)
    third = one(sim.fail(first), Launch)
    out = sim.fail(second)
    assert Kill(third.attempt_id, third.slot, Reason.CANCELLED) in out
    assert out[-1] == Finished("halted", "halted after too many failures")
    assert of(out, Launch) == []
    states = sim.check(range(1, 7))
    assert states == {first.job_id: JobState.FAILED, second.job_id: JobState.FAILED,
                      **{j: JobState.CANCELLED for j in range(3, 7)}}
    assert sim.sched.failed_jobs == 2


@pytest.mark.parametrize("limit, failures", [(1, 1), (3, 3), (0.5, 5), (0.25, 3), (0.01, 1)])
def test_halt_on_failures_count_or_fraction(limit, failures) -> None:
    sim = Sim(("a",), max_retries=0, halt_on_failures=limit)
    sim.add(*range(1, 11))
    launch = one(sim.up("a", 1), Launch)
    for n in range(1, failures + 1):
        out = sim.fail(launch)
        if n < failures:
            assert of(out, Finished) == []
            launch = one(out, Launch)
    assert out[-1] == Finished("halted", "halted after too many failures")
    states = Counter(sim.check(range(1, 11)).values())
    assert states == {JobState.FAILED: failures, JobState.CANCELLED: 10 - failures}


def test_unknown_outcomes_do_not_count_towards_halt() -> None:
    sim = Sim(("a", "b"), max_retries=0, halt_on_failures=1)
    sim.add(1, 2)
    launch = one(sim.up("a", 1), Launch)
    out = sim.handle(SlotDown(launch.slot, "worker_died"))
    assert one(out, GiveUp).state is JobState.UNKNOWN and of(out, Finished) == []


# ---------------------------------------------------------------------- slot downs


def test_idle_slot_down_is_restarted() -> None:
    sim = Sim(("a",))
    sim.up("a", 2)
    assert sim.handle(SlotDown(("a", 1), "worker_died")) == [StartSlot(("a", 1))]
    sim.add(1)  # the restarted slot is not free until it is up again
    assert sim.log[-1].slot == ("a", 0)


def test_slot_down_mid_job_retries_elsewhere() -> None:
    sim = Sim(("a", "b"), max_retries=1)
    sim.add(1)
    first = one(sim.up("a", 1), Launch)
    sim.up("b", 1)
    out = sim.handle(SlotDown(first.slot, "worker_died"))
    assert one(out, AttemptEnded) == AttemptEnded(first.attempt_id, 1, Reason.WORKER_DIED, True)
    assert one(out, StartSlot) == StartSlot(first.slot)
    second = one(out, Launch)
    assert second.slot == ("b", 0) and second.number == 2
    assert sim.slots_up(first.slot) == []  # back, idle
    assert sim.ok(second)[0] == Commit(second.attempt_id, 1)
    assert sim.check([1]) == {1: JobState.SUCCEEDED}


# -------------------------------------------------------------- random simulation


class World:
    """Plays the master and the host agents around a Sim, at random but reproducibly.

    It answers StartSlot with SlotUp (sometimes a failed start), Kill/RetireSlot with
    SlotDown, ReconnectHost with HostUp once the time has come, and runs attempts to a
    random end: success, error, corrupt result, worker death, hang (then a timeout), or
    a lost host. It also sends late results of attempts already ended.
    """

    HOSTS = {"a": 3, "b": 2, "c": 4}

    def __init__(self, seed: int, n_jobs: int = 200, **options) -> None:
        self.rng = random.Random(seed)
        options.setdefault("quarantine_after", 4)
        self.sim = Sim(tuple(self.HOSTS), seed=seed, timeout=10.0, deadline_grace=1.0,
                       **options)
        self.jobs = range(1, n_jobs + 1)
        self.slots: dict[tuple[str, int], str] = {}  # starting, idle, busy, dying
        self.inbox: list[tuple[str, object]] = []  # (host, event) still to deliver
        self.reconnect: dict[str, float] = {}
        self.running: dict[int, Launch] = {}
        self.hung: set[int] = set()
        self.ended: list[int] = []
        self.up: set[str] = set()
        self.quarantined: set[str] = set()
        self.finished: Finished | None = None

    # ---- the scheduler's actions, as the master carries them out

    def send(self, *events) -> list:
        assert self.finished is None
        out = self.sim.handle(*events)
        for action in out:
            self.apply(action)
        return out

    def apply(self, a) -> None:
        assert self.finished is None, f"{a} after {self.finished}"
        if isinstance(a, Launch):
            host = a.slot[0]
            assert host in self.up and host not in self.quarantined, a
            assert self.slots.get(a.slot) == "idle", (a, self.slots.get(a.slot))
            self.slots[a.slot] = "busy"
            self.running[a.attempt_id] = a
        elif isinstance(a, Kill):
            assert a.attempt_id in self.running, a
            self.slots[a.slot] = "dying"
            self.inbox.append((a.slot[0], SlotDown(a.slot, a.reason.value)))
        elif isinstance(a, (AttemptEnded, Commit)):
            self.running.pop(a.attempt_id, None)
            self.hung.discard(a.attempt_id)
            if isinstance(a, AttemptEnded):
                self.ended.append(a.attempt_id)
        elif isinstance(a, StartSlot):
            assert a.slot[0] in self.up and a.slot[0] not in self.quarantined, a
            self.slots[a.slot] = "starting"
            if self.rng.random() < 0.03:
                event = SlotDown(a.slot, "setup", failed_start=True)
            else:
                event = SlotUp(a.slot, INF)
            self.inbox.append((a.slot[0], event))
        elif isinstance(a, RetireSlot):
            assert self.slots.get(a.slot) == "idle", a
            self.slots[a.slot] = "dying"
            self.inbox.append((a.slot[0], SlotDown(a.slot, "retired")))
        elif isinstance(a, ReconnectHost):
            self.reconnect[a.host] = a.at
        elif isinstance(a, QuarantineHost):
            assert a.host not in self.quarantined
            self.quarantined.add(a.host)
        elif isinstance(a, Finished):
            self.finished = a
        else:
            assert isinstance(a, (GiveUp, Discard)), a

    # ---- what happens out there

    def deliver(self) -> None:
        host, event = self.inbox.pop(self.rng.randrange(len(self.inbox)))
        if isinstance(event, SlotUp):
            roll = self.rng.random()
            life = INF if roll < 0.8 else (100.0 if roll < 0.9 else 5.0)  # 5 < timeout
            event = SlotUp(event.slot, self.sim.now + life)
            self.slots[event.slot] = "idle"
        else:
            del self.slots[event.slot]
        self.send(event)

    def finish_attempt(self) -> None:
        choices = [a for a in self.running if a not in self.hung]
        launch = self.running[self.rng.choice(choices)]
        aid, slot = launch.attempt_id, launch.slot
        roll = self.rng.random()
        if roll < 0.10:
            self.hung.add(aid)  # never answers: the next ticks time it out
            return
        if roll < 0.15:
            self.send(AttemptStarted(aid))
            return
        del self.running[aid]
        self.ended.append(aid)
        if roll < 0.70:
            self.slots[slot] = "idle"
            out = self.send(AttemptSucceeded(aid))
            assert of(out, Commit, Discard)
            self.ended.pop()
        elif roll < 0.82:
            self.slots[slot] = "idle"
            self.send(AttemptFailed(aid, Reason.ERROR, True))
        elif roll < 0.87:
            self.slots[slot] = "idle"
            self.send(AttemptFailed(aid, self.rng.choice([Reason.CORRUPT, Reason.SYSTEM]), True))
        elif roll < 0.94:
            self.slots[slot] = "dying"
            self.inbox.append((slot[0], SlotDown(slot, "worker_died")))
            self.send(AttemptFailed(aid, Reason.WORKER_DIED, False))
        else:
            del self.slots[slot]
            self.send(SlotDown(slot, "worker_died"))

    def tick(self) -> None:
        self.sim.now += self.rng.uniform(0.0, 3.0)
        events: list[object] = []
        for host, at in list(self.reconnect.items()):
            if self.sim.now >= at:
                del self.reconnect[host]
                self.up.add(host)
                events.append(HostUp(host, self.HOSTS[host]))
        self.send(*events, Tick())

    def lose_host(self) -> None:
        host = self.rng.choice(sorted(self.up))
        self.up.discard(host)
        self.inbox = [(h, e) for h, e in self.inbox if h != host]  # an earlier connection's
        for slot in [s for s in self.slots if s[0] == host]:
            del self.slots[slot]
        self.send(HostDown(host, "eof"))
        assert all(a.slot[0] != host for a in self.running.values())

    def late_result(self) -> None:
        aid = self.rng.choice(self.ended)
        out = self.send(AttemptSucceeded(aid))
        assert of(out, Commit) == []
        assert one(out, Discard).attempt_id == aid

    def run(self, cancel_at: int | None = None) -> dict[int, JobState]:
        self.send(JobsAdded(tuple(self.jobs)))
        for host, n in self.HOSTS.items():
            self.up.add(host)
            self.send(HostUp(host, n))
        for step in range(100_000):
            if self.finished:
                break
            if step == cancel_at:
                self.send(CancelRequested())
                continue
            roll = self.rng.random()
            busy = len(self.running) > len(self.hung)
            if roll < 0.30 and self.inbox:
                self.deliver()
            elif roll < 0.75 and busy:
                self.finish_attempt()
            elif roll < 0.96 or not (self.ended or len(self.up) > 1):
                self.tick()
            elif roll < 0.98 and len(self.up) > 1:
                self.lose_host()
            elif self.ended:
                self.late_result()
        assert self.finished is not None, "the run never finished"
        return self.sim.check(self.jobs)


@pytest.mark.parametrize("max_retries", [0, 1, 3])
@pytest.mark.parametrize("seed", [1, 2, 3, 5])  # 5 quarantines two hosts, loses the third
def test_random_runs_end_every_job_exactly_once(max_retries: int, seed: int) -> None:
    world = World(seed, max_retries=max_retries)
    states = world.run()
    assert world.finished.state in ("done", "no_hosts")
    if world.finished.state == "done":
        assert JobState.CANCELLED not in states.values()
        assert JobState.SUCCEEDED in states.values()
    if max_retries == 0:
        assert max(Counter(a.job_id for a in world.sim.launches()).values()) == 1
    # sanity: the run exercised the failure paths it is meant to
    reasons = {e.reason for e in of(world.sim.log, AttemptEnded)}
    assert {Reason.ERROR, Reason.TIMEOUT, Reason.WORKER_DIED} <= reasons


@pytest.mark.parametrize("seed", [6, 7])
@pytest.mark.parametrize("max_retries", [0, 2])
def test_random_runs_cancelled_midway(max_retries: int, seed: int) -> None:
    world = World(seed, max_retries=max_retries)
    states = world.run(cancel_at=300)
    assert world.finished == Finished("cancelled", "")
    assert JobState.CANCELLED in states.values()


@pytest.mark.parametrize("seed", [7, 8])
def test_random_runs_with_halt(seed: int) -> None:
    world = World(seed, max_retries=0, halt_on_failures=5)
    states = world.run()
    assert world.finished.state == "halted"
    assert Counter(states.values())[JobState.FAILED] == 5


# ----------------------------------------------------------------- speculation


def test_speculation_copies_a_straggler_to_another_host_and_first_result_wins():
    sim = Sim(hosts=("a", "b"), max_retries=1, speculate=3.0)
    sim.add(1, 2, 3, 4)
    launches = of(sim.up("a", 2) + sim.up("b", 2), Launch)
    assert len(launches) == 4
    straggler = launches[0]
    for launch in launches[1:]:
        sim.ok(launch)  # three quick ones (0 s each) set the median
    assert not of(sim.tick(0.5), Launch)  # below max(3 x median, 1 s): no copy yet
    copies = of(sim.tick(2.0), Launch)
    assert [c.job_id for c in copies] == [straggler.job_id]
    assert copies[0].slot[0] != straggler.slot[0] and copies[0].number == 2
    assert not of(sim.tick(3.0), Launch)  # one copy per job
    out = sim.ok(copies[0])
    assert of(out, Commit) == [Commit(copies[0].attempt_id, straggler.job_id)]
    assert of(out, Kill) == [Kill(straggler.attempt_id, straggler.slot, Reason.SPECULATION)]
    out = sim.fail(straggler, Reason.SPECULATION, slot_alive=False)
    assert not of(out, Commit) and not of(out, GiveUp)


def test_speculation_is_refused_with_max_retries_0_and_respects_the_launch_budget():
    with pytest.raises(ValueError):
        Scheduler(["a"], max_retries=0, speculate=2.0)
    sim = Sim(hosts=("a", "b"), max_retries=1, speculate=2.0)
    sim.add(1, 2, 3, 4)
    first = of(sim.up("a", 1), Launch)[0]
    sim.fail(first)  # job 1 used its retry budget's first launch; relaunched
    launches = of(sim.up("b", 3), Launch)
    for launch in launches:
        if launch.job_id != 1:
            sim.ok(launch)
    assert not [x for x in of(sim.tick(50.0), Launch) if x.job_id == 1]  # 2 launches: no copy


# ------------------------------------------------------------------- prefetch


def prefetched(hosts=("a",), slots=2, jobs=10, **options) -> tuple[Sim, list[Launch]]:
    """A Sim with ``prefetch`` 2 (unless given), its hosts up, ``jobs`` jobs added."""
    options.setdefault("prefetch", 2)
    options.setdefault("prefetch_below", None)  # whatever the durations (see the gate test)
    sim = Sim(hosts, **options)
    sim.add(*range(1, jobs + 1))
    out: list = []
    for host in hosts:
        out += sim.up(host, slots)
    return sim, of(out, Launch)


def heads(launches: list[Launch]) -> dict[tuple[str, int], Launch]:
    """The first launch to each slot (the one its worker runs first)."""
    first: dict = {}
    for launch in launches:
        first.setdefault(launch.slot, launch)
    return first


@pytest.mark.parametrize("slots, jobs, prefetch, max_retries, launched, per_slot", [
    (2, 10, 2, 3, 6, 3),  # each of 2 slots: 1 running + 2 queued
    (2, 3, 2, 3, 3, 2),  # fewer jobs than room: idle slots are filled first
    (2, 10, 0, 3, 2, 1),  # no prefetch: one attempt per slot
    (2, 10, 2, 0, 2, 1),  # max_retries 0: never any prefetch
    (3, 10, 1, 1, 6, 2),
])
def test_prefetch_queues_jobs_behind_busy_slots(slots, jobs, prefetch, max_retries, launched,
                                                per_slot) -> None:
    sim, launches = prefetched(slots=slots, jobs=jobs, prefetch=prefetch,
                               max_retries=max_retries)
    assert len(launches) == launched
    assert max(Counter(a.slot for a in launches).values()) == per_slot
    assert len(heads(launches)) == min(slots, jobs)  # every slot busy before any queueing
    assert launches[:min(slots, jobs)] == list(heads(launches).values())
    assert all(a.number == 1 for a in launches)


def test_prefetch_refills_a_slot_as_its_running_attempt_ends() -> None:
    sim, launches = prefetched(slots=1, jobs=5)
    assert [a.job_id for a in launches] == [1, 2, 3]
    out = sim.ok(launches[0])
    assert of(out, Commit) == [Commit(launches[0].attempt_id, 1)]
    assert [(a.job_id, a.slot) for a in of(out, Launch)] == [(4, ("a", 0))]
    run_out(sim, launches[1:] + of(out, Launch))
    assert sim.check(range(1, 6)) == {j: JobState.SUCCEEDED for j in range(1, 6)}


@pytest.mark.parametrize("agent_reports", [True, False])
@pytest.mark.parametrize("lose, reason", [
    (lambda sim, slot: sim.handle(HostDown(slot[0], "eof")), Reason.HOST_LOST),
    (lambda sim, slot: sim.handle(SlotDown(slot, "worker_died")), Reason.WORKER_DIED),
])
def test_only_attempts_the_agent_says_it_never_started_are_no_launch(lose, reason,
                                                                    agent_reports) -> None:
    sim, launches = prefetched(hosts=("a", "b"), slots=1, jobs=6, max_retries=1)
    on_a = [a for a in launches if a.slot == ("a", 0)]
    assert len(on_a) == 3
    sim.handle(AttemptStarted(on_a[0].attempt_id))  # only the first one started
    out = []
    if agent_reports and reason is Reason.WORKER_DIED:  # as the agent does when it reaps
        out += sim.fail(on_a[0], Reason.WORKER_DIED, slot_alive=False)
        for queued in on_a[1:]:
            out += sim.fail(queued, Reason.NOT_STARTED, slot_alive=False)
    out += lose(sim, ("a", 0))
    ended = {e.attempt_id: e for e in of(out, AttemptEnded)}
    assert ended[on_a[0].attempt_id] == AttemptEnded(on_a[0].attempt_id, on_a[0].job_id,
                                                     reason, True)
    certain = agent_reports and reason is Reason.WORKER_DIED
    for queued in on_a[1:]:  # without the agent's word, it may have started: a launch
        assert ended[queued.attempt_id] == AttemptEnded(
            queued.attempt_id, queued.job_id, Reason.NOT_STARTED if certain else reason, True)
    assert of(out, GiveUp) == []
    run_out(sim, [a for a in launches if a.slot != ("a", 0)] + of(out, Launch))
    first_ids = {x.attempt_id for x in launches}
    relaunched = {a.job_id: a.number for a in sim.launches() if a.attempt_id not in first_ids}
    assert relaunched[on_a[0].job_id] == 2
    for queued in on_a[1:]:
        assert relaunched[queued.job_id] == (1 if certain else 2)
    assert {states[0] for states in sim.finals().values()} == {JobState.SUCCEEDED}
    assert set(sim.finals()) == set(range(1, 7))


def test_without_prefetch_a_lost_unacknowledged_attempt_still_counts() -> None:
    sim, launches = prefetched(hosts=("a",), slots=1, jobs=1, max_retries=0)
    out = sim.handle(HostDown("a", "eof"))
    assert one(out, GiveUp).state is JobState.UNKNOWN  # it may have started: never twice


def test_agent_reports_a_queued_attempt_not_started() -> None:
    sim, launches = prefetched(slots=1, jobs=3, max_retries=0, prefetch=2)
    assert len(launches) == 1  # max_retries 0: nothing queued
    sim, launches = prefetched(slots=1, jobs=3, max_retries=2)
    head, queued = launches[0], launches[2]
    out = sim.fail(queued, Reason.NOT_STARTED, slot_alive=True)  # dequeued by the agent
    assert out == [AttemptEnded(queued.attempt_id, queued.job_id, Reason.NOT_STARTED, True),
                   Launch(out[1].attempt_id, queued.job_id, ("a", 0), 1)]
    assert sim.ok(head)[0] == Commit(head.attempt_id, head.job_id)  # the head was untouched


def test_head_worker_dies_queued_attempts_wait_for_the_slot_and_are_requeued() -> None:
    sim, launches = prefetched(hosts=("a", "b"), slots=1, jobs=6, max_retries=1)
    on_a = [a for a in launches if a.slot == ("a", 0)]
    sim.handle(AttemptStarted(on_a[0].attempt_id))
    out = sim.fail(on_a[0], Reason.WORKER_DIED, slot_alive=False)
    assert one(out, AttemptEnded).reason is Reason.WORKER_DIED
    assert of(out, Launch) == []  # the dying slot takes nothing; b is full
    out = sim.fail(on_a[1], Reason.NOT_STARTED, slot_alive=False)  # the agent drains it
    assert one(out, AttemptEnded).retry is True and of(out, Launch) == []
    out = sim.handle(SlotDown(("a", 0), "worker_died"))  # (no word on the last one)
    assert one(out, AttemptEnded) == AttemptEnded(on_a[2].attempt_id, on_a[2].job_id,
                                                  Reason.WORKER_DIED, True)
    assert of(out, StartSlot) == [StartSlot(("a", 0))]


def test_a_running_attempt_times_out_from_its_start_not_its_dispatch() -> None:
    sim = Sim(("a",), timeout=10, deadline_grace=2, prefetch=1, max_retries=1,
              prefetch_below=None)
    sim.now = 100.0
    sim.add(1, 2)
    head, queued = of(sim.up("a", 1), Launch)
    assert sim.sched.next_deadline() == 112.0  # the head's, from its launch
    sim.handle(AttemptStarted(head.attempt_id), now=101.0)
    assert sim.sched.next_deadline() == 113.0  # from its start; the queued one has none
    out = sim.tick(113.0)
    assert out[0] == Kill(head.attempt_id, ("a", 0), Reason.TIMEOUT)
    out = sim.fail(queued, Reason.NOT_STARTED, slot_alive=False)  # the agent, as it reaps
    assert of(out, AttemptEnded) == [AttemptEnded(queued.attempt_id, 2, Reason.NOT_STARTED,
                                                  True)]
    sim.handle(SlotDown(("a", 0), "timeout"))
    assert sim.sched.next_deadline() is None


@pytest.mark.parametrize("started_at, deadline", [(None, 112.0), (103.0, 115.0)])
def test_a_queued_attempt_times_out_from_its_start(started_at, deadline) -> None:
    sim = Sim(("a",), timeout=10, deadline_grace=2, prefetch=1, max_retries=1,
              prefetch_below=None)
    sim.add(1, 2)
    head, queued = of(sim.up("a", 1), Launch)
    sim.handle(AttemptSucceeded(head.attempt_id), now=100.0)
    assert sim.sched.next_deadline() == 112.0  # set when it became the head
    if started_at is not None:
        sim.handle(AttemptStarted(queued.attempt_id), now=started_at)
    assert sim.sched.next_deadline() == deadline
    assert sim.tick(deadline - 0.01) == []
    assert one(sim.tick(deadline), Kill).attempt_id == queued.attempt_id


def test_cancel_with_queued_attempts_kills_each_and_cancels_their_jobs() -> None:
    sim, launches = prefetched(slots=2, jobs=10)
    out = sim.handle(CancelRequested())
    assert {k.attempt_id for k in of(out, Kill)} == {a.attempt_id for a in launches}
    assert sim.check(range(1, 11)) == {j: JobState.CANCELLED for j in range(1, 11)}


def test_prefetch_stops_at_a_quarantined_host() -> None:
    sim, launches = prefetched(hosts=("a", "b"), slots=1, jobs=20, max_retries=5,
                               quarantine_after=1)
    on_a = [a for a in launches if a.slot == ("a", 0)]
    out = sim.fail(on_a[0], Reason.SYSTEM)  # a host fault: a is quarantined
    assert one(out, QuarantineHost).host == "a"
    assert all(a.slot[0] == "b" for a in of(out, Launch))
    out = sim.ok(on_a[1])
    assert all(a.slot[0] == "b" for a in of(out, Launch))


@pytest.mark.parametrize("seed", range(12))
def test_random_runs_with_prefetch_keep_the_invariants(seed: int) -> None:
    """Heads end at random (ok, error, worker death, host loss); the agents start the next
    queued attempt (AttemptStarted) as a head ends; every job ends exactly once, with at
    most 1 + max_retries *started* attempts."""
    rng = random.Random(seed)
    hosts = {"a": 2, "b": 1, "c": 3}
    sim = Sim(tuple(hosts), seed=seed, prefetch=rng.choice([1, 2, 3]), max_retries=2,
              timeout=50.0, deadline_grace=1.0, prefetch_below=None)
    slots: dict[tuple[str, int], list[int]] = {}  # what the agent holds, in order
    started: set[int] = set()
    launched: dict[int, Launch] = {}
    down: dict[str, float] = {}

    def apply(out: list) -> None:
        for a in out:
            if isinstance(a, Launch):
                launched[a.attempt_id] = a
                slots.setdefault(a.slot, []).append(a.attempt_id)
            elif isinstance(a, (AttemptEnded, Commit, Discard)):
                for q in slots.values():
                    if a.attempt_id in q:
                        q.remove(a.attempt_id)
            elif isinstance(a, StartSlot):
                apply(sim.handle(SlotUp(a.slot, INF)))
            elif isinstance(a, ReconnectHost):
                down[a.host] = a.at

    apply(sim.add(*range(1, 151)))
    for host, n in hosts.items():
        apply(sim.handle(HostUp(host, n)))  # apply() answers each StartSlot with SlotUp
    for _ in range(5000):
        if of(sim.log, Finished):
            break
        busy = [s for s, q in slots.items() if q and s[0] not in down]
        for s in busy:
            if slots[s][0] not in started:
                started.add(slots[s][0])
                apply(sim.handle(AttemptStarted(slots[s][0])))
        roll = rng.random()
        sim.now += 0.01
        if busy and roll < 0.8:
            s = rng.choice(busy)
            if slots[s]:
                aid = slots[s][0]
                apply(sim.handle(AttemptSucceeded(aid)) if roll < 0.65 else
                      sim.handle(AttemptFailed(aid, Reason.ERROR, True)))
        elif busy and roll < 0.9:  # a worker dies; its agent reports as it reaps it
            s = rng.choice(busy)
            dead = list(slots.pop(s))
            apply(sim.handle(AttemptFailed(dead[0], Reason.WORKER_DIED, False)))
            for queued in dead[1:]:
                if rng.random() < 0.7:  # else the report is lost with the slot
                    apply(sim.handle(AttemptFailed(queued, Reason.NOT_STARTED, False)))
            apply(sim.handle(SlotDown(s, "worker_died")))
            assert all(sim.sched._attempts.get(x) is None for x in dead)
        elif roll < 0.95:
            host = rng.choice(sorted(set(hosts) - set(down)) or ["a"])
            if host not in down:
                for s in [s for s in slots if s[0] == host]:
                    del slots[s]
                apply(sim.handle(HostDown(host, "eof")))
        for host, at in list(down.items()):
            if sim.now >= at:
                del down[host]
                apply(sim.handle(HostUp(host, hosts[host])))
        apply(sim.handle(Tick()))
    assert of(sim.log, Finished), "the run did not finish"
    finals = sim.finals()
    assert set(finals) == set(range(1, 151))
    assert all(len(states) == 1 for states in finals.values())
    per_job = Counter(launched[a].job_id for a in started if a in launched)
    assert max(per_job.values()) <= 1 + sim.max_retries
    assert max(Counter(c.job_id for c in of(sim.log, Commit)).values()) <= 1
    assert sim.sched.running == 0 and sim.sched.pending == 0
    reasons = Counter(e.reason for e in of(sim.log, AttemptEnded))
    assert reasons[Reason.NOT_STARTED] and reasons[Reason.HOST_LOST], reasons


def test_no_prefetch_while_a_host_is_still_connecting() -> None:
    sim = Sim(("a", "b", "c"), prefetch=2, prefetch_below=None)
    sim.add(*range(1, 21))
    first = of(sim.up("a", 2), Launch)
    assert len(first) == 2  # b and c have not come up yet: a takes no more than it runs
    assert len(of(sim.up("b", 2), Launch)) == 2
    out = sim.handle(HostDown("c", "cannot connect"))  # c failed: every host was heard of
    assert Counter(a.slot[0] for a in of(out, Launch)) == {"a": 4, "b": 4}


def test_prefetch_only_once_jobs_are_known_to_be_short() -> None:
    sim = Sim(("a",), prefetch=2, prefetch_below=1.0)
    sim.add(*range(1, 11))
    first = one(sim.up("a", 1), Launch)  # no duration known yet: nothing queued
    sim.handle(AttemptStarted(first.attempt_id), now=0.0)
    out = sim.handle(AttemptSucceeded(first.attempt_id), now=0.2)  # a short one
    two, three, four = of(out, Launch)  # the next one, and two queued behind it
    sim.handle(AttemptStarted(two.attempt_id), now=0.2)
    out = sim.handle(AttemptSucceeded(two.attempt_id), now=20.2)  # a long one
    assert sim.sched._typical > 1.0 and of(out, Launch) == []  # no more queueing
    assert of(sim.ok(three), Launch) == []
    assert [a.job_id for a in of(sim.ok(four), Launch)] == [5]  # idle: the next one only
