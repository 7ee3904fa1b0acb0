"""What a host may say: every message and commit marker a host sends, checked before the
master uses any of it.

A host is not trusted (see the README's delivery promise): whatever its agent, its files or
its SFTP server send is data to check. ``check_message`` takes one decoded protocol message
and returns a clean copy that holds only the fields its type defines, each of the right
type and within its bounds, with every text made printable (``printable``); anything else
is a ``ProtocolViolation``, after which the master uses the host no more in this run. So a
message can neither crash the master (a dict where an int belongs, a lone surrogate SQLite
cannot store) nor carry terminal escapes into the live view, ``show`` or a log line.
``host_key`` derives the key a host signs pickled results with: one per host and run, so a
host cannot sign a result as another host. ``job_mark`` signs the (attempt, job) pair of a
run message with the run's dispatch key, which never leaves the master: the worker writes
it next to the job id in the attempt's ``job`` file, so ``sshmr resume`` adopts an attempt
the journal lost only for the job it was really sent for.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections.abc import Callable
from typing import Any

MAX_LINE = 4 << 20  # bytes in one protocol line (results up to inline_limit ride in one)
MAX_SLOTS = 1024  # slots a host may claim from its CPU count ("ready")
MAX_INT = 1 << 62
TEXT = {"error": 8192, "tb": 65536, "out": 8192, "err": 8192, "python": 100, "reason": 64,
        "status": 32}
STATUSES = frozenset({"ok", "error", "system", "timeout", "max_living", "worker_died",
                      "cancelled", "speculation", "exit", "retired", "host_lost",
                      "not_started", "killed", "setup"})
KINDS = frozenset({"json", "bytes", "pickle"})
# C0 and C1 controls but newline and tab, DEL, lone surrogates, and the bidirectional
# overrides that make text read other than it is (U+202A-U+202E, U+2066-U+2069).
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
                          "\ud800-\udfff]")


class ProtocolViolation(ValueError):
    """A host said something no honest agent says."""


def printable(text: str) -> str:
    """``text`` with every control character shown escaped (``\\x1b``, ``\\u202e``)."""
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def host_key(run_key: bytes, host: str) -> bytes:
    """The key host ``host`` signs its pickled results with in this run."""
    return hmac.new(run_key, b"sshmr-host:" + host.encode(), hashlib.sha256).digest()


def job_mark(dispatch_key: bytes, attempt: int, job: int) -> str:
    """The dispatch key's signature of "attempt ``attempt`` runs job ``job``"."""
    return job_marker(dispatch_key)(attempt, job)


def job_marker(dispatch_key: bytes) -> Callable[[int, int], str]:
    """``job_mark`` with the key set up once (a copy of a keyed HMAC per mark, not a new
    one: the master marks every run message)."""
    keyed = hmac.new(dispatch_key, b"sshmr-job:", hashlib.sha256)

    def mark(attempt: int, job: int) -> str:
        mac = keyed.copy()
        mac.update(b"%d:%d" % (attempt, job))
        return mac.hexdigest()[:32]

    return mark


def _int(msg: dict, key: str, *, low: int = 0, optional: bool = False) -> int | None:
    value = msg.get(key)
    if value is None and optional:
        return None
    if type(value) is not int or not low <= value < MAX_INT:
        raise ProtocolViolation(f"{key!r} is {_shown(value)}, not a whole number >= {low}")
    return value


def _number(msg: dict, key: str, *, optional: bool = True) -> float | None:
    value = msg.get(key)
    if value is None and optional:
        return None
    if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
        raise ProtocolViolation(f"{key!r} is {_shown(value)}, not a number >= 0")
    return float(value)


def _text(msg: dict, key: str, *, optional: bool = True) -> str | None:
    value = msg.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ProtocolViolation(f"{key!r} is {_shown(value)}, not text")
    limit = TEXT.get(key, 1024)
    if len(value) > limit:  # the end of a traceback or an output tail says the most
        cut = len(value) - limit
        value = (f"[... {cut} characters cut]\n{value[cut:]}" if key in ("tb", "out", "err")
                 else f"{value[:limit]} [... {cut} characters cut]")
    return printable(value)


def _flag(msg: dict, key: str) -> bool:
    value = msg.get(key, False)
    if type(value) is not bool:
        raise ProtocolViolation(f"{key!r} is {_shown(value)}, not true or false")
    return value


def _shown(value: Any) -> str:
    text = repr(value)
    return printable(text[:60] + ("..." if len(text) > 60 else ""))


def check_message(msg: dict) -> dict:
    """A clean copy of agent message ``msg`` (see the module docstring)."""
    kind = msg.get("t")
    if kind == "hb":
        return {"t": "hb"}
    if kind == "ack":
        return {"t": "ack", "a": _int(msg, "a", low=1)}
    if kind == "done":
        return {"t": "done", **check_done(msg)}
    if kind == "up":
        return {"t": "up", "slot": _int(msg, "slot"), "life": _number(msg, "life"),
                "pid": _int(msg, "pid", optional=True)}
    if kind == "down":
        return {"t": "down", "slot": _int(msg, "slot"), "reason": _text(msg, "reason") or "",
                "exit": _exit(msg), "error": _text(msg, "error"), "tb": _text(msg, "tb")}
    if kind == "ready":
        cpus = _int(msg, "cpus", low=1)
        return {"t": "ready", "pid": _int(msg, "pid", optional=True), "v": msg.get("v"),
                "cpus": min(cpus, MAX_SLOTS), "python": _text(msg, "python") or "?"}
    raise ProtocolViolation(f"unknown message type {_shown(kind)}")


def _exit(msg: dict) -> int | None:
    value = msg.get("exit")
    if value is not None and (type(value) is not int or abs(value) >= MAX_INT):
        raise ProtocolViolation(f"'exit' is {_shown(value)}, not an exit code")
    return value


def check_done(msg: dict) -> dict:
    """The fields of a ``done`` message, or of a commit marker (``done.json``) on a host."""
    status = msg.get("status")
    if status not in STATUSES:
        raise ProtocolViolation(f"unknown attempt status {_shown(status)}")
    out: dict[str, Any] = {"a": _int(msg, "a", low=1), "status": status,
                           "dur": _number(msg, "dur"), "exit": _exit(msg),
                           "error": _text(msg, "error"), "tb": _text(msg, "tb"),
                           "out": _text(msg, "out"), "err": _text(msg, "err"),
                           "q": _flag(msg, "q"), "nospace": _flag(msg, "nospace")}
    if status != "ok":
        return out
    kind = msg.get("kind")
    if kind not in KINDS:
        raise ProtocolViolation(f"unknown result kind {_shown(kind)}")
    sha = msg.get("sha")
    if not isinstance(sha, str) or not re.fullmatch("[0-9a-f]{64}", sha):
        raise ProtocolViolation(f"'sha' is {_shown(sha)}, not a SHA-256")
    out.update(kind=kind, sha=sha, size=_int(msg, "size"))
    for key in ("r", "rb", "sig"):
        if key in msg:
            if not isinstance(msg[key], str):
                raise ProtocolViolation(f"{key!r} is {_shown(msg[key])}, not text")
            out[key] = msg[key]
    return out
