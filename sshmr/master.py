"""The master loop: executes the scheduler's actions through host sessions, feeds events back.

One thread owns the scheduler and the journal. Host sessions post what their agents say
to a queue; the loop drains it in batches, turns items into scheduler events, runs the
returned actions (journal first, then the wire) and, on a timer, ticks the scheduler,
sends heartbeats, notices silent hosts, reconnects lost ones, flushes the journal and
tells hosts which attempt directories they may drop (only after the flush that committed
them).
"""

from __future__ import annotations

import base64
import json
import os
import queue
import signal
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from . import scheduler as s
from .collect import read_attempt
from .config import RunConfig
from .diskspace import host_write_failed, local_disk_full, runs_dir_full
from .errors import (
    HostDiskFull,
    HostError,
    HostKeyChanged,
    HostKeyUnknown,
    HostUnreachable,
    RunsDirFull,
)
from .hostsession import HostSession
from .jobs import AttemptState, JobState, Reason
from .journal import Journal
from .remote import protocol
from .result import INPUT_FILE_KEY

FILE_PAYLOAD = '{"' + INPUT_FILE_KEY + '"'
# Attempt ids reserved in the journal at a time. A dispatch is committed before its run
# message is sent (``_apply``), so a crash loses none that reached a host; a resumed master
# still starts past the reservation, so it never reuses an id a lost master handed out.
ID_BLOCK = 1000
LATE_RECHECK = 2.0  # a host that came back: look for its lost attempts' results this often
STATUS_REASON = {
    "error": Reason.ERROR, "system": Reason.SYSTEM, "timeout": Reason.TIMEOUT,
    "max_living": Reason.MAX_LIVING, "worker_died": Reason.WORKER_DIED,
    "cancelled": Reason.CANCELLED, "speculation": Reason.SPECULATION, "exit": Reason.CANCELLED,
    "retired": Reason.MAX_LIVING, "host_lost": Reason.HOST_LOST,
    "not_started": Reason.NOT_STARTED,
}


