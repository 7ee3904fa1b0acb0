"""The host agent: one per host per run, started over one SSH channel (stdlib only).

It forks one :class:`Worker` per slot (each in its own session), routes ``run`` messages
to them, enforces each attempt's timeout and each worker's ``max_living`` with its own
clock, kills a worker's whole process group (TERM, then KILL after a grace, then any
process still carrying the worker's token in its environment or its process name), sends
heartbeats and watches the master's. If it loses the master (EOF or no heartbeat for
``master_grace``) it starts no new job, lets running ones finish within their limits
(their results are committed to disk) and exits. Nothing it starts outlives it.
"""

from __future__ import annotations

import base64
import errno
import importlib
import json
import os
import pickle
import selectors
import shutil
import signal
import sys
import time
import traceback
import uuid
from typing import Any, Dict, List, Optional

from . import protocol
from .worker import Worker

TOKEN_ENV = "SSHMR_WORKER_TOKEN"
COMM_PREFIX = "sshmr-w"  # + 8 hex digits of the token: a worker's process name (15 chars)


class _Slot:
    __slots__ = ("index", "pid", "rfd", "wfd", "buf", "token", "expires", "attempt",
                 "deadline", "kill_reason", "kill_at", "up", "error", "tb")

    def __init__(self, index: int) -> None:
        self.index = index
        self.pid = 0
        self.rfd = self.wfd = -1
        self.buf = b""
        self.token = ""
        self.expires = float("inf")
        self.attempt: Optional[int] = None
        self.deadline = float("inf")
        self.kill_reason: Optional[str] = None
        self.kill_at = float("inf")  # when to escalate to SIGKILL
        self.up = False
        self.error: Optional[str] = None  # why setup() failed
        self.tb: Optional[str] = None


