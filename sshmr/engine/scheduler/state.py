"""What the scheduler knows: jobs, attempts, slots and hosts, and the bookkeeping every
part of it shares (ending an attempt, giving a job up). See ``core`` for the whole."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from ...jobs import JobState
from .events import GiveUp, Slot


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
    timeout: float | None = None  # the timeout it runs with (None: only the attempt limit)


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
    drained: bool = False  # nothing new goes to it (see ``fleet``)


class SchedulerState:
    """The scheduler's state, its queries, and the steps every policy shares."""

    def __init__(
        self,
        hosts: Iterable[str],
        *,
        max_retries: int = 3,
        timeout: float | None = None,
        adaptive: tuple[float, float, float] | None = None,
        attempt_limit: float | None = None,
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
        # (factor, floor, ceiling): the timeout follows factor x the median runtime
        self.adaptive = adaptive
        self._adaptive_now: float | None = None  # its current value (see ``timeouts``)
        self._adaptive_reported = adaptive[2] if adaptive else 0.0  # last TimeoutChanged
        # Without a timeout an attempt may still run no longer than this (its worker's
        # max_living): a host that ignores max_living is timed out here.
        self.attempt_limit = attempt_limit
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
        self._retiring: set[Slot] = set()  # slots of drained hosts whose workers retire
        self._retire_later: list[Slot] = []  # emptied busy slots of drained hosts
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

    def job_state(self, job_id: int) -> JobState:
        return self._jobs[job_id].state

    @property
    def running(self) -> int:
        return sum(1 for a in self._attempts.values() if not a.done)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _deadline(self, start: float, timeout: float | None) -> float | None:
        """When an attempt with ``timeout`` that starts at ``start`` is timed out (None:
        never)."""
        limit = timeout if timeout is not None else self.attempt_limit
        return None if limit is None else start + limit + self.deadline_grace

    def next_deadline(self) -> float | None:
        deadlines = [a.deadline for a in self._attempts.values() if a.deadline and not a.done]
        return min(deadlines) if deadlines else None

    def restore_job(self, job_id: int, state: JobState, launches: int) -> None:
        """Resume: a job already known to the journal (final jobs are not re-run)."""
        self._jobs[job_id] = _Job(state=state, launches=launches)
        self._started = True
        if not state.final:
            self._open += 1
            self._pending.append(job_id)

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
                if nxt.deadline is None:
                    nxt.deadline = self._deadline(self._now, nxt.timeout)
            if not state.dying and not state.attempts:
                host = self._hosts[att.slot[0]]
                if host.quarantined:
                    del self._slots[att.slot]
                elif host.drained:  # its last attempt ended: the worker retires
                    del self._slots[att.slot]
                    self._retire_later.append(att.slot)
                else:
                    state.idle = True
                    self._free.append(att.slot)
            self._sync_room(att.slot, state)
        del self._attempts[attempt_id]
        self._ended[attempt_id] = att.job_id

    def _give_up(self, job_id: int, state: JobState, reason: str, out: list) -> None:
        self._jobs[job_id].state = state
        self._open -= 1
        out.append(GiveUp(job_id, state, reason))

    def _sync_room(self, slot: Slot, state: _SlotState) -> None:
        host = self._hosts[slot[0]]
        if (0 < len(state.attempts) <= self.prefetch and not state.dying
                and not host.quarantined and not host.drained):
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
