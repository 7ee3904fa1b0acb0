"""Dispatch and assignment: which pending job goes to which slot, at random, and prefetch
behind busy slots. A retried job goes to a host it has not failed on: while such a host is
up, it waits for one of its slots rather than take a free slot on a host it failed on (a
host that fails fast frees its slots first and would otherwise take every retry). Part of
the pure scheduler (see ``core``)."""

from __future__ import annotations

from ...jobs import JobState
from .events import Launch, RetireSlot, Slot
from .state import _Attempt, _SlotState
from .timeouts import Timeouts

# How many retries waiting for another host dispatch looks past to find a job that may go
# now (they keep their place at the front of the queue).
WAIT_SCAN = 64


class Dispatch(Timeouts):
    """Where jobs go."""

    def _dispatch(self, now: float, out: list) -> None:
        waiting: list[int] = []  # retries holding out for a host they have not failed on
        try:
            self._dispatch_to_free(now, waiting, out)
            if not self._pending or not self._room or self._connecting() or not self._short():
                return
            self._prefetch(now, waiting, out)
        finally:
            self._pending.extendleft(reversed(waiting))

    def _dispatch_to_free(self, now: float, waiting: list[int], out: list) -> None:
        while self._free:
            job_id = self._next_job(self._free, waiting)
            if job_id is None:
                return
            slot = self._pick_slot(self._jobs[job_id].failed_hosts)
            state = self._slots[slot]
            if not self._fits(now, state):
                state.idle = False
                out.append(RetireSlot(slot))
                continue
            self._pending.popleft()
            self._launch(now, job_id, slot, state, out)

    def _prefetch(self, now: float, waiting: list[int], out: list) -> None:
        """No idle slot: queue behind busy ones."""
        while self._room:
            job_id = self._next_job(self._room, waiting)
            if job_id is None:
                return
            slot = self._room[self._pick(self._room, self._jobs[job_id].failed_hosts)]
            state = self._slots[slot]
            if not self._fits(now, state):
                self._room_del(slot)
                continue
            self._pending.popleft()
            self._launch(now, job_id, slot, state, out)

    def _next_job(self, pool: list[Slot], waiting: list[int]) -> int | None:
        """The job at the front of the queue once the retries that should wait for a slot
        outside ``pool`` are set aside in ``waiting``; None: no job may go to ``pool``."""
        while self._pending and len(waiting) < WAIT_SCAN:
            job_id = self._pending[0]
            avoid = self._jobs[job_id].failed_hosts
            if not avoid or not self._better_elsewhere(avoid, pool):
                return job_id
            waiting.append(self._pending.popleft())
        return None

    def _better_elsewhere(self, avoid: set[str], pool: list[Slot]) -> bool:
        """Every slot of ``pool`` is on a host in ``avoid``, and a host outside it is up
        (and neither quarantined nor drained)."""
        if any(slot[0] not in avoid for slot in pool):
            return False
        return any(
            h.up and not (h.quarantined or h.dead or h.drained)
            for name, h in self._hosts.items() if name not in avoid
        )

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

    def _fits(self, now: float, state: _SlotState) -> bool:
        needed = self.current_timeout() or 0.0
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
        timeout = self.current_timeout()
        deadline = None  # a queued attempt's deadline is set when it starts
        if not state.attempts:
            deadline = self._deadline(now, timeout)
        self._attempts[attempt_id] = _Attempt(job_id, slot, deadline, now, timeout=timeout)
        state.idle = False
        state.attempts.append(attempt_id)
        self._sync_room(slot, state)
        out.append(Launch(attempt_id, job_id, slot, job.launches,
                          timeout if self.adaptive is not None else None))
