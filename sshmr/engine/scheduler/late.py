"""Late results and speculation: a result that a lost host's attempt left on disk, found
when the host came back, and copies of stragglers on idle slots of other hosts. Part of
the pure scheduler (see ``core``)."""

from __future__ import annotations

from ...jobs import JobState, Reason
from .dispatch import Dispatch
from .events import Commit, Discard, Kill, LateResult


class LateAndSpeculative(Dispatch):
    """First result wins, whichever attempt it comes from."""

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
