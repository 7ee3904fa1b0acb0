"""The wire and disk formats shared by the master and the remote runtime (stdlib only).

Control channel: one JSON object per line, both ways, over the agent's stdin/stdout.
Every message has ``t`` (its type). Master -> agent: ``key`` (function runs' HMAC key),
``start`` (fork slot's worker), ``run`` (an attempt), ``kill``, ``retire``, ``release``
(attempt dirs may go), ``hb``, ``exit``. Agent -> master: ``ready``, ``up``/``down`` (a
slot's worker), ``ack``, ``done`` (an attempt ended, with status), ``hb``, ``log``.

Remote disk, under the host's workdir (0700)::

    code/<sha>/              content-addressed runtime + user code (pushed once)
    runs/<run_id>/a/<id>/    one attempt: payload.json, input files, result (json text
                             or raw bytes), done.json (commit marker)
    runs/<run_id>/slot-<n>.stdout, .stderr
                             what the running attempt of slot n prints (emptied per attempt)

A result is written to ``result.tmp``, fsynced when asked, renamed to ``result``; then
``done.json`` (status, kind, sha256, size, error) is written the same way. A result of at
most the inline limit (64 KiB) rides in ``done.json`` itself (``r``/``rb``, as on the
wire), committed by its one rename: one new file per attempt fewer. A result is taken
only if its sha256 matches, so a torn or altered file is never accepted.
Directories are created 0700 and files 0600; nothing under the workdir is written through
a symbolic link (``open_private``, ``private_dir``): a link planted there (pointing at a
file outside) is removed or refused, never followed, so its target is never written.

Function runs (``sshmr.notebook``) may return results that JSON cannot carry exactly: the
worker pickles those (kind ``pickle``) and signs them with its host's HMAC key (one per host
and run), which the master sends as the first message on the channel (``key``), never on a
command line or in a file. The master verifies the signature before it loads anything, and
loads it with a restricted unpickler (``sshmr.record.safe_pickle``).
"""

from __future__ import annotations

import base64
import errno
import hashlib
import hmac
import json
import os
import shutil
from typing import Any, Dict, Optional

PROTOCOL_VERSION = 1
TAIL_BYTES = 4096
DONE_FILE = "done.json"
RESULT_FILE = "result"
PAYLOAD_FILE = "payload.json"
JOB_FILE = "job"  # "JOB MARK" as it starts: its job id, signed (see collect.py: adopting)
AGENT_LOCK = "agent.lock"  # in the run dir: flock'ed (shared) by live agents and workers
FILE_MARK = "$sshmr_file"  # payload placeholder {"$sshmr_file": name} for pushed input files


def encode(msg: Dict[str, Any]) -> bytes:
    return (json.dumps(msg, separators=(",", ":")) + "\n").encode()


def decode(line: bytes) -> Dict[str, Any]:
    msg = json.loads(line)
    if not isinstance(msg, dict) or "t" not in msg:
        raise ValueError("not a protocol message: %r" % line[:200])
    return msg


def inline_result(meta: Dict[str, Any]) -> Optional[bytes]:
    """The result carried in a ``done`` message or ``done.json`` (``r``: JSON text, ``rb``:
    base64), or None when it is in the attempt's ``result`` file. ValueError if undecodable."""
    if "r" in meta:
        return meta["r"].encode("utf-8", "surrogatepass")
    if "rb" in meta:
        return base64.b64decode(meta["rb"], validate=True)
    return None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def attempt_dir(run_dir: str, attempt_id: int) -> str:
    return os.path.join(run_dir, "a", str(attempt_id))


ATTEMPT_ENV = "SSHMR_ATTEMPT_DIR"  # a running job's attempt directory (its scratch space)
# Set while an agent imports the job's module: a module that starts a run when imported
# (no ``if __name__ == "__main__":``) would start itself again in every agent, for ever.
IMPORTING_ENV = "SSHMR_IMPORTING_JOB_MODULE"


def output_path(run_dir: str, slot: int, stream: str) -> str:
    """The file a slot's jobs write ``stream`` (stdout or stderr) to: one per slot, emptied
    when an attempt starts (creating two files per attempt costs more than the job on a
    busy ext4: each new inode is a scan of the recently deleted ones)."""
    return os.path.join(run_dir, "slot-%d.%s" % (slot, stream))


NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def open_private(path: str, flags: int = os.O_WRONLY | os.O_CREAT | os.O_TRUNC) -> int:
    """``os.open`` for writing (mode 0600) that never follows a symbolic link: a link at
    ``path`` is removed (the open refuses it: ELOOP), then the open is tried once more; a
    link planted meanwhile makes that one fail too."""
    try:
        return os.open(path, flags | NOFOLLOW, 0o600)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.EMLINK) and not os.path.islink(path):
            raise
    try:
        if os.path.islink(path):
            os.unlink(path)
    except FileNotFoundError:
        pass
    return os.open(path, flags | NOFOLLOW, 0o600)


def remove_dir(path: str) -> None:
    """Remove the directory ``path`` and what it holds, quietly. An attempt's directory
    holds only files: unlinked one by one (a symbolic link is removed, never followed);
    anything else (a subdirectory) goes through ``shutil.rmtree``."""
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                os.unlink(entry.path)
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError:
        shutil.rmtree(path, ignore_errors=True)


