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

Phases (MapReduce): ``JobsAdded(..., new_phase=True)`` after ``Finished`` reopens the run
with the next phase's jobs; hosts, slots, quarantines and retry counts carry over, the
runtimes measured so far do not.

A slot is ``(host, index)``. A host's slots come and go with ``SlotUp``/``SlotDown``; the
master reconnects lost hosts when told to with ``ReconnectHost``.

The state machine is one class, written in four files: ``state`` (what it knows),
``dispatch`` (where jobs go), ``failures`` (retries, quarantine, stopping), ``late``
(late results and speculation); this module handles the events.
"""

from __future__ import annotations

from ...jobs import JobState, Reason
from .events import (
    AttemptFailed,
    AttemptStarted,
    AttemptSucceeded,
    CancelRequested,
    Commit,
    Discard,
    Finished,
    HostDown,
    HostUp,
    JobsAdded,
    Kill,
    ReconnectHost,
    SlotDown,
    SlotUp,
    StartSlot,
    Tick,
)
from .failures import Failures
from .fleet import Fleet
from .late import LateAndSpeculative
from .state import _Job, _SlotState


class Scheduler(Fleet, LateAndSpeculative, Failures):
    """Events in, actions out. See the module docstring."""

    def handle(self, now: float, *events: object) -> list[object]:
        out: list[object] = []
        self._now = now
        for event in events:
            handler = getattr(self, "_on_" + type(event).__name__)
            handler(now, event, out)
        self._flush_retirements(out)
        if self._stopping is None:
            self._dispatch(now, out)
        self._check_finished(out)
        return out

    def _on_JobsAdded(self, now: float, ev: JobsAdded, out: list) -> None:
        self._started = True
        if ev.new_phase and ev.job_ids:
            self._finished = False
            self._forget_runtimes(out)
        for job_id in ev.job_ids:
            self._jobs[job_id] = _Job()
            self._open += 1
            if self._stopping:
                self._give_up(job_id, JobState.CANCELLED, self._stopping, out)
            else:
                self._pending.append(job_id)

    def _on_HostUp(self, now: float, ev: HostUp, out: list) -> None:
        host = self._hosts[ev.host]
        host.up = True
        host.heard = True
        host.n_slots = ev.slots
        host.reconnects = 0
        if not host.quarantined and not host.drained:
            out.extend(StartSlot((ev.host, i)) for i in range(host.n_slots))

    def _on_HostDown(self, now: float, ev: HostDown, out: list) -> None:
        host = self._hosts[ev.host]
        host.up = False
        host.heard = True
        for slot in [s for s in self._slots if s[0] == ev.host]:
            self._slot_gone(slot, Reason.HOST_LOST, out)
        self._retiring -= {s for s in self._retiring if s[0] == ev.host}  # gone with it
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
        if host.drained:  # started before the drain
            self._retire(ev.slot, out)
            return
        self._slots[ev.slot] = _SlotState(idle=True, expires_at=ev.expires_at)
        self._free.append(ev.slot)

    def _on_SlotDown(self, now: float, ev: SlotDown, out: list) -> None:
        if self._retired(ev.slot, out):  # a drain retired it
            return
        if ev.slot in self._slots:
            self._slot_gone(ev.slot, Reason.WORKER_DIED, out)
        elif not ev.failed_start:  # gone already (with its host)
            return
        # else: setup failed, the slot never came up (no SlotUp): count it, start it again
        host = self._hosts[ev.slot[0]]
        if ev.failed_start:
            self._host_failed(ev.slot[0], out)
        if host.up and not host.quarantined and not host.drained and self._stopping is None:
            out.append(StartSlot(ev.slot))

    def _on_AttemptStarted(self, now: float, ev: AttemptStarted, out: list) -> None:
        # The deadline ran from the launch (a lost acknowledgement must time out too); the
        # timeout counts from the start.
        att = self._attempts.get(ev.attempt_id)
        if att is None or att.done or att.started:
            return
        att.started = True
        att.launched = now
        att.deadline = self._deadline(now, att.timeout)

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
        self._adapt(out)
        if job.state.final:
            out.append(Discard(ev.attempt_id, att.job_id))
            return
        job.state = JobState.SUCCEEDED
        self._open -= 1
        out.append(Commit(ev.attempt_id, att.job_id))
        for other in list(job.running):  # speculative copies lose the race
            other_att = self._attempts[other]
            out.append(Kill(other, other_att.slot, Reason.SPECULATION))

    def _on_AttemptFailed(self, now: float, ev: AttemptFailed, out: list) -> None:
        att = self._attempts.get(ev.attempt_id)
        if att is None or att.done:
            return
        self._end_attempt(ev.attempt_id, att, slot_alive=ev.slot_alive)
        self._attempt_failed(ev.attempt_id, att, ev.reason, out)

    def _on_Tick(self, now: float, ev: Tick, out: list) -> None:
        for attempt_id, att in list(self._attempts.items()):
            if not att.done and att.deadline is not None and now >= att.deadline:
                reason = Reason.TIMEOUT if att.timeout is not None else Reason.MAX_LIVING
                out.append(Kill(attempt_id, att.slot, reason))
                self._end_attempt(attempt_id, att, slot_alive=False)
                self._attempt_failed(attempt_id, att, reason, out)
        if self.speculate and not self._pending and self._free and self._stopping is None:
            self._speculate(now, out)

    def _on_CancelRequested(self, now: float, ev: CancelRequested, out: list) -> None:
        self._stop(ev.reason, out)

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