class Agent:
    def __init__(self, config: Dict[str, Any]) -> None:
        self.cfg = config
        self.run_dir = config["run_dir"]
        self.max_living = config.get("max_living")
        self.hb_interval = float(config.get("hb_interval", 1.0))
        self.master_grace = float(config.get("master_grace", 10.0))
        self.kill_grace = float(config.get("kill_grace", 2.0))
        self.slots: Dict[int, _Slot] = {}
        self.sel = selectors.DefaultSelector()
        self.out_fd = -1
        self.inbuf = b""
        self.master_lost = False
        self.exiting = False
        self.last_heard = self.last_sent = time.monotonic()
        self.executor = None

    # ------------------------------------------------------------------ main loop

    def main(self) -> int:
        os.makedirs(os.path.join(self.run_dir, "a"), mode=0o700, exist_ok=True)
        self.out_fd = os.dup(1)
        log = os.open(os.path.join(self.run_dir, "agent.log"),
                      os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        os.set_blocking(0, False)
        self.sel.register(0, selectors.EVENT_READ, None)
        self._send({"t": "ready", "pid": os.getpid(), "v": protocol.PROTOCOL_VERSION,
                    "cpus": os.cpu_count() or 1, "python": sys.version.split()[0]})
        try:
            while not (self.exiting and not self._live()):
                if self.master_lost and not self._live():
                    break
                self._step()
        finally:
            self._kill_all("exit")
        return 0

    def _step(self) -> None:
        now = time.monotonic()
        timeout = self._next_timer(now) - now
        for key, _ in self.sel.select(max(0.0, min(timeout, self.hb_interval))):
            if key.data is None:
                self._read_master()
            else:
                self._read_worker(key.data)
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
            if s is None or not s.up or s.attempt is not None or s.kill_reason:
                self._send({"t": "done", "a": msg["a"], "status": "worker_died",
                            "error": "slot %s has no idle worker" % msg["slot"]})
                return
            s.attempt = msg["a"]
            timeout = msg.get("timeout")
            s.deadline = time.monotonic() + timeout if timeout else float("inf")
            try:
                self._write(s.wfd, protocol.encode(msg))
            except OSError:
                self._kill(s, "worker_died")
                return
            self._send({"t": "ack", "a": msg["a"]})
        elif kind == "start":
            self._start(msg["slot"])
        elif kind == "kill":
            for s in self.slots.values():
                if s.attempt == msg["a"] and s.kill_reason is None:
                    self._kill(s, msg.get("reason", "killed"))
        elif kind == "retire":
            s = self.slots.get(msg["slot"])
            if s is not None and s.pid and s.kill_reason is None:
                self._kill(s, "retired")
        elif kind == "release":
            for attempt_id in msg["a"]:
                shutil.rmtree(protocol.attempt_dir(self.run_dir, attempt_id), ignore_errors=True)
        elif kind == "exit":
            self.exiting = True
            self._kill_all("exit")
            if msg.get("cleanup"):
                shutil.rmtree(self.run_dir, ignore_errors=True)

    def _lose_master(self) -> None:
        """No new jobs; running ones finish within their limits; then exit."""
        if self.master_lost:
            return
        self.master_lost = True
        for s in self.slots.values():
            if s.pid and s.attempt is None and s.kill_reason is None:
                self._kill(s, "retired")
        longest = max([s.expires for s in self.slots.values() if s.pid] + [time.monotonic()])
        if longest != float("inf"):
            signal.alarm(int(longest - time.monotonic() + 2 * self.kill_grace + 5))

    # ---------------------------------------------------------------- the workers

    def _start(self, index: int) -> None:
        old = self.slots.get(index)
        if old is not None and old.pid:
            return
        if self.executor is None:
            try:
                self.executor = self._load_executor()
            except BaseException as exc:  # noqa: BLE001 - reported to the master
                self._send({"t": "down", "slot": index, "reason": "setup",
                            "error": "cannot load the job code: %s: %s" % (type(exc).__name__, exc),
                            "tb": traceback.format_exc()})
                return
        s = _Slot(index)
        to_worker_r, to_worker_w = os.pipe()
        from_worker_r, from_worker_w = os.pipe()
        s.token = uuid.uuid4().hex
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                os.setsid()
                os.close(to_worker_w)
                os.close(from_worker_r)
                os.close(self.out_fd)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                os.environ[TOKEN_ENV] = s.token  # seen in /proc only by exec'd children
                _set_name(_comm_name(s.token))  # inherited by forked ones (double forks)
                devnull = os.open(os.devnull, os.O_RDONLY)
                os.dup2(devnull, 0)
                Worker(self.executor, self.max_living, run_dir=self.run_dir,
                       inline_limit=int(self.cfg.get("inline_limit", 65536))
                       ).serve(to_worker_r, from_worker_w)
                code = 0
            finally:
                os._exit(code)
        os.close(to_worker_r)
        os.close(from_worker_w)
        s.pid, s.rfd, s.wfd = pid, from_worker_r, to_worker_w
        if self.max_living:
            s.expires = time.monotonic() + float(self.max_living)
        self.slots[index] = s
        self.sel.register(s.rfd, selectors.EVENT_READ, s)

    def _load_executor(self) -> Any:
        target = self.cfg["target"]
        sys.path.insert(0, target["path"])
        obj: Any = importlib.import_module(target["module"])
        for part in target["class"].split("."):
            obj = getattr(obj, part)
        if not target.get("state"):
            return obj()
        executor = obj.__new__(obj)
        executor.__dict__.update(pickle.loads(base64.b64decode(target["state"])))
        return executor

    def _read_worker(self, s: _Slot) -> None:
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
            msg = json.loads(line)
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
                    self._send(msg)
                    if self.master_lost:
                        self._kill(s, "retired")

    def _kill(self, s: _Slot, reason: str) -> None:
        s.kill_reason = reason
        s.kill_at = time.monotonic() + self.kill_grace
        s.up = False
        try:
            os.killpg(s.pid, signal.SIGTERM if reason != "retired" else signal.SIGKILL)
        except OSError:
            pass
        if reason == "retired":
            self._close_pipe(s)

    def _hard_kill(self, s: _Slot) -> None:
        s.kill_at = float("inf")
        try:
            os.killpg(s.pid, signal.SIGKILL)
        except OSError:
            pass
        _kill_by_token(s.token)

    def _close_pipe(self, s: _Slot) -> None:
        if s.wfd >= 0:
            os.close(s.wfd)
            s.wfd = -1

    def _reap(self, s: _Slot) -> None:
        """The worker's pipe closed: it is dead or dying. Collect it, then report."""
        self.sel.unregister(s.rfd)
        os.close(s.rfd)
        self._close_pipe(s)
        try:
            os.killpg(s.pid, signal.SIGKILL)
        except OSError:
            pass
        _, status = os.waitpid(s.pid, 0)
        _kill_by_token(s.token)
        reason = s.kill_reason or "worker_died"
        if s.attempt is not None:
            adir = protocol.attempt_dir(self.run_dir, s.attempt)
            self._send({"t": "done", "a": s.attempt, "status": reason, "exit": _exit_code(status),
                        "out": protocol.read_tail(os.path.join(adir, "stdout")),
                        "err": protocol.read_tail(os.path.join(adir, "stderr"))})
        self._send({"t": "down", "slot": s.index, "reason": reason, "exit": _exit_code(status),
                    "error": s.error, "tb": s.tb})
        s.pid = 0
        s.attempt = None

    def _kill_all(self, reason: str) -> None:
        """Kill every worker now (``_reap`` SIGKILLs its group and sweeps its token)."""
        for s in self.slots.values():
            if s.pid:
                s.kill_reason = s.kill_reason or reason
                self._reap(s)

    def _on_term(self, signum: int, frame: Any) -> None:
        self._kill_all("exit")
        os._exit(0)

    # ---------------------------------------------------------------- output

    def _send(self, msg: Dict[str, Any]) -> None:
        self.last_sent = time.monotonic()
        if self.master_lost:
            return
        try:
            self._write(self.out_fd, protocol.encode(msg))
        except OSError:
            self._lose_master()

    @staticmethod
    def _write(fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(fd, view):]
            except BlockingIOError:
                time.sleep(0.001)


def _exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else status


def _comm_name(token: str) -> str:
    return COMM_PREFIX + token[:8]


def _set_name(name: str) -> None:
    try:
        with open("/proc/self/comm", "w") as f:
            f.write(name)
    except OSError:
        pass


def _kill_by_token(token: str) -> List[int]:
    """SIGKILL processes that escaped the process group but still carry the token (Linux).

    An exec'd descendant carries it in its environment. A forked one (a double fork that
    never execs) does not: /proc shows the environment of the last exec, the agent's; it
    carries the worker's process name instead.
    """
    killed = []
    if not token or not os.path.isdir("/proc"):
        return killed
    needle = ("%s=%s" % (TOKEN_ENV, token)).encode()
    comm = _comm_name(token).encode()
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open("/proc/%s/comm" % name, "rb") as f:
                marked = f.read().rstrip(b"\n") == comm
            if not marked:
                with open("/proc/%s/environ" % name, "rb") as f:
                    marked = needle in f.read().split(b"\0")
            if marked:
                os.kill(int(name), signal.SIGKILL)
                killed.append(int(name))
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.EACCES, errno.ESRCH, errno.EPERM):
                raise
    return killed


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return Agent(json.loads(argv[0])).main()


if __name__ == "__main__":
    sys.exit(main())
