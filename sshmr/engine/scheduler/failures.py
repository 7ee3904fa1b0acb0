"""Failure and retry policy: a failed attempt is retried up to ``max_retries`` (0: never
launched twice; an outcome unknown then ends the job UNKNOWN), an attempt never started is
no launch, hosts that keep failing are quarantined, and the run stops (cancel, halt, no
host left). Part of the pure scheduler (see ``core``)."""

from __future__ import annotations

from ...jobs import JobState, Reason
from .events import AttemptEnded, Kill, QuarantineHost, Slot
from .state import SchedulerState, _Attempt


class Failures(SchedulerState):
    """What happens when attempts fail and hosts go bad."""

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
