"""Run directories: naming, finding the latest, and the one-master-per-run lock.

``RUNS_DIR/RUN_ID/`` holds ``journal.sqlite``, ``code/`` (the job code snapshot),
``results/`` (bytes and large results), ``lock`` (held by the master while it runs) and
``cancel`` (written by ``sshmr cancel``). A run id given by a user is only ever a name in
the runs dir (``RUN_ID``: no path, no shell or control characters).
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import time

from ..errors import ConfigError, RunLocked, RunNotFound
from ..remote.protocol import IMPORTING_ENV
from .journal import Journal

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def new_run_id(now: float | None = None) -> str:
    """``YYYYMMDD-HHMMSS-ttxxxxxx``: the local time; ``tt``, the 4 ms tick within the
    second in hex, so that names sort in start order; 6 random hex digits, so that runs of
    other runs dirs started at the same moment do not share a directory on the hosts."""
    now = time.time() if now is None else now
    tick = min(int((now % 1) * 250), 249)
    return f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}-{tick:02x}{secrets.token_hex(3)}"


def create_run_dir(runs_dir: str) -> tuple[str, str]:
    """A new run's id and directory (every new run starts here)."""
    module = os.environ.get(IMPORTING_ENV)
    if module:
        raise ConfigError(f"a run was started while a host agent imported the job's module"
                          f" {module}: it would start itself again on every host, for ever;"
                          f" put the code that starts the run under"
                          f" 'if __name__ == \"__main__\":'")
    os.makedirs(runs_dir, exist_ok=True)
    while True:
        run_id = new_run_id()
        path = os.path.join(runs_dir, run_id)
        try:
            os.mkdir(path, 0o700)
            return run_id, path
        except FileExistsError:
            continue


def find_run(runs_dir: str, run_id: str | None) -> str:
    """The run dir of ``run_id``, or of the latest run when None."""
    if run_id is None:
        candidates = []
        if os.path.isdir(runs_dir):
            candidates = sorted(
                name for name in os.listdir(runs_dir)
                if os.path.exists(os.path.join(runs_dir, name, Journal.FILE)))
        if not candidates:
            raise RunNotFound(f"no runs in {runs_dir!r}; start one with 'sshmr run', or pass"
                              " --runs-dir")
        run_id = candidates[-1]
    if not RUN_ID.fullmatch(run_id):  # never a path out of the runs dir
        raise RunNotFound(f"{run_id!r} is not a run id (like 20261130-073147-5fc789a0);"
                          " 'sshmr runs' lists them")
    path = os.path.join(runs_dir, run_id)
    if not os.path.exists(os.path.join(path, Journal.FILE)):
        raise RunNotFound(f"no run {run_id!r} in {runs_dir!r}; 'sshmr runs' lists them")
    return path


def run_state(run_dir: str, recorded: str | None) -> str:
    """The journal's state, except that a "running" run nobody holds is "interrupted"
    (its master died; ``sshmr resume`` continues it)."""
    state = recorded or "running"
    if state == "running" and not RunLock.held(run_dir):
        return "interrupted"
    return state


class RunLock:
    """An exclusive flock on ``RUN_DIR/lock``; released when the process dies."""

    def __init__(self, run_dir: str) -> None:
        self.path = os.path.join(run_dir, "lock")
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise RunLocked(f"run {os.path.basename(run_dir)} is in use by another sshmr"
                            " process (run or resume); wait for it or cancel it") from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, str(os.getpid()).encode())

    @staticmethod
    def held(run_dir: str) -> bool:
        path = os.path.join(run_dir, "lock")
        if not os.path.exists(path):
            return False
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
