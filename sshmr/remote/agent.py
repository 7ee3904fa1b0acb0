"""The host agent: one per host per run, started over one SSH channel (stdlib only).

It forks one :class:`Worker` per slot (each in its own session), routes ``run`` messages
to them (a ``run`` for a busy slot waits in that slot's queue, and starts as soon as the
running job ends: the agent reports ``ack`` before it hands a job to the worker, and ends
queued jobs that never started with status ``not_started``), batches what it sends to the
master (one write per turn of its loop), enforces each attempt's timeout (from its start)
and each worker's ``max_living`` with its own clock, kills a worker's whole process group
(TERM, then KILL after a grace, then any process still carrying the worker's token in its
environment or its process name), sends heartbeats and watches the master's. If it loses
the master (EOF, a write that cannot complete, or no heartbeat for ``master_grace``) it
starts no new worker and no new job (queued ones are dropped), kills idle workers (also
those still in ``setup()``), lets running jobs finish within their limits (their results
are committed to disk; ``SIGALRM`` bounds the wait) and exits.

Nothing it starts outlives it, by construction rather than by timing (see ``procs``):
every kill goes to the worker's pid as well as its group (a worker not yet in its own
session is hit too, so reaping never blocks); a worker holds no other worker's pipe and
is killed by the kernel when the agent dies; it arms its ``max_living`` alarm first thing
after the fork.
"""

from __future__ import annotations

import fcntl
import json
import os
import selectors
import shutil
import signal
import sys
import time
import traceback
import uuid
from typing import Any, Dict, List, Optional

from . import procs, protocol
from .worker import ALARM_MARGIN
from .workers import WorkerSlot, fork_worker, load_executor, write_all


