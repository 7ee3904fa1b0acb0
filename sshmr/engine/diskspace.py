"""Disk full, seen from the master: its own runs dir, and a host's workdir.

* The runs dir: a journal write (``sqlite3.OperationalError: database or disk is full``)
  or a result file that fails with ENOSPC stops the run with :class:`RunsDirFull`, one
  line naming the dir, its free space and the fix (free space, then ``sshmr resume RUN``).
* A host's workdir: an SFTP write (payload upload, bundle push) that fails says only
  "Failure" (SFTP v3 has no code for ENOSPC), so the host's free space is probed with
  ``statvfs`` there; nearly none left makes it :class:`HostDiskFull`, worded like the
  worker's own message (``remote.protocol.no_space``): "HOST: no space left on device in
  WORKDIR (12 KB free)".
"""

from __future__ import annotations

import os
import sqlite3

from ..errors import HostDiskFull, RunsDirFull
from ..remote.protocol import free_bytes, human_bytes, is_disk_full, no_space
from ..transport.base import Transport

NEARLY_FULL = 256 * 1024  # a write failed and less than this (+ its size) is free: full
_STATVFS = "import os,sys;s=os.statvfs(sys.argv[1]);print(s.f_bavail*s.f_frsize)"


def local_disk_full(exc: BaseException, path: str) -> bool:
    """Did this journal or file write fail for want of space on ``path``'s file system?"""
    if is_disk_full(exc):
        return True
    if isinstance(exc, sqlite3.OperationalError):
        code = getattr(exc, "sqlite_errorcode", None)
        if code == sqlite3.SQLITE_FULL or "disk is full" in str(exc):
            return True
        if code is not None and code & 0xFF == sqlite3.SQLITE_IOERR or "disk I/O" in str(exc):
            free = free_bytes(path)  # e.g. the WAL index could not grow
            return free is not None and free < NEARLY_FULL
    return False


def runs_dir_full(run_dir: str) -> RunsDirFull:
    runs_dir = os.path.dirname(os.path.abspath(run_dir))
    run_id = os.path.basename(run_dir.rstrip("/"))
    free = free_bytes(runs_dir)
    shown = human_bytes(free) if free is not None else "unknown space"
    return RunsDirFull(
        f"no space left on device in the runs dir {runs_dir} ({shown} free): run {run_id}"
        f" stopped, nothing committed is lost; free space there, then 'sshmr resume {run_id}'")


def remote_free(transport: Transport, python: str, path: str) -> int | None:
    """Free bytes on ``path``'s file system on the host (None if it cannot be told)."""
    try:
        status, out, _ = transport.run([python, "-c", _STATVFS, path], timeout=15)
        return int(out.strip()) if status == 0 else None
    except Exception:  # noqa: BLE001 - a host that is gone, ...: the original error stands
        return None


def host_write_failed(exc: Exception, transport: Transport, python: str, workdir: str,
                      size: int = 0) -> Exception:
    """``HostDiskFull`` if a write of ``size`` bytes to the host failed for want of space
    in ``workdir``, else ``exc`` itself."""
    if not isinstance(exc, OSError) or not workdir:
        return exc
    free = remote_free(transport, python, workdir)
    if is_disk_full(exc) or (free is not None and free < size + NEARLY_FULL):
        return HostDiskFull(transport.name, no_space(workdir, free))
    return exc
