"""The master loop: executes the scheduler's actions through host sessions, feeds events back.

One thread owns the scheduler and the journal. Host sessions post what their agents say
to a queue; the loop drains it in batches, turns items into scheduler events, runs the
returned actions (journal first, then the wire) and, on a timer, ticks the scheduler,
sends heartbeats, notices silent hosts, reconnects lost ones, flushes the journal and
tells hosts which attempt directories they may drop (only after the flush that committed
them).

The master is one class written in five files: ``state`` (what it holds), ``inbound``
(what hosts say becomes scheduler events), ``actions`` (the scheduler's actions carried
out), ``commands`` (hosts drained, undrained and added while it runs); this module is the
loop, its timers and the shutdown.
"""

from __future__ import annotations

import os
import queue
import signal
import sqlite3
import threading
import time
from typing import Any

from ...errors import RunsDirFull
from ...jobs import AttemptState, Reason
from ...remote import protocol
from .. import scheduler as s
from ..diskspace import local_disk_full, runs_dir_full
from ..hostsession import HostSession
from .actions import Actions
from .commands import Commands
from .inbound import Inbound
from .state import LATE_RECHECK

__all__ = ["LATE_RECHECK", "Master"]


class Master(Inbound, Actions, Commands):
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
                if self._phase_end is not None:
                    self._next_phase()
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

    def _next_phase(self) -> None:
        """Every job of a phase ended: commit, ask for the next phase's jobs (the caller may
        take long, e.g. a shuffle: a thread keeps the hosts' heartbeats going meanwhile) and
        go on with them on the same hosts, or finish."""
        ended, self._phase_end = self._phase_end, None
        self._flush()
        stop = threading.Event()
        beat = threading.Thread(target=self._keep_alive, args=(stop,), daemon=True)
        beat.start()
        try:
            jobs = self.next_phase()
        finally:
            stop.set()
            beat.join()
        if not jobs:
            self.finished = ended
            return
        now = time.monotonic()
        for session in self.sessions.values():  # not heard while we were not listening
            session.last_heard = max(session.last_heard, now)
        self._apply(self.sched.handle(now, s.JobsAdded(tuple(jobs), new_phase=True)))

    def _keep_alive(self, stop: threading.Event) -> None:
        hb = protocol.encode({"t": "hb"})
        while not stop.wait(self.cfg.heartbeat / 2):
            for session in list(self.sessions.values()):
                if session.alive:
                    session.send(hb)

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
            if kind == "msgs" or kind == "msg":
                session.consumed()  # its room in the queue is free again
            if gen != session.generation:
                continue  # said by an earlier connection
            session.last_heard = now
            if kind == "msgs":  # what one read brought: stop where the host was dropped
                on_msg = self._on_msg
                for msg in data:
                    events.extend(on_msg(session, msg))
                    if gen != session.generation:
                        break
            else:
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
                    until = self.late_until.setdefault(
                        host, now + self.cfg.attempt_life + self.cfg.kill_grace)
                    self._look_for_late(self.sessions[host], last=now >= until)
        if now - last["cancel"] >= 0.25:
            last["cancel"] = now
            if self.interrupts or os.path.exists(os.path.join(self.run_dir, "cancel")):
                events.append(s.CancelRequested("cancelled"))
        events += self._fleet_changes(now)
        if events:
            self._apply(self.sched.handle(now, *events))
        if self.journal.dirty and now - last["flush"] >= 0.05:
            last["flush"] = now
            self._flush()

    def _shutdown(self) -> None:
        self._flush()
        kept: dict[str, str] = {}  # host -> why it kept the run's directory

        def stop(session: HostSession) -> None:
            why = session.shutdown(self._cleanup)
            if why:
                kept[session.name] = why

        threads = [threading.Thread(target=stop, args=(session,), daemon=True)
                   for session in self.sessions.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        for host, why in sorted(kept.items()):
            self.journal.event("run_dir_kept", why, host=host)
            if self.progress:
                self.progress(f"host {why}")
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