class Master:
    def __init__(self, *, run_dir: str, journal: Journal, sessions: dict[str, HostSession],
                 scheduler: s.Scheduler, config: RunConfig, events: queue.SimpleQueue,
                 progress: Callable[[str], None] | None = None,
                 result_key: bytes | None = None) -> None:
        self.run_dir = run_dir
        self.result_key = result_key  # function runs: pickled results must carry its HMAC
        self.journal = journal
        self.sessions = sessions
        self.sched = scheduler
        self.cfg = config
        self.q = events
        self.progress = progress
        self.inflight: dict[int, tuple[str, int, int]] = {}  # attempt -> (host, slot, job)
        self.details: dict[int, dict[str, Any]] = {}
        self.results: dict[int, tuple[str, bytes | str]] = {}  # bytes, or a staged file
        self.to_release: dict[str, list[int]] = defaultdict(list)
        self.reconnect_at: dict[str, float] = {}
        self.host_errors: dict[str, str] = {}
        self.late: dict[int, str] = {}  # attempt -> host: a late result, to commit or discard
        self.late_seen: set[int] = set()  # lost attempts whose outcome was found on the host
        self.late_check: dict[str, float] = {}  # host -> when to look for late results
        self.late_until: dict[str, float] = {}  # host -> when no more late result can come
        self._host_said: dict[str, str] = {}  # the host state last told to ``progress``
        self.finished: s.Finished | None = None
        self.interrupts = 0
        self._looping = False  # a second Ctrl-C forces only while the loop runs
        self._timeout_json = json.dumps(config.timeout)
        self._sync = "true" if config.max_retries == 0 else "false"
        self._last = {"tick": 0.0, "flush": 0.0, "cancel": 0.0}
        self._outbox: dict[HostSession, list[bytes]] | None = None  # see _apply
        self._launched = False  # a Launch of the current _apply step (flush before sending)
        self._cleanup = True  # at the end, hosts remove the run dir (not if it may resume)
        self._reserved = 0  # attempt ids up to this are durably reserved (see _do_Launch)

    # ------------------------------------------------------------------- loop

    def run(self, initial: list[object]) -> s.Finished:
        old = self._install_signals()
        try:
            self._apply(self.sched.handle(time.monotonic(), *initial))
            for session in self.sessions.values():
                if self.finished is None:  # (nothing to run: no host needs an agent)
                    session.connect_async()
            self._looping = True
            while self.finished is None:
                self._process(self._drain())
                self._timers(time.monotonic())
            self._looping = False
        except KeyboardInterrupt:  # a forced stop (second Ctrl-C): the caller cancels the jobs
            self._looping = False
            self._abandon_attempts()
            raise
        except (OSError, sqlite3.Error, RunsDirFull) as exc:
            if not isinstance(exc, RunsDirFull) and not local_disk_full(exc, self.run_dir):
                raise
            # Our disk is full: stop here. The journal keeps its last commit; the hosts keep
            # their results (not released, run dirs kept) for ``sshmr resume``.
            self._looping = False
            self.journal.abandon()
            self._cleanup = False
            raise (exc if isinstance(exc, RunsDirFull) else runs_dir_full(self.run_dir)) from None
        finally:
            self._shutdown()
            self._restore_signals(old)
        return self.finished

    def _abandon_attempts(self) -> None:
        """End every attempt still open in the journal (cancelled): their workers are killed
        by the shutdown that follows, and no attempt may stay RUNNING after the run."""
        for row in self.journal.open_attempts():
            self.inflight.pop(row["id"], None)
            self.journal.end_attempt(row["id"], AttemptState.FAILED, Reason.CANCELLED.value,
                                     self.details.pop(row["id"], {}))

    def _drain(self) -> list[tuple]:
        try:
            items = [self.q.get(timeout=0.05)]
        except queue.Empty:
            return []
        while len(items) < 5000:
            try:
                items.append(self.q.get_nowait())
            except queue.Empty:
                break
        return items

    def _process(self, items: list[tuple]) -> None:
        now = time.monotonic()
        events: list[object] = []
        for kind, host, gen, data in items:
            session = self.sessions[host]
            if gen != session.generation:
                continue  # said by an earlier connection
            session.last_heard = now
            events.extend(getattr(self, "_on_" + kind)(session, data))
        if events:
            self._apply(self.sched.handle(now, *events))

    def _timers(self, now: float) -> None:
        last = self._last
        events: list[object] = []
        if now - last["tick"] >= 0.1:
            last["tick"] = now
            events.append(s.Tick())
            hb = protocol.encode({"t": "hb"})
            for session in self.sessions.values():
                if not session.alive:
                    continue
                if now - session.last_heard > self.cfg.host_silence:
                    events.append(self._host_down(session, f"no message from the host for "
                                                           f"{self.cfg.host_silence:g}s"))
                elif now - session.last_sent >= self.cfg.heartbeat:
                    session.last_sent = now
                    session.send(hb)
            for host, at in list(self.reconnect_at.items()):
                if now >= at:
                    del self.reconnect_at[host]
                    self.sessions[host].connect_async()
            for host, at in list(self.late_check.items()):
                if now >= at and self.sessions[host].alive:
                    self.late_check[host] = now + LATE_RECHECK
                    # The lost agent ends its jobs by their timeout or max_living (its own
                    # clocks), so any result it commits is on disk by then: look until
                    # then, and once after.
                    life = min(self.cfg.timeout or self.cfg.max_living, self.cfg.max_living)
                    until = self.late_until.setdefault(host, now + life + self.cfg.kill_grace)
                    self._look_for_late(self.sessions[host], last=now >= until)
        if now - last["cancel"] >= 0.25:
            last["cancel"] = now
            if self.interrupts or os.path.exists(os.path.join(self.run_dir, "cancel")):
                events.append(s.CancelRequested("cancelled"))
        if events:
            self._apply(self.sched.handle(now, *events))
        if self.journal.dirty and now - last["flush"] >= 0.05:
            last["flush"] = now
            self._flush()

    def _flush(self) -> None:
        if self.journal.abandoned:  # nothing more was committed: the hosts keep everything
            self.to_release.clear()
            return
        self.journal.flush()
        for host, attempts in self.to_release.items():
            if attempts:
                self.sessions[host].send(protocol.encode({"t": "release", "a": attempts}))
        self.to_release.clear()

    # --------------------------------------------------------- session items

    def _on_connected(self, session: HostSession, info: dict) -> list[object]:
        slots = self.cfg.slots or session.transport_slots or int(info.get("cpus", 1))
        session.last_heard = session.last_sent = time.monotonic()
        self.host_errors.pop(session.name, None)
        self.journal.host(session.name, "up", slots=slots, workdir=session.workdir)
        self.journal.event("host_up", f"{slots} slots, python {info.get('python')}",
                           host=session.name)
        self._say_host(session.name, "up", f"host {session.name} up: {slots} slots")
        self.late_check[session.name] = 0.0
        self.late_until.pop(session.name, None)  # set by the first look
        return [s.HostUp(session.name, slots)]

    def _look_for_late(self, session: HostSession, last: bool = False) -> None:
        """A host that came back may hold results its lost agent's jobs committed to disk
        (attempts given up as host_lost): read them on its I/O thread (see ``_on_late``).
        ``last``: no more can come; this is the final look."""
        rows = self.journal.db.execute(
            "SELECT id FROM attempts WHERE host = ? AND state = ? AND reason = ?",
            (session.name, AttemptState.FAILED.value, Reason.HOST_LOST.value)).fetchall()
        todo = [r[0] for r in rows if r[0] not in self.late_seen]
        if not todo or last:
            del self.late_check[session.name]
        if not todo:
            return
        t, run_dir, key = session.transport, session.run_dir, self.result_key
        session.io(lambda: {a: read_attempt(t, protocol.attempt_dir(run_dir, a), key)
                            for a in todo}, ("late", 0))

    def _on_late(self, session: HostSession, found: dict | Exception) -> list[object]:
        """Outcomes of lost attempts: a verified result goes to the scheduler (which commits
        or discards it); a missing one may still come (its job runs on): looked for again."""
        if isinstance(found, Exception):
            return []
        events: list[object] = []
        for attempt, (kind, meta, data) in found.items():
            if kind == "missing":
                continue
            self.late_seen.add(attempt)
            if kind == "ok":
                self.late[attempt] = session.name
                self.results[attempt] = (meta["kind"], data)
                self.journal.event("late_result", "result of an attempt given up when its host"
                                   " was lost, found on the host when it came back",
                                   host=session.name, attempt=attempt)
                events.append(s.LateResult(attempt))
        return events

    def _on_failed(self, session: HostSession, exc: Exception) -> list[object]:
        fatal = not isinstance(exc, HostUnreachable)
        message = str(exc) if isinstance(exc, HostError) else f"{session.name}: {exc!r}"
        self.host_errors[session.name] = message
        self.journal.host(session.name, "failed" if fatal else "down", error=message)
        self.journal.event("host_failed", message, host=session.name)
        self._say_host(session.name, "failed" if fatal else "down", f"host {message}")
        if isinstance(exc, (HostKeyChanged, HostKeyUnknown)):
            fatal = True
        return [s.HostDown(session.name, message, fatal=fatal)]

    def _on_eof(self, session: HostSession, why: str) -> list[object]:
        return [self._host_down(session, why)]

    def _host_down(self, session: HostSession, why: str) -> s.HostDown:
        session.lost()
        message = f"{session.name}: {why}"
        self.host_errors[session.name] = message
        self.journal.host(session.name, "down", error=message)
        self.journal.event("host_down", why, host=session.name)
        self._say_host(session.name, "down", f"host {message}")
        return s.HostDown(session.name, why)

    def _on_io(self, session: HostSession, data: tuple) -> list[object]:
        (what, attempt), outcome = data
        if what == "late":
            return self._on_late(session, outcome)
        if attempt not in self.inflight:
            return []
        if isinstance(outcome, Exception):
            if what == "fetch" and local_disk_full(outcome, self.run_dir):
                raise runs_dir_full(self.run_dir)  # our disk, not the host's fault
            self.details.setdefault(attempt, {})["error"] = f"{what} failed: {outcome}"
            if isinstance(outcome, HostDiskFull):
                self.details[attempt]["error"] = self.host_errors[session.name] = str(outcome)
            if what == "fetch":
                _drop_staged(self.journal.staging_path(attempt))
            return [s.AttemptFailed(attempt, Reason.SYSTEM if what == "push" else Reason.CORRUPT,
                                    slot_alive=True)]
        if what == "fetch":
            meta, blob = outcome
            return [self._verified(attempt, meta, blob)]
        if self.journal.dirty:  # its dispatch is durable before its run message goes out
            self._flush()
        session.send(outcome)  # a pushed payload: now send the run message
        return []

    def _on_msg(self, session: HostSession, msg: dict) -> list[object]:
        kind = msg["t"]
        if kind == "done":
            return self._on_done(session, msg)
        if kind == "ack":
            if msg["a"] in self.inflight:
                self.journal.started(msg["a"])
                return [s.AttemptStarted(msg["a"])]
        elif kind == "up":
            life = msg.get("life")
            expires = time.monotonic() + life if life is not None else float("inf")
            return [s.SlotUp((session.name, msg["slot"]), expires)]
        elif kind == "down":
            failed_start = msg.get("reason") == "setup"
            if failed_start:
                error = msg.get("error") or "worker setup failed"
                self.host_errors[session.name] = f"{session.name}: {error}"
                self.journal.event("setup_failed", f"{error}\n{msg.get('tb') or ''}",
                                   host=session.name)
            return [s.SlotDown((session.name, msg["slot"]), msg.get("reason", ""), failed_start)]
        return []

    def _on_done(self, session: HostSession, msg: dict) -> list[object]:
        attempt = msg["a"]
        if attempt not in self.inflight:
            if msg.get("status") == "ok":
                self.journal.event("late_result", "a result arrived after its attempt was given"
                                   " up; discarded", host=session.name, attempt=attempt)
            return []
        self.details[attempt] = msg
        status = msg["status"]
        if status == "ok":
            if "r" in msg:
                return [self._verified(attempt, msg, msg["r"].encode())]
            if "rb" in msg:
                return [self._verified(attempt, msg, base64.b64decode(msg["rb"]))]
            path = f"{protocol.attempt_dir(session.run_dir, attempt)}/{protocol.RESULT_FILE}"
            if msg.get("kind") == "bytes":  # streamed to a staging file: bounded memory
                staged = self.journal.staging_path(attempt)
                session.io(lambda: (msg, session.transport.get_file(path, staged) or staged),
                           ("fetch", attempt))
            else:
                session.io(lambda: (msg, session.transport.get_bytes(path)), ("fetch", attempt))
            return []
        if msg.get("nospace"):  # the host's disk is full: a host error, named like one
            msg["error"] = self.host_errors[session.name] = f"{session.name}: {msg['error']}"
        reason = STATUS_REASON.get(status, Reason.WORKER_DIED)
        alive = status in ("error", "system") or bool(msg.get("q"))  # q: dequeued, unstarted
        return [s.AttemptFailed(attempt, reason, slot_alive=alive)]

    def _verified(self, attempt: int, meta: dict, data: bytes | str) -> object:
        """Check a result (bytes, or the path of a staged file) against its metadata."""
        if isinstance(data, str):
            problem = protocol.check_result_file(meta, data)
        else:
            problem = protocol.check_result(meta, data, self.result_key)
        if problem is not None:
            _drop_staged(data)
            self.details.setdefault(attempt, {})["error"] = f"corrupt result: {problem}"
            return s.AttemptFailed(attempt, Reason.CORRUPT, slot_alive=True)
        self.results[attempt] = (meta["kind"], data)
        return s.AttemptSucceeded(attempt)

    # ---------------------------------------------------------------- actions

    def _apply(self, actions: list[object]) -> None:
        """Carry out ``actions``; what they send goes out as one write per host, in order."""
        self._outbox = {}
        self._launched = False
        try:
            for action in actions:
                getattr(self, "_do_" + type(action).__name__)(action)
        finally:
            box, self._outbox = self._outbox, None
            if self._launched and self.journal.dirty:  # every launch is durable before it is
                self._flush()  # sent: a master killed now cannot have launched it unrecorded
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
        head = (f'{{"t":"run","slot":{index},"a":{a.attempt_id},"j":{a.job_id},'
                f'"timeout":{self._timeout_json},"sync":{self._sync}')
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
        _drop_staged(self.results.pop(a.attempt_id, (None, None))[1])
        state = self.sched.job_state(a.job_id)
        duplicate = state is JobState.SUCCEEDED
        why = "the job already has one" if duplicate else f"the job is {state.value} already"
        self.journal.event("discarded", f"{'duplicate' if duplicate else 'late'} result: {why}",
                           job=a.job_id, attempt=a.attempt_id)
        self._end(a.attempt_id, AttemptState.DISCARDED, "duplicate" if duplicate else "late",
                  release=True)

    def _do_AttemptEnded(self, a: s.AttemptEnded) -> None:
        _drop_staged(self.results.pop(a.attempt_id, (None, None))[1])
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
                       f"host {a.host} quarantined: {a.reason} {error}".rstrip())

    def _say_host(self, host: str, state: str, line: str) -> None:
        """Tell the progress callback, once per change of the host's state."""
        if self.progress and self._host_said.get(host) != state:
            self._host_said[host] = state
            self.progress(line)

    def _do_Finished(self, a: s.Finished) -> None:
        self.finished = a

    # ------------------------------------------------------------ shutting down

    def _shutdown(self) -> None:
        self._flush()
        threads = [threading.Thread(target=session.shutdown, args=(self._cleanup,), daemon=True)
                   for session in self.sessions.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        self.journal.flush()

    def _install_signals(self) -> dict:
        if threading.current_thread() is not threading.main_thread():
            return {}
        old = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, self._on_signal)
        return old

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.interrupts += 1
        if self.interrupts > 1 and self._looping:
            raise KeyboardInterrupt  # a second Ctrl-C forces; shutting down is never cut short

    @staticmethod
    def _restore_signals(old: dict) -> None:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _drop_staged(data: object) -> None:
    """Remove a staged result file that will not be committed."""
    if isinstance(data, str):
        try:
            os.unlink(data)
        except OSError:
            pass
