"""What hosts say, turned into scheduler events: connections and losses, agent messages,
finished transfers, results (verified against their checksums and, for function runs,
their HMAC) and the late results of a lost host that came back. See
``sshmr.engine.master``.

A host speaks only of its own attempts and slots: a message about an attempt it was not
given, or a slot it does not have, is a protocol violation (as is anything ``wire`` refuses),
and the host is not used again in this run. A result larger than ``max_result_size`` fails
its attempt before a byte of it is fetched; one larger than the runs dir's free space
stops the run as a full runs dir does (``sshmr resume`` continues it)."""

from __future__ import annotations

import time

from ...errors import (
    HostDiskFull,
    HostError,
    HostKeyChanged,
    HostKeyUnknown,
    HostUnreachable,
)
from ...jobs import AttemptState, Reason
from ...remote import protocol
from .. import scheduler as s
from ..collect import read_attempt
from ..diskspace import local_disk_full, runs_dir_full
from ..hostsession import HostSession
from ..wire import host_key
from .state import STATUS_REASON, MasterState, drop_staged


class Inbound(MasterState):
    """Session items in, scheduler events out."""

    def _on_connected(self, session: HostSession, info: dict) -> list[object]:
        slots = self.cfg.slots or session.transport_slots or info["cpus"]
        self.host_slots[session.name] = slots
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
        limit = self.cfg.max_result_size
        session.io(lambda: {a: read_attempt(t, protocol.attempt_dir(run_dir, a), limit, key)
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

    def _on_violation(self, session: HostSession, why: str) -> list[object]:
        """The host said what no honest agent says: it is not used again in this run, and
        its attempts fail (to be retried elsewhere) with that reason."""
        session.lost()
        message = (f"{session.name}: protocol violation: {why}; the host is not used again"
                   " in this run (check it: is it compromised?)")
        self.host_errors[session.name] = message
        for attempt, (host, _, _) in self.inflight.items():
            if host == session.name and attempt not in self.results:  # (not: said before)
                self.details.setdefault(attempt, {})["error"] = message
        self.journal.host(session.name, "failed", error=message)
        self.journal.event("host_failed", message, host=session.name)
        self._say_host(session.name, "failed", f"host {message}")
        return [s.HostDown(session.name, message, fatal=True)]

    def _owns(self, session: HostSession, attempt: int) -> bool:
        """Whether ``attempt`` was given to this host (now, or before it was given up)."""
        where = self.inflight.get(attempt)
        if where is not None:
            return where[0] == session.name
        row = self.journal.db.execute("SELECT host FROM attempts WHERE id = ?",
                                      (attempt,)).fetchone()
        return row is not None and row[0] == session.name

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
                drop_staged(self.journal.staging_path(attempt))
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
        if kind in ("done", "ack") and not self._owns(session, msg["a"]):
            return self._on_violation(session, f"it reported attempt {msg['a']}, which it was"
                                      " not given")
        if kind in ("up", "down") and msg["slot"] >= self.host_slots.get(session.name, 0):
            return self._on_violation(session, f"it reported slot {msg['slot']}, which it does"
                                      " not have")
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
                what = "" if error.startswith("cannot load the job code") else "setup() failed: "
                self.host_errors[session.name] = f"{session.name}: {what}{error}"
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
            if "r" in msg or "rb" in msg:
                try:
                    data = protocol.inline_result(msg) or b""
                except ValueError as exc:
                    data = f"undecodable inline result ({exc})".encode()
                return [self._verified(attempt, msg, data)]
            if msg["size"] > self.cfg.max_result_size:
                msg["error"] = (f"{session.name}: the result is"
                                f" {protocol.human_bytes(msg['size'])}, over max_result_size"
                                f" ({protocol.human_bytes(self.cfg.max_result_size)}); not"
                                " fetched. Return less, or raise --max-result-size")
                return [s.AttemptFailed(attempt, Reason.ERROR, slot_alive=True)]
            free = protocol.free_bytes(self.run_dir)
            if free is not None and msg["size"] > free:  # our disk: stop, as when it fills
                raise runs_dir_full(self.run_dir)
            path = f"{protocol.attempt_dir(session.run_dir, attempt)}/{protocol.RESULT_FILE}"
            t, size = session.transport, msg["size"]
            if msg.get("kind") == "bytes":  # streamed to a staging file: bounded memory
                staged = self.journal.staging_path(attempt)
                session.io(lambda: (msg, t.get_file(path, staged, limit=size) or staged),
                           ("fetch", attempt))
            else:
                session.io(lambda: (msg, t.get_bytes(path, limit=size)), ("fetch", attempt))
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
            where = self.inflight.get(attempt)
            key = (host_key(self.result_key, where[0])
                   if self.result_key is not None and where is not None else None)
            problem = protocol.check_result(meta, data, key)
        if problem is not None:
            drop_staged(data)
            self.details.setdefault(attempt, {})["error"] = f"corrupt result: {problem}"
            return s.AttemptFailed(attempt, Reason.CORRUPT, slot_alive=True)
        self.results[attempt] = (meta["kind"], data)
        return s.AttemptSucceeded(attempt)
