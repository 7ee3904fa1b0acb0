"""The scheduler's actions, carried out: journal first, then the wire (a launch is durable
before its run message is sent; everything one step sends to a host goes out as one
write). See ``sshmr.engine.master``."""

from __future__ import annotations

import json
import os

from ...jobs import AttemptState, JobState, Reason
from ...record.results import INPUT_FILE_KEY
from ...remote import protocol
from .. import scheduler as s
from ..diskspace import host_write_failed
from ..hostsession import HostSession
from .state import FILE_PAYLOAD, ID_BLOCK, MasterState, drop_staged


class Actions(MasterState):
    """Scheduler actions in, journal writes and messages to hosts out."""

    def _apply(self, actions: list[object]) -> None:
        """Carry out ``actions``; what they send goes out as one write per host, in order."""
        self._outbox = {}
        self._launched = False
        try:
            for action in actions:
                getattr(self, "_do_" + type(action).__name__)(action)
        finally:
            box = self._outbox
            if self._launched and self.journal.dirty:  # every launch is durable before it is
                try:  # sent: a master killed now cannot have launched it unrecorded
                    self._flush()  # (its releases join the box: one write per host)
                except BaseException:
                    self._outbox = None
                    raise  # nothing of this step is sent
            self._outbox = None
            for session, parts in box.items():
                session.send(b"".join(parts))

    def _send(self, session: HostSession, data: bytes) -> None:
        if self._outbox is None:
            session.send(data)
        else:
            self._outbox.setdefault(session, []).append(data)

    def _do_Launch(self, a: s.Launch) -> None:
        host, index = a.slot
        session = self.sessions[host]
        self.journal.dispatch(a.attempt_id, a.job_id, a.number, host, index)
        self.inflight[a.attempt_id] = (host, index, a.job_id)
        if a.attempt_id > self._reserved:  # ids in use are durable before they are sent
            self._reserved = a.attempt_id + ID_BLOCK
            self.journal.reserve_attempt_ids(self._reserved)
            self.journal.flush()
        elif self._sync == "true":
            self.journal.flush()  # max_retries=0: the dispatch is durable before the launch
        self._launched = True  # _apply flushes the step's dispatches before it sends them
        payload = self.journal.payload(a.job_id)
        mark = self._job_mark(a.attempt_id, a.job_id)  # see collect: adopting
        timeout = self._timeout_json if a.timeout is None else json.dumps(round(a.timeout, 3))
        head = (f'{{"t":"run","slot":{index},"a":{a.attempt_id},"j":{a.job_id},"js":"{mark}",'
                f'"timeout":{timeout},"sync":{self._sync}')
        if len(payload) <= self.cfg.inline_limit and not payload.startswith(FILE_PAYLOAD):
            self._send(session, f"{head},\"p\":{payload}}}\n".encode())
            return
        adir = protocol.attempt_dir(session.run_dir, a.attempt_id)
        t = session.transport

        def push() -> bytes:
            size = len(payload)
            try:
                t.mkdir_private(adir)  # never a symbolic link planted there
                if payload.startswith(FILE_PAYLOAD):  # an input file (+ other keys: MapReduce)
                    doc = json.loads(payload)
                    local = doc.pop(INPUT_FILE_KEY)
                    name = os.path.basename(local)
                    size = os.path.getsize(local)
                    t.put_file(local, f"{adir}/{name}")
                    sent = json.dumps({protocol.FILE_MARK: name, **doc})
                    return f"{head},\"p\":{sent}}}\n".encode()
                t.put_bytes(payload.encode(), f"{adir}/{protocol.PAYLOAD_FILE}")
            except OSError as exc:  # the host's disk may be full: then say so
                raise host_write_failed(exc, t, session.python, session.workdir, size) from None
            return f"{head}}}\n".encode()

        session.io(push, ("push", a.attempt_id))

    def _do_Kill(self, a: s.Kill) -> None:
        self._send(self.sessions[a.slot[0]],
                   protocol.encode({"t": "kill", "a": a.attempt_id, "reason": a.reason.value}))

    def _do_Commit(self, a: s.Commit) -> None:
        kind, data = self.results.pop(a.attempt_id)
        self.journal.commit_result(a.job_id, a.attempt_id, kind, data)
        self._end(a.attempt_id, AttemptState.SUCCEEDED, None, release=True)

    def _do_Discard(self, a: s.Discard) -> None:
        drop_staged(self.results.pop(a.attempt_id, (None, None))[1])
        state = self.sched.job_state(a.job_id)
        duplicate = state is JobState.SUCCEEDED
        why = "the job already has one" if duplicate else f"the job is {state.value} already"
        self.journal.event("discarded", f"{'duplicate' if duplicate else 'late'} result: {why}",
                           job=a.job_id, attempt=a.attempt_id)
        self._end(a.attempt_id, AttemptState.DISCARDED, "duplicate" if duplicate else "late",
                  release=True)

    def _do_AttemptEnded(self, a: s.AttemptEnded) -> None:
        drop_staged(self.results.pop(a.attempt_id, (None, None))[1])
        if a.reason is Reason.NOT_STARTED:  # queued at the host, never started: no launch
            where = self.inflight.pop(a.attempt_id, None)
            self.details.pop(a.attempt_id, None)
            self.journal.undispatch(a.attempt_id, a.retry)
            if where is not None:
                self.to_release[where[0]].append(a.attempt_id)
            return
        if a.retry:  # back in the queue: so the journal says too (a resume re-queues it)
            self.journal.requeue(a.job_id)
            self.journal.event("retry", a.reason.value, job=a.job_id, attempt=a.attempt_id)
        self._end(a.attempt_id, AttemptState.FAILED, a.reason.value,
                  release=not a.reason.outcome_unknown)

    def _end(self, attempt: int, state: AttemptState, reason: str | None, release: bool) -> None:
        where = self.inflight.pop(attempt, None)
        host = where[0] if where is not None else self.late.pop(attempt, None)
        self.journal.end_attempt(attempt, state, reason, self.details.pop(attempt, {}))
        if release and host is not None:
            self.to_release[host].append(attempt)

    def _do_GiveUp(self, a: s.GiveUp) -> None:
        self.journal.give_up(a.job_id, a.state, a.reason)
        if self.progress and a.state is not JobState.CANCELLED:
            host, error, n = self.journal.db.execute(
                "SELECT host, COALESCE(error, reason), number FROM attempts WHERE job = ?"
                " ORDER BY id DESC LIMIT 1", (a.job_id,)).fetchone() or (None, None, 0)
            error = ((error or "").strip().splitlines() or [a.reason])[-1]
            self.progress(f"job {a.job_id} {a.state.value}: {error} (host {host}, "
                          f"{n} attempt{'s' if n != 1 else ''})")

    def _do_StartSlot(self, a: s.StartSlot) -> None:
        self._send(self.sessions[a.slot[0]], protocol.encode({"t": "start", "slot": a.slot[1]}))

    def _do_RetireSlot(self, a: s.RetireSlot) -> None:
        self._send(self.sessions[a.slot[0]], protocol.encode({"t": "retire",
                                                               "slot": a.slot[1]}))

    def _do_ReconnectHost(self, a: s.ReconnectHost) -> None:
        self.reconnect_at[a.host] = a.at

    def _do_QuarantineHost(self, a: s.QuarantineHost) -> None:
        error = self.host_errors.get(a.host, "")
        self.journal.host(a.host, "quarantined", error=f"{a.reason}; {error}".strip("; "))
        self.journal.event("quarantined", a.reason, host=a.host)
        self._say_host(a.host, "quarantined",
                       f"host {a.host} quarantined: {a.reason}; {error}".rstrip("; "))

    def _do_TimeoutChanged(self, a: s.TimeoutChanged) -> None:
        median = "" if a.median is None else f" (median runtime {a.median:.3f}s)"
        self.journal.event("timeout", f"{a.seconds:.3f}s{median}")

    def _do_Finished(self, a: s.Finished) -> None:
        if a.state == "done" and self.next_phase is not None:
            self._phase_end = a  # the loop asks for the next phase (not inside ``_apply``)
        else:
            self.finished = a
