"""Process control for the host runtime: marking, binding and killing workers (stdlib only).

A worker is marked with a token (in its environment for exec'd children, in its process
name for forked ones) so that whatever escapes its process group can still be found.
It is bound to its agent: on Linux the kernel SIGKILLs it when the agent dies
(``PR_SET_PDEATHSIG``); elsewhere a thread polls ``getppid()`` and kills the worker's
process group. Signals go to the worker's pid *and* its group, so a worker that has not
yet called ``setsid()`` (just forked, not yet scheduled) is hit as surely as one that has.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading
import time
from typing import Any, List, Optional

TOKEN_ENV = "SSHMR_WORKER_TOKEN"
COMM_PREFIX = "sshmr-w"  # + 8 hex digits of the token: a worker's process name (15 chars)
PARENT_POLL = 0.5  # seconds, the getppid() fallback's period
PR_SET_PDEATHSIG = 1


def _load_libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True)
    except (ImportError, OSError):  # a Python built without ctypes
        return None


_LIBC = _load_libc()  # loaded once in the agent, before any fork


def die_with_parent(parent: int) -> None:
    """Make this process (a freshly forked worker) end when ``parent`` exits."""
    if _LIBC is None or _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True,
                         name="sshmr-parent-watch").start()
    if os.getppid() != parent:  # the parent died before we asked
        os._exit(1)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL)
    try:
        os.killpg(os.getpgrp(), signal.SIGKILL)
    finally:
        os._exit(1)


def signal_worker(pid: int, sig: int) -> None:
    """Send ``sig`` to a worker and its process group (either may already be gone)."""
    for send in (os.kill, os.killpg):
        try:
            send(pid, sig)
        except OSError:
            pass


def comm_name(token: str) -> str:
    return COMM_PREFIX + token[:8]


def set_name(name: str) -> None:
    try:
        with open("/proc/self/comm", "w") as f:
            f.write(name)
    except OSError:
        pass


def kill_by_token(token: str) -> List[int]:
    """SIGKILL processes that escaped the process group but still carry the token (Linux).

    An exec'd descendant carries it in its environment. A forked one (a double fork that
    never execs) does not: /proc shows the environment of the last exec, the agent's; it
    carries the worker's process name instead.
    """
    killed: List[int] = []
    if not token or not os.path.isdir("/proc"):
        return killed
    needle = ("%s=%s" % (TOKEN_ENV, token)).encode()
    comm = comm_name(token).encode()
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


def exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else status


def close_quietly(*fds: Optional[int]) -> None:
    for fd in fds:
        if fd is not None and fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass
