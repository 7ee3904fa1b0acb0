"""The agent's worker slots (stdlib only): one forked ``Worker`` per slot, the job queued
behind its running one, loading the user's executor, and writing to a pipe without
blocking forever. The agent (``agent.py``) decides what each slot does; this module holds
its state and starts its process."""

from __future__ import annotations

import base64
import errno
import importlib
import os
import pickle
import select
import signal
import sys
from typing import Any, Dict, List, Optional, Tuple

from . import procs, protocol
from .worker import ALARM_MARGIN, Worker


class WorkerSlot:
    __slots__ = ("index", "pid", "rfd", "wfd", "buf", "token", "expires", "attempt",
                 "deadline", "kill_reason", "kill_at", "up", "error", "tb", "queue")

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
        self.queue: List[Dict[str, Any]] = []  # run messages waiting for the running job


def load_executor(target: Dict[str, Any]) -> Any:
    """The user's executor: its class imported from the bundle, its state unpickled."""
    sys.path.insert(0, target["path"])
    os.environ[protocol.IMPORTING_ENV] = target["module"]  # no run may start from it
    try:
        obj: Any = importlib.import_module(target["module"])
    finally:
        os.environ.pop(protocol.IMPORTING_ENV, None)
    for part in target["class"].split("."):
        obj = getattr(obj, part)
    if not target.get("state"):
        return obj()
    executor = obj.__new__(obj)
    executor.__dict__.update(pickle.loads(base64.b64decode(target["state"])))
    return executor


def fork_worker(s: WorkerSlot, executor: Any, cfg: Dict[str, Any],
                result_key: Optional[bytes], to_worker: Tuple[int, int],
                from_worker: Tuple[int, int], others: List[int]) -> int:
    """Fork the worker of slot ``s`` (in its own session, dying with this agent, holding
    no pipe but its own: ``others`` are the agent's other fds); return its pid."""
    agent = os.getpid()
    max_living = cfg.get("max_living")
    pid = os.fork()
    if pid:
        return pid
    code = 1  # the worker
    try:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM):
            signal.signal(sig, signal.SIG_DFL)
        if max_living:  # the backstop covers the worker from its first moment
            signal.alarm(max(1, int(float(max_living) + ALARM_MARGIN)))
        os.setsid()
        procs.die_with_parent(agent)
        # Hold no pipe but our own: a worker sees EOF as soon as its agent is gone.
        procs.close_quietly(to_worker[1], from_worker[0], *others)
        os.environ[procs.TOKEN_ENV] = s.token  # seen in /proc by exec'd children
        procs.set_name(procs.comm_name(s.token))  # inherited by forked ones
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        Worker(executor, max_living, run_dir=cfg["run_dir"],
               inline_limit=int(cfg.get("inline_limit", 65536)),
               result_key=result_key, slot=s.index).serve(to_worker[0], from_worker[1])
        code = 0
    finally:
        os._exit(code)


def write_all(fd: int, data: bytes, patience: Optional[float] = None) -> None:
    """Write all of ``data``; on a non-blocking ``fd``, raise TimeoutError (an OSError)
    when the reader takes no byte for ``patience`` seconds (a frozen master)."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            if not select.select([], [fd], [], patience)[1]:
                raise TimeoutError(errno.ETIMEDOUT, "the master reads nothing") from None