def private_dir(path: str) -> None:
    """Create the directory ``path`` and any missing parent, each 0700. An existing
    directory is fine; a symbolic link (even to a directory) or a file is refused."""
    try:
        os.mkdir(path, 0o700)
    except FileNotFoundError:
        parent = os.path.dirname(path)
        if not parent or parent == path:
            raise
        private_dir(parent)
        os.mkdir(path, 0o700)
    except FileExistsError:
        if os.path.islink(path) or not os.path.isdir(path):
            raise OSError(errno.ENOTDIR, "not a directory (a symbolic link or a file; sshmr"
                          " follows no link in its workdir)", path) from None


def write_atomic(path: str, data: bytes, sync: bool) -> None:
    """Write ``data`` to ``path`` through a temp file and a rename; fsync when ``sync``."""
    tmp = path + ".tmp"
    fd = open_private(tmp)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if sync:
        fsync_path(os.path.dirname(path) or ".")


def fsync_path(path: str) -> None:
    """fsync a file's data, or a directory's entries, by path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: str) -> tuple[str, int]:
    """(sha256 hex, size) of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def move_result_file(src: str, dest: str, sync: bool) -> tuple[str, int]:
    """Make the file ``src`` the result at ``dest`` (renamed, or copied across file
    systems); fsync when ``sync``. Returns its (sha256, size)."""
    digest, size = sha256_file(src)
    try:
        os.replace(src, dest)
    except OSError:  # another file system: copy through a temp file + rename
        with open(src, "rb") as f, os.fdopen(open_private(dest + ".tmp"), "wb") as out:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                out.write(chunk)
        os.replace(dest + ".tmp", dest)
        os.unlink(src)
    if sync:
        fsync_path(dest)
        fsync_path(os.path.dirname(dest) or ".")
    return digest, size


def read_tail(path: str, limit: int = TAIL_BYTES) -> str:
    """The last ``limit`` bytes of a file, decoded leniently ('' if missing)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace")
    return ("[... %d bytes before]\n" % (size - limit) + text) if size > limit else text


def is_disk_full(exc: BaseException) -> bool:
    """True for "no space left on device" (or a disk quota exceeded)."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def human_bytes(n: int) -> str:
    """1536 -> '1.5 KB' (binary units, like ``df -h``)."""
    if n < 1024:
        return "%d bytes" % n
    for unit in ("KB", "MB", "GB", "TB"):
        n /= 1024.0
        if n < 1024 or unit == "TB":
            return ("%.0f %s" if n >= 10 else "%.1f %s") % (n, unit)
    return "%d bytes" % n  # not reached


def free_bytes(path: str) -> Optional[int]:
    """Bytes an unprivileged process may still write on ``path``'s file system."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def no_space(path: str, free: Optional[int] = -1) -> str:
    """The one-line disk-full message: 'no space left on device in PATH (12 KB free); ...'.
    ``free``: the free bytes there, measured here when -1 (None: unknown)."""
    if free == -1:
        free = free_bytes(path)
    shown = human_bytes(free) if free is not None else "unknown space"
    return ("no space left on device in %s (%s free); free space there or set another"
            " workdir" % (path, shown))


def sign_result(key: bytes, attempt_id: int, data: bytes) -> str:
    """The HMAC-SHA256 of a pickled result under the run's key, bound to its attempt."""
    mac = hmac.new(key, b"sshmr-result:%d:" % attempt_id, hashlib.sha256)
    mac.update(data)
    return mac.hexdigest()


def is_plain_json(value: Any) -> bool:
    """True if ``value`` survives a JSON round trip unchanged: exactly dict (str keys), list,
    str, int, bool, None and finite floats, without shared or cyclic containers."""
    stack = [value]
    seen = set()
    while stack:
        v = stack.pop()
        t = type(v)
        if t is str or t is int or t is bool or v is None:
            continue
        if t is float:
            if v != v or v in (float("inf"), float("-inf")):
                return False
            continue
        if t is not list and t is not dict:
            return False
        if id(v) in seen:
            return False
        seen.add(id(v))
        if t is dict:
            if any(type(k) is not str for k in v):
                return False
            stack.extend(v.values())
        else:
            stack.extend(v)
    return True


def check_result_file(meta: Dict[str, Any], path: str) -> Optional[str]:
    """``check_result`` for a bytes result streamed to the file ``path``."""
    if meta.get("kind") != "bytes":
        return "only bytes results are streamed, not %r" % (meta.get("kind"),)
    digest, size = sha256_file(path)
    if size != meta.get("size"):
        return "result is %d bytes, expected %s" % (size, meta.get("size"))
    if digest != meta.get("sha"):
        return "result checksum mismatch"
    return None


def check_result(
    meta: Dict[str, Any], data: bytes, key: Optional[bytes] = None
) -> Optional[str]:
    """None if ``data`` is the result described by ``meta`` (size, sha256, valid JSON for a
    json result, for a pickle result a signature made with ``key``), else why not. Nothing
    here unpickles or runs; without ``key`` no pickle result is accepted."""
    if len(data) != meta.get("size"):
        return "result is %d bytes, expected %s" % (len(data), meta.get("size"))
    if sha256(data) != meta.get("sha"):
        return "result checksum mismatch"
    if meta.get("kind") == "json":
        try:
            json.loads(data)
        except ValueError:
            return "result is not valid JSON"
    elif meta.get("kind") == "pickle":
        attempt, sig = meta.get("a"), meta.get("sig")
        if key is None:
            return "a pickled result, but this run accepts none (only function runs do)"
        if not isinstance(attempt, int) or not isinstance(sig, str):
            return "pickled result without a signature"
        if not hmac.compare_digest(sig, sign_result(key, attempt, data)):
            return "pickled result's signature does not match this run's key"
    elif meta.get("kind") != "bytes":
        return "unknown result kind %r" % (meta.get("kind"),)
    return None
