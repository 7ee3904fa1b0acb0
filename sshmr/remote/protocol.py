"""The wire and disk formats shared by the master and the remote runtime (stdlib only).

Control channel: one JSON object per line, both ways, over the agent's stdin/stdout.
Every message has ``t`` (its type). Master -> agent: ``start`` (fork slot's worker),
``run`` (an attempt), ``kill``, ``retire``, ``release`` (attempt dirs may go),
``hb``, ``exit``. Agent -> master: ``ready``, ``up``/``down`` (a slot's worker), ``ack``,
``done`` (an attempt ended, with status), ``hb``, ``log``.

Remote disk, under the host's workdir (0700)::

    code/<sha>/              content-addressed runtime + user code (pushed once)
    runs/<run_id>/a/<id>/    one attempt: payload.json, input files, stdout, stderr,
                             result (json text or raw bytes), done.json (commit marker)

A result is written to ``result.tmp``, fsynced when asked, renamed to ``result``; then
``done.json`` (status, kind, sha256, size, error) is written the same way. A result is
taken only if its sha256 matches, so a torn or altered file is never accepted.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Dict, Optional

PROTOCOL_VERSION = 1
TAIL_BYTES = 4096
DONE_FILE = "done.json"
RESULT_FILE = "result"
PAYLOAD_FILE = "payload.json"
FILE_MARK = "$sshmr_file"  # payload placeholder {"$sshmr_file": name} for pushed input files


def encode(msg: Dict[str, Any]) -> bytes:
    return (json.dumps(msg, separators=(",", ":")) + "\n").encode()


def decode(line: bytes) -> Dict[str, Any]:
    msg = json.loads(line)
    if not isinstance(msg, dict) or "t" not in msg:
        raise ValueError("not a protocol message: %r" % line[:200])
    return msg


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def attempt_dir(run_dir: str, attempt_id: int) -> str:
    return os.path.join(run_dir, "a", str(attempt_id))


def write_atomic(path: str, data: bytes, sync: bool) -> None:
    """Write ``data`` to ``path`` through a temp file and a rename; fsync when ``sync``."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
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
        dfd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


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


def check_result(meta: Dict[str, Any], data: bytes) -> Optional[str]:
    """None if ``data`` is the result described by ``meta`` (size, sha256, and valid JSON
    for a json result), else why not. Results are data: nothing here unpickles or runs."""
    if len(data) != meta.get("size"):
        return "result is %d bytes, expected %s" % (len(data), meta.get("size"))
    if sha256(data) != meta.get("sha"):
        return "result checksum mismatch"
    if meta.get("kind") == "json":
        try:
            json.loads(data)
        except ValueError:
            return "result is not valid JSON"
    elif meta.get("kind") != "bytes":
        return "unknown result kind %r" % (meta.get("kind"),)
    return None
