"""The scheduler: a pure state machine deciding which job runs where, and what happens next.

``Scheduler.handle(now, *events)`` takes events (what happened) and returns actions (what
the master must do). It does no I/O, starts no threads and never reads the clock: ``now``
is passed in. Every policy lives here: random assignment to free slots, timeouts, retries
up to ``max_retries`` (``0``: a job is never launched twice), first-result-wins, host
quarantine, worker retirement at ``max_living``, cancel and halt.

Prefetch (``prefetch`` > 0): once no slot is idle, up to ``prefetch`` more attempts are
queued behind a busy slot's running one, so the host agent starts the next job as soon as
the last one ends, without a round trip to the master. Only once every host has come up or
failed (the first hosts up would otherwise take the jobs of those still connecting), and
only while successful attempts take less than ``prefetch_below`` seconds on average (a
moving average; none known yet: no prefetch), where a round trip is a fair part of a job
and a job queued behind another waits little. The agent reports an attempt started before
it runs it, and its timeout counts from then. An attempt the agent reports it never
started (``AttemptFailed`` with reason ``not_started``: its worker died first, or it was
dequeued) was no launch: the job goes back to the queue without using a retry. One lost
with its slot or host without such a report counts as a launch, as it may have started
(its "started" may have been on the wire). ``max_retries`` 0 runs use no prefetch.

A slot is ``(host, index)``. A host's slots come and go with ``SlotUp``/``SlotDown``; the
master reconnects lost hosts when told to with ``ReconnectHost``.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from .events import (  # noqa: F401 - re-exported: the scheduler's vocabulary
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
    LateResult,
    Launch,
    QuarantineHost,
    ReconnectHost,
    RetireSlot,
    Slot,
    SlotDown,
    SlotUp,
    StartSlot,
    Tick,
)
from .jobs import JobState, Reason

# ----------------------------------------------------------------------------- state


@dataclass(slots=True)
class _Job:
    state: JobState = JobState.PENDING
    launches: int = 0
    running: set[int] = field(default_factory=set)
    failed_hosts: set[str] = field(default_factory=set)
    reasons: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Attempt:
    job_id: int
    slot: Slot
    deadline: float | None
    launched: float = 0.0  # dispatched; then when it started
    done: bool = False
    started: bool = False  # the agent reported it started


@dataclass(slots=True)
class _SlotState:
    idle: bool = False  # in ``_free``: up, nothing dispatched to it
    attempts: list[int] = field(default_factory=list)  # dispatched here; [0] runs first
    dying: bool = False  # its worker is being killed: nothing more goes to it
    expires_at: float = float("inf")


@dataclass(slots=True)
class _Host:
    n_slots: int = 0
    up: bool = False
    quarantined: bool = False
    dead: bool = False  # fatal: never reconnected
    fail_streak: int = 0
    reconnects: int = 0
    heard: bool = False  # it came up or failed at least once (not still connecting)


class Scheduler:
    """Events in, actions out. See the module docstring."""

    def __init__(
        self,
        hosts: Iterable[str],
        *,
        max_retries: int = 3,
        timeout: float | None = None,
        deadline_grace: float = 5.0,
        seed: int | None = None,
        quarantine_after: int = 5,
        reconnect_backoff: tuple[float, float] = (1.0, 30.0),
        host_retries: int = 2,
        halt_on_failures: int | float | None = None,
        speculate: float | None = None,
        first_attempt_id: int = 1,
        prefetch: int = 0,
        prefetch_below: float | None = 1.0,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.max_retries = max_retries
        if prefetch < 0:
            raise ValueError("prefetch must be >= 0")
        self.prefetch = prefetch if max_retries > 0 else 0  # see the module docstring
        self.prefetch_below = prefetch_below  # None: whatever the jobs' durations
        self._typical: float | None = None  # moving average of successful durations
        self.timeout = timeout
        self.deadline_grace = deadline_grace
        self.quarantine_after = quarantine_after
        self.reconnect_backoff = reconnect_backoff
        self.host_retries = host_retries  # failed reconnects before a host counts as down
        self.halt_on_failures = halt_on_failures
        if speculate is not None and max_retries == 0:
            raise ValueError("speculation needs max_retries >= 1: it runs a job twice")
        self.speculate = speculate  # a copy once an attempt runs this many times the median
        self._durations: deque[float] = deque(maxlen=1000)  # of successful attempts
        self._rng = random.Random(seed)
        self._hosts = {name: _Host() for name in hosts}
        self._slots: dict[Slot, _SlotState] = {}
        self._free: list[Slot] = []
        self._room: list[Slot] = []  # busy slots that may take a prefetched attempt
        self._room_at: dict[Slot, int] = {}  # slot -> its index in ``_room``
        self._now = 0.0
        self._all_heard = False  # every host came up or failed once: prefetch may start
        self._jobs: dict[int, _Job] = {}
        self._pending: deque[int] = deque()
        self._attempts: dict[int, _Attempt] = {}
        self._next_attempt = first_attempt_id
        self._ended: dict[int, int] = {}  # attempt id -> job id, for late results
        self._open = 0  # jobs not yet in a final state
        self._stopping: str | None = None
        self._started = False  # jobs were added (possibly none): the run can finish
        self._finished = False
        self.failed_jobs = 0

    # ------------------------------------------------------------------ queries

    def job_state(self, job_id: int) -> JobState:
        return self._jobs[job_id].state

    @property
    def running(self) -> int:
        return sum(1 for a in self._attempts.values() if not a.done)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def next_deadline(self) -> float | None:
        deadlines = [a.deadline for a in self._attempts.values() if a.deadline and not a.done]
        return min(deadlines) if deadlines else None

    # ------------------------------------------------------------------- events

    def handle(self, now: float, *events: object) -> list[object]:
        out: list[object] = []
        self._now = now
        for event in events:
            handler = getattr(self, "_on_" + type(event).__name__)
            handler(now, event, out)
        if self._stopping is None:
            self._dispatch(now, out)
        self._check_finished(out)
        return out

    def _on_JobsAdded(self, now: float, ev: JobsAdded, out: list) -> None:
        self._started = True
        for job_id in ev.job_ids:
            self._jobs[job_id] = _Job()
            self._open += 1
            if self._stopping:
                self._give_up(job_id, JobState.CANCELLED, self._stopping, out)
            else:
                self._pending.append(job_id)

    def restore_job(self, job_id: int, state: JobState, launches: int) -> None:
        """Resume: a job already known to the journal (final jobs are not re-run)."""
        self._jobs[job_id] = _Job(state=state, launches=launches)
        self._started = True
        if not state.final:
            self._open += 1
            self._pending.append(job_id)

    def _on_HostUp(self, now: float, ev: HostUp, out: list) -> None:
        host = self._hosts[ev.host]
        host.up = True
        host.heard = True
        host.n_slots = ev.slots
        host.reconnects = 0
        if not host.quarantined:
            out.extend(StartSlot((ev.host, i)) for i in range(host.n_slots))

    def _on_HostDown(self, now: float, ev: HostDown, out: list) -> None:
        host = self._hosts[ev.host]
        host.up = False
        host.heard = True
        for slot in [s for s in self._slots if s[0] == ev.host]:
            self._slot_gone(slot, Reason.HOST_LOST, out)
        low, high = self.reconnect_backoff
        delay = min(high, low * (2 ** host.reconnects))
        host.reconnects += 1
        if ev.fatal:
            host.dead = True
        elif not host.quarantined and self._stopping is None:
            out.append(ReconnectHost(ev.host, now + delay))
        self._check_hosts(out)

    def _on_SlotUp(self, now: float, ev: SlotUp, out: list) -> None:
        host = self._hosts[ev.slot[0]]
        if not host.up or host.quarantined:  # a worker started before the quarantine
            return
        self._slots[ev.slot] = _SlotState(idle=True, expires_at=ev.expires_at)
        self._free.append(ev.slot)

    def _on_SlotDown(self, now: float, ev: SlotDown, out: list) -> None:
        if ev.slot in self._slots:
            self._slot_gone(ev.slot, Reason.WORKER_DIED, out)
        elif not ev.failed_start:  # gone already (with its host)
            return
        # else: setup failed, the slot never came up (no SlotUp): count it, start it again
        host = self._hosts[ev.slot[0]]
        if ev.failed_start:
            self._host_failed(ev.slot[0], out)
        if host.up and not host.quarantined and self._stopping is None:
            out.append(StartSlot(ev.slot))

    def _on_AttemptStarted(self, now: float, ev: AttemptStarted, out: list) -> None:
        # The deadline ran from the launch (a lost acknowledgement must time out too); the
        # timeout counts from the start.
        att = self._attempts.get(ev.attempt_id)
        if att is None or att.done or att.started:
            return
        att.started = True
        att.launched = now
        if self.timeout is not None:
            att.deadline = now + self.timeout + self.deadline_grace

    def _on_AttemptSucceeded(self, now: float, ev: AttemptSucceeded, out: list) -> None:
        att = self._attempts.get(ev.attempt_id)
        if att is None:  # a late result of an attempt we already gave up on
            if ev.attempt_id in self._ended:
                out.append(Discard(ev.attempt_id, self._ended[ev.attempt_id]))
            return
        job = self._jobs[att.job_id]
        self._end_attempt(ev.attempt_id, att, slot_alive=True)
        self._hosts[att.slot[0]].fail_streak = 0
        took = now - att.launched
        self._durations.append(took)
        self._typical = took if self._typical is None else 0.9 * self._typical + 0.1 * took
        if job.state.final:
            out.append(Discard(ev.attempt_id, att.job_id))
            return
        job.state = JobState.SUCCEEDED
        self._open -= 1
        out.append(Commit(ev.attempt_id, att.job_id))
        for other in list(job.running):  # speculative copies lose the race
            other_att = self._attempts[other]
            out.append(Kill(other, other_att.slot, Reason.SPECULATION))

    def _on_LateResult(self, now: float, ev: LateResult, out: list) -> None:
        """An attempt given up when its host was lost did finish: its result, left on the
        host, was found when the host came back (a timed-out attempt's late result is no
        such thing: that one is always discarded, see ``_on_AttemptSucceeded``).

        First result wins. A job that has a result, or failed or was cancelled for good,
        keeps its state and the late result is discarded. Otherwise it is the job's result:
        a job waiting for a retry leaves the queue, a retry running elsewhere is killed, and
        a ``max_retries=0`` job whose outcome was unknown has it now, launched only once.
        """
        attempt_id = ev.attempt_id
        job_id = self._ended.pop(attempt_id, None)  # a result is late once at most
        if job_id is None:
            return
        job = self._jobs[job_id]
        if job.state in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED):
            out.append(Discard(attempt_id, job_id))
            return
        if job.state is JobState.PENDING and job_id in self._pending:
            self._pending.remove(job_id)
        if not job.state.final:
            self._open -= 1
        job.state = JobState.SUCCEEDED
        out.append(Commit(attempt_id, job_id))
        for other in list(job.running):
            out.append(Kill(other, self._attempts[other].slot, Reason.SPECULATION))

    def _on_AttemptFailed(self, now: float, ev: AttemptFailed, out: list) -> None:
        att = self._attempts.get(ev.attempt_id)
        if att is None or att.done:
            return
        self._end_attempt(ev.attempt_id, att, slot_alive=ev.slot_alive)
        self._attempt_failed(ev.attempt_id, att, ev.reason, out)

    def _on_Tick(self, now: float, ev: Tick, out: list) -> None:
        for attempt_id, att in list(self._attempts.items()):
            if not att.done and att.deadline is not None and now >= att.deadline:
                out.append(Kill(attempt_id, att.slot, Reason.TIMEOUT))
                self._end_attempt(attempt_id, att, slot_alive=False)
                self._attempt_failed(attempt_id, att, Reason.TIMEOUT, out)
        if self.speculate and not self._pending and self._free and self._stopping is None:
            self._speculate(now, out)

    def _speculate(self, now: float, out: list) -> None:
        """Idle slots and a straggler far beyond the median: run a copy on another host."""
        if len(self._durations) < 3:
            return
        limit = max(self.speculate * sorted(self._durations)[len(self._durations) // 2], 1.0)
        for att in list(self._attempts.values()):
            job = self._jobs[att.job_id]
            if (att.done or len(job.running) > 1 or job.launches > self.max_retries
                    or now - att.launched < limit or (self.prefetch and not att.started)):
                continue
            others = [i for i, slot in enumerate(self._free) if slot[0] != att.slot[0]]
            if not others:
                return
            index = self._rng.choice(others)
            slot = self._free[index]
            self._free[index] = self._free[-1]
            self._free.pop()
            self._launch(now, att.job_id, slot, self._slots[slot], out)

    def _on_CancelRequested(self, now: float, ev: CancelRequested, out: list) -> None:
        self._stop(ev.reason, out)

    # ---------------------------------------------------------------- internals

    def _stop(self, reason: str, out: list) -> None:
        if self._stopping is not None:
            return
        self._stopping = reason
        while self._pending:
            self._give_up(self._pending.popleft(), JobState.CANCELLED, reason, out)
        for attempt_id, att in list(self._attempts.items()):
            if not att.done:
                out.append(Kill(attempt_id, att.slot, Reason.CANCELLED))
                self._end_attempt(attempt_id, att, slot_alive=False)
                job = self._jobs[att.job_id]
                if not job.state.final and not job.running:
                    out.append(AttemptEnded(attempt_id, att.job_id, Reason.CANCELLED, False))
                    self._give_up(att.job_id, JobState.CANCELLED, reason, out)

    def _slot_gone(self, slot: Slot, reason: Reason, out: list) -> None:
        state = self._slots.pop(slot)
        if state.idle:
            self._free.remove(slot)
        self._room_del(slot)
        for attempt_id in state.attempts:
            att = self._attempts[attempt_id]
            if not att.done:
                self._end_attempt(attempt_id, att, slot_alive=False)
                # never reported started is not proof it did not start (the report may be
                # on the wire): a launch, so 1 + max_retries stays a hard limit
                self._attempt_failed(attempt_id, att, reason, out)

    def _end_attempt(self, attempt_id: int, att: _Attempt, *, slot_alive: bool) -> None:
        att.done = True
        self._jobs[att.job_id].running.discard(attempt_id)
        state = self._slots.get(att.slot)
        if state is not None and attempt_id in state.attempts:
            head = state.attempts[0] == attempt_id
            state.attempts.remove(attempt_id)
            if not slot_alive and (head or att.started):  # (runs may arrive out of order)
                state.dying = True  # what is queued behind it ends with the worker
            elif head and state.attempts:  # the agent starts the next one now
                nxt = self._attempts[state.attempts[0]]
                if nxt.deadline is None and self.timeout is not None:
                    nxt.deadline = self._now + self.timeout + self.deadline_grace
            if not state.dying and not state.attempts:
                if self._hosts[att.slot[0]].quarantined:
                    del self._slots[att.slot]
                else:
                    state.idle = True
                    self._free.append(att.slot)
            self._sync_room(att.slot, state)
        del self._attempts[attempt_id]
        self._ended[attempt_id] = att.job_id

    def _attempt_failed(self, attempt_id: int, att: _Attempt, reason: Reason, out: list) -> None:
        job = self._jobs[att.job_id]
        if reason is Reason.NOT_STARTED:
            self._not_started(attempt_id, att, out)
            return
        if reason.host_fault:
            self._host_failed(att.slot[0], out)
        job.failed_hosts.add(att.slot[0])
        job.reasons.append(reason.value)
        if job.state.final or job.running:
            out.append(AttemptEnded(attempt_id, att.job_id, reason, False))
            return
        if self._stopping is not None:
            out.append(AttemptEnded(attempt_id, att.job_id, reason, False))
            self._give_up(att.job_id, JobState.CANCELLED, self._stopping, out)
            return
        retry = job.launches <= self.max_retries and self.max_retries > 0
        out.append(AttemptEnded(attempt_id, att.job_id, reason, retry))
        if retry:  # to the front: a retried job is already late
            job.state = JobState.PENDING
            self._pending.appendleft(att.job_id)
        elif self.max_retries == 0 and reason.outcome_unknown:
            self._give_up(att.job_id, JobState.UNKNOWN, f"outcome unknown: {reason.value}", out)
        else:
            tried = ", ".join(job.reasons)
            self._give_up(att.job_id, JobState.FAILED, f"{job.launches} attempt(s): {tried}", out)
            self.failed_jobs += 1
            self._check_halt(out)

    def _not_started(self, attempt_id: int, att: _Attempt, out: list) -> None:
        """The attempt never started: it was no launch; the job goes back to the queue."""
        job = self._jobs[att.job_id]
        job.launches -= 1
        requeue = not job.state.final and not job.running and self._stopping is None
        out.append(AttemptEnded(attempt_id, att.job_id, Reason.NOT_STARTED, requeue))
        if requeue:
            job.state = JobState.PENDING
            self._pending.appendleft(att.job_id)
        elif not job.state.final and not job.running:
            self._give_up(att.job_id, JobState.CANCELLED, self._stopping or "cancelled", out)

    def _host_failed(self, name: str, out: list) -> None:
        host = self._hosts[name]
        host.fail_streak += 1
        if host.fail_streak >= self.quarantine_after and not host.quarantined:
            self._quarantine(name, f"{host.fail_streak} failures in a row", out)

    def _give_up(self, job_id: int, state: JobState, reason: str, out: list) -> None:
        self._jobs[job_id].state = state
        self._open -= 1
        out.append(GiveUp(job_id, state, reason))

    def _quarantine(self, name: str, reason: str, out: list) -> None:
        host = self._hosts[name]
        host.quarantined = True
        out.append(QuarantineHost(name, reason))
        for slot in [s for s in self._slots if s[0] == name]:
            state = self._slots[slot]
            self._room_del(slot)
            if state.idle:  # busy slots finish their attempts, then go
                self._slots.pop(slot)
                self._free.remove(slot)
        self._check_hosts(out)

    def _check_hosts(self, out: list) -> None:
        usable = [h for h in self._hosts.values() if not (h.dead or h.quarantined)]
        if any(h.up for h in usable):
            return
        down = all(h.reconnects > self.host_retries for h in usable)
        if (not usable or down) and self._open:
            self._stop("no_hosts", out)

    def _check_halt(self, out: list) -> None:
        limit = self.halt_on_failures
        if limit is None:
            return
        if isinstance(limit, float):
            if self.failed_jobs < max(1.0, limit * len(self._jobs)):
                return
        elif self.failed_jobs < limit:
            return
        self._stop("halted", out)

    def _dispatch(self, now: float, out: list) -> None:
        while self._pending and self._free:
            job_id = self._pending[0]
            slot = self._pick_slot(self._jobs[job_id].failed_hosts)
            state = self._slots[slot]
            if not self._fits(now, state):
                state.idle = False
                out.append(RetireSlot(slot))
                continue
            self._pending.popleft()
            self._launch(now, job_id, slot, state, out)
        if not self._pending or not self._room or self._connecting() or not self._short():
            return
        while self._pending and self._room:  # no idle slot: queue behind busy ones
            job_id = self._pending[0]
            slot = self._room[self._pick(self._room, self._jobs[job_id].failed_hosts)]
            state = self._slots[slot]
            if not self._fits(now, state):
                self._room_del(slot)
                continue
            self._pending.popleft()
            self._launch(now, job_id, slot, state, out)

    def _short(self) -> bool:
        """Jobs are short enough for prefetch to pay (a round trip is a fair part of one)
        and for a job queued behind another to lose little."""
        if self.prefetch_below is None:
            return True
        return self._typical is not None and self._typical < self.prefetch_below

    def _connecting(self) -> bool:
        if self._all_heard:
            return False
        self._all_heard = all(h.heard for h in self._hosts.values())
        return not self._all_heard

    def _sync_room(self, slot: Slot, state: _SlotState) -> None:
        if (0 < len(state.attempts) <= self.prefetch and not state.dying
                and not self._hosts[slot[0]].quarantined):
            if slot not in self._room_at:
                self._room_at[slot] = len(self._room)
                self._room.append(slot)
        else:
            self._room_del(slot)

    def _room_del(self, slot: Slot) -> None:
        index = self._room_at.pop(slot, None)
        if index is None:
            return
        last = self._room.pop()
        if index < len(self._room):
            self._room[index] = last
            self._room_at[last] = index

    def _fits(self, now: float, state: _SlotState) -> bool:
        needed = self.timeout if self.timeout is not None else 0.0
        return now + needed < state.expires_at

    def _pick_slot(self, avoid: set[str]) -> Slot:
        free = self._free
        index = self._pick(free, avoid)
        slot = free[index]
        free[index] = free[-1]
        free.pop()
        return slot

    def _pick(self, pool: list[Slot], avoid: set[str]) -> int:
        """A random index into ``pool``, preferring slots on hosts not in ``avoid``."""
        index = self._rng.randrange(len(pool))
        if avoid and pool[index][0] in avoid:
            better = [i for i, s in enumerate(pool) if s[0] not in avoid]
            if better:
                index = self._rng.choice(better)
        return index

    def _launch(self, now: float, job_id: int, slot: Slot, state: _SlotState, out: list) -> None:
        attempt_id = self._next_attempt
        self._next_attempt += 1
        job = self._jobs[job_id]
        job.launches += 1
        job.state = JobState.RUNNING
        job.running.add(attempt_id)
        deadline = None  # a queued attempt's deadline is set when it starts
        if self.timeout is not None and not state.attempts:
            deadline = now + self.timeout + self.deadline_grace
        self._attempts[attempt_id] = _Attempt(job_id, slot, deadline, now)
        state.idle = False
        state.attempts.append(attempt_id)
        self._sync_room(slot, state)
        out.append(Launch(attempt_id, job_id, slot, job.launches))

    def _check_finished(self, out: list) -> None:
        if self._finished or self._open or self._attempts:
            return
        if self._stopping is None and not self._started:
            return
        self._finished = True
        state = self._stopping or "done"
        messages = {
            "no_hosts": "every host is down or quarantined",
            "halted": "halted after too many failures",
        }
        out.append(Finished(state, messages.get(state, "")))