class Agent:
    def __init__(self, config: Dict[str, Any]) -> None:
        self.cfg = config
        self.run_dir = config["run_dir"]
        self.max_living = config.get("max_living")
        self.hb_interval = float(config.get("hb_interval", 1.0))
        self.master_grace = float(config.get("master_grace", 10.0))
        self.kill_grace = float(config.get("kill_grace", 2.0))
        self.slots: Dict[int, WorkerSlot] = {}
        self.sel = selectors.DefaultSelector()
        self.out_fd = -1
        self.inbuf = b""
        self.outbuf: List[bytes] = []  # messages for the master, written once per turn
        self.begun: List[Any] = []  # (slot, run message) acknowledged, not yet handed over
        self.master_lost = False
        self.exiting = False
        self.last_heard = self.last_sent = time.monotonic()
        self.executor = None
        self.result_key: Optional[bytes] = None  # function runs: signs pickled results

    # ------------------------------------------------------------------ main loop

    def main(self) -> int:
        for path in (self.run_dir, os.path.join(self.run_dir, "a")):
            protocol.private_dir(path)  # 0700, and never a planted symlink
        # Held (shared) while this agent or any of its workers lives: once it is free, no
        # attempt of this run can start on this host any more (see collect.py).
        lock = protocol.open_private(os.path.join(self.run_dir, protocol.AGENT_LOCK),
                                     os.O_RDONLY | os.O_CREAT)
        fcntl.flock(lock, fcntl.LOCK_SH)
        self.out_fd = os.dup(1)
        log = protocol.open_private(os.path.join(self.run_dir, "agent.log"),
                                    os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM):
            signal.signal(sig, self._on_term)
        os.set_blocking(0, False)
        os.set_blocking(self.out_fd, False)  # a master that stops reading is lost, see _write
        self.sel.register(0, selectors.EVENT_READ, None)
        self._send({"t": "ready", "pid": os.getpid(), "v": protocol.PROTOCOL_VERSION,
                    "cpus": os.cpu_count() or 1, "python": sys.version.split()[0]})
        self._flush()
        try:
            while not (self.exiting and not self._live()):
                if self.master_lost and not self._live():
                    break
                self._step()
                self._flush()
        finally:
            self._kill_all("exit")
            self._flush()
        return 0

    def _step(self) -> None:
        now = time.monotonic()
        timeout = self._next_timer(now) - now
        for key, _ in self.sel.select(max(0.0, min(timeout, self.hb_interval))):
            if key.data is None:
                self._read_master()
            else:
                self._read_worker(key.data)
        self._hand_over()
        self._timers(time.monotonic())

    def _live(self) -> bool:
        return any(s.pid for s in self.slots.values())

    def _next_timer(self, now: float) -> float:
        """When ``_timers`` next has something to do (never a past time: no busy loop)."""
        t = now + self.hb_interval
        if not self.master_lost:
            t = min(t, self.last_sent + self.hb_interval, self.last_heard + self.master_grace)
        for s in self.slots.values():
            if not s.pid:
                continue
            if s.kill_reason is None:
                t = min(t, s.deadline if s.attempt is not None else t, s.expires)
            else:
                t = min(t, s.kill_at)
        return max(t, now + 0.001)

    def _timers(self, now: float) -> None:
        if now >= self.last_sent + self.hb_interval and not self.master_lost:
            self._send({"t": "hb"})
        if not self.master_lost and now > self.last_heard + self.master_grace:
            self._lose_master()
        for s in list(self.slots.values()):
            if not s.pid:
                continue
            if s.kill_reason is None:
                if s.attempt is not None and now >= s.deadline:
                    self._kill(s, "timeout")
                elif now >= s.expires:
                    self._kill(s, "max_living" if s.attempt is not None else "retired")
            elif now >= s.kill_at:
                self._hard_kill(s)

    # ------------------------------------------------------------ from the master

    def _read_master(self) -> None:
        try:
            chunk = os.read(0, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.sel.unregister(0)
            self._lose_master()
            return
        self.last_heard = time.monotonic()
        self.inbuf += chunk
        *lines, self.inbuf = self.inbuf.split(b"\n")
        for line in lines:
            if line:
                self._handle(protocol.decode(line))

    def _handle(self, msg: Dict[str, Any]) -> None:
        kind = msg["t"]
        if kind == "run":
            s = self.slots.get(msg["slot"])
            if s is None or not s.up or s.kill_reason or self.master_lost or self.exiting:
                self._send({"t": "done", "a": msg["a"], "status": "not_started",
                            "error": "slot %s has no worker" % msg["slot"]})
            elif s.attempt is not None:
                s.queue.append(msg)
            else:
                self._begin(s, msg)
        elif kind == "start":
            self._start(msg["slot"])
        elif kind == "key":
            self.result_key = bytes.fromhex(msg["k"])
        elif kind == "kill":
            for s in self.slots.values():
                if s.attempt == msg["a"] and s.kill_reason is None:
                    self._kill(s, msg.get("reason", "killed"))
                for queued in [q for q in s.queue if q["a"] == msg["a"]]:
                    s.queue.remove(queued)  # never started: the worker stays
                    self._send({"t": "done", "a": msg["a"], "q": True,
                                "status": msg.get("reason", "killed")})
        elif kind == "retire":
            s = self.slots.get(msg["slot"])
            if s is not None and s.pid and s.kill_reason is None:
                self._kill(s, "retired")
        elif kind == "release":
            for attempt_id in msg["a"]:
                protocol.remove_dir(protocol.attempt_dir(self.run_dir, attempt_id))
        elif kind == "exit":
            self.exiting = True
            self._kill_all("exit")
            if msg.get("cleanup"):
                shutil.rmtree(self.run_dir, ignore_errors=True)

    def _begin(self, s: WorkerSlot, msg: Dict[str, Any]) -> None:
        """Give ``msg`` to the slot's idle worker: acknowledged now, handed over by
        ``_hand_over`` at the end of this turn, once every "ack" of the turn is written."""
        s.attempt = msg["a"]
        timeout = msg.get("timeout")
        s.deadline = time.monotonic() + timeout if timeout else float("inf")
        self._send({"t": "ack", "a": msg["a"]})
        self.begun.append((s, msg))

    def _hand_over(self) -> None:
        """The master hears "ack" before the job runs: write the turn's acknowledgements
        (one write for all of them), then hand each job to its worker (unless it was
        killed meanwhile: its end is reported when it is reaped)."""
        if not self.begun:
            return
        self._flush()
        begun, self.begun = self.begun, []
        for s, msg in begun:
            if s.attempt != msg["a"] or s.kill_reason is not None or s.wfd < 0:
                continue
            if self.master_lost:  # no new job once the master is lost: this one never ran
                s.attempt, s.deadline = None, float("inf")
                self._kill(s, "retired")
                continue
            try:
                write_all(s.wfd, protocol.encode(msg))
            except OSError:
                self._kill(s, "worker_died")

    def _lose_master(self) -> None:
        """No new workers or jobs; running jobs finish within their limits; then exit.

        No worker can appear later (``_start`` refuses), so the alarm set here bounds the
        agent's life: at the latest running job's deadline or max_living, plus the kill
        grace, ``_on_term`` kills everything and exits.
        """
        if self.master_lost:
            return
        self.master_lost = True
        for s in self.slots.values():
            s.queue = []  # never started, and no one to tell
            if s.pid and s.attempt is None and s.kill_reason is None:
                self._kill(s, "retired")
        now = time.monotonic()
        ends = [min(s.deadline, s.expires) if s.kill_reason is None else now
                for s in self.slots.values() if s.pid]  # killed ones go within kill_grace
        longest = max(ends + [now])
        if longest != float("inf"):
            signal.alarm(max(1, int(longest - now + 2 * self.kill_grace + ALARM_MARGIN)))

    # ---------------------------------------------------------------- the workers

    def _start(self, index: int) -> None:
        old = self.slots.get(index)
        if (old is not None and old.pid) or self.master_lost or self.exiting:
            return
        if self.executor is None:
            try:
                self.executor = load_executor(self.cfg["target"])
            except BaseException as exc:  # noqa: BLE001 - reported to the master
                self._send({"t": "down", "slot": index, "reason": "setup",
                            "error": "cannot load the job code: %s: %s" % (type(exc).__name__, exc),
                            "tb": traceback.format_exc()})
                return
        s = WorkerSlot(index)
        to_worker_r, to_worker_w = os.pipe()
        from_worker_r, from_worker_w = os.pipe()
        s.token = uuid.uuid4().hex
        pid = fork_worker(s, self.executor, self.cfg, self.result_key,
                          (to_worker_r, to_worker_w), (from_worker_r, from_worker_w),
                          [self.out_fd, getattr(self.sel, "fileno", lambda: -1)()]
                          + [fd for o in self.slots.values() for fd in (o.rfd, o.wfd)])
        os.close(to_worker_r)
        os.close(from_worker_w)
        s.pid, s.rfd, s.wfd = pid, from_worker_r, to_worker_w
        if self.max_living:
            s.expires = time.monotonic() + float(self.max_living)
        self.slots[index] = s
        self.sel.register(s.rfd, selectors.EVENT_READ, s)

    def _read_worker(self, s: WorkerSlot) -> None:
        try:
            chunk = os.read(s.rfd, 1 << 16)
        except OSError:
            chunk = b""
        if not chunk:
            self._reap(s)
            return
        s.buf += chunk
        *lines, s.buf = s.buf.split(b"\n")
        for line in lines:
            msg = json.loads(line)  # our own worker's: relayed as it wrote it
            if msg["t"] == "up":
                s.up = True
                life = s.expires - time.monotonic() if s.expires != float("inf") else None
                self._send({"t": "up", "slot": s.index, "life": life, "pid": s.pid})
            elif msg["t"] == "down":  # setup() failed; the worker exits
                s.kill_reason = "setup"
                s.error, s.tb = msg.get("error"), msg.get("tb")
            elif msg["t"] == "done" and msg.get("a") == s.attempt:
                s.attempt = None
                s.deadline = float("inf")
                if s.kill_reason is None:
                    self._send(line + b"\n")
                    if self.master_lost:
                        self._kill(s, "retired")
                    elif s.queue:
                        self._begin(s, s.queue.pop(0))

    def _kill(self, s: WorkerSlot, reason: str) -> None:
        s.kill_reason = reason
        s.kill_at = time.monotonic() + self.kill_grace
        s.up = False
        procs.signal_worker(s.pid, signal.SIGTERM if reason != "retired" else signal.SIGKILL)
        if reason == "retired":
            self._close_pipe(s)

    def _hard_kill(self, s: WorkerSlot) -> None:
        s.kill_at = float("inf")
        procs.signal_worker(s.pid, signal.SIGKILL)
        procs.kill_by_token(s.token)

    def _close_pipe(self, s: WorkerSlot) -> None:
        if s.wfd >= 0:
            os.close(s.wfd)
            s.wfd = -1

    def _reap(self, s: WorkerSlot) -> None:
        """The worker's pipe closed: it is dead or dying. Collect it, then report."""
        self.sel.unregister(s.rfd)
        os.close(s.rfd)
        s.rfd = -1
        self._close_pipe(s)
        procs.signal_worker(s.pid, signal.SIGKILL)  # the pid too: waitpid cannot block
        code = procs.exit_code(os.waitpid(s.pid, 0)[1])
        procs.kill_by_token(s.token)
        reason = s.kill_reason or "worker_died"
        if s.attempt is not None:
            self._send({"t": "done", "a": s.attempt, "status": reason, "exit": code,
                        "out": protocol.read_tail(protocol.output_path(self.run_dir, s.index,
                                                                       "stdout")),
                        "err": protocol.read_tail(protocol.output_path(self.run_dir, s.index,
                                                                       "stderr"))})
        for queued in s.queue:
            self._send({"t": "done", "a": queued["a"], "status": "not_started",
                        "error": "its worker ended (%s) before it started" % reason})
        s.queue = []
        self._send({"t": "down", "slot": s.index, "reason": reason, "exit": code,
                    "error": s.error, "tb": s.tb})
        s.pid = 0
        s.attempt = None
        s.up = False  # a run message still on its way is answered "not started"

    def _kill_all(self, reason: str) -> None:
        """Kill every worker now (``_reap`` SIGKILLs its group and sweeps its token)."""
        for s in self.slots.values():
            if s.pid:
                s.kill_reason = s.kill_reason or reason
                self._reap(s)

    def _on_term(self, signum: int, frame: Any) -> None:
        """SIGTERM/SIGINT, or the SIGALRM backstop: kill every worker, exit at once.

        Never blocks and never re-enters ``_reap`` (the main loop may be inside it).
        """
        try:
            for s in list(self.slots.values()):
                if s.pid:
                    procs.signal_worker(s.pid, signal.SIGKILL)
                    procs.kill_by_token(s.token)
        finally:
            os._exit(0)

    # ---------------------------------------------------------------- output

    def _send(self, msg: Any) -> None:
        """Queue ``msg`` (a message, or a worker's line as it wrote it) for the master
        (written by ``_flush``, at the latest at the end of this turn of the loop)."""
        self.last_sent = time.monotonic()
        if not self.master_lost:
            self.outbuf.append(msg if isinstance(msg, bytes) else protocol.encode(msg))

    def _flush(self) -> None:
        if not self.outbuf:
            return
        data = b"".join(self.outbuf)
        self.outbuf = []
        if self.master_lost:
            return
        try:
            write_all(self.out_fd, data, self.master_grace)
        except OSError:
            self._lose_master()


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return Agent(json.loads(argv[0])).main()


if __name__ == "__main__":
    sys.exit(main())
