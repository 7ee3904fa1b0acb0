"""Reading an OpenSSH known_hosts file the way ``ssh`` reads it.

Each line is ``[marker] patterns keytype base64 [comment]``. Like OpenSSH, a line that
cannot be read (too few fields, bad base64, a key type paramiko does not know) is skipped,
never fatal; sshmr says so once per file and line on stderr
(``sshmr: warning: ~/.ssh/known_hosts line 3: ...; skipped``). Patterns are hostnames,
``[host]:port`` names, hashed names (``|1|salt|hash``) or wildcards (``*``, ``?``), with
``!`` negation. The ``@revoked`` marker lists keys that are refused for the hosts its
patterns match; ``@cert-authority`` lines (certificate host keys) are not supported:
they are skipped with a warning, and the host must be listed with its own key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import sys
import threading
from dataclasses import dataclass, field

import paramiko

_WARNED: set[tuple[str, int]] = set()
_WARNED_LOCK = threading.Lock()


@dataclass
class KnownHostsFile:
    """What a known_hosts file says: host keys and revoked keys, each with its patterns."""

    path: str
    keys: list[tuple[list[str], paramiko.PKey]] = field(default_factory=list)
    revoked: list[tuple[list[str], paramiko.PKey]] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line number, why)

    def keys_for(self, name: str) -> list[paramiko.PKey]:
        """The host keys recorded for ``name`` (``host`` or ``[host]:port``)."""
        return [key for patterns, key in self.keys if matches(patterns, name)]

    def is_revoked(self, name: str, key: paramiko.PKey) -> bool:
        return any(k == key and matches(p, name) for p, k in self.revoked)


def shown_path(path: str) -> str:
    """``path`` with the home directory written as ``~`` (as users know the file)."""
    home = os.path.expanduser("~")
    if home not in ("", "/") and path.startswith(home + os.sep):
        return "~" + path[len(home):]
    return path


def load(path: str, warn: bool = True) -> KnownHostsFile:
    """Read ``path`` (missing: empty); lines that cannot be read are skipped (warned once).

    Raises ``OSError`` if the file exists but cannot be read.
    """
    found = KnownHostsFile(path)
    if not os.path.exists(path):
        return found
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            problem = _parse_line(found, line)
            if problem:
                found.skipped.append((number, problem))
    if warn:
        for number, problem in found.skipped:
            _warn_once(path, number, problem)
    return found


def _parse_line(found: KnownHostsFile, line: str) -> str | None:
    """Add the line's key to ``found``; or say why it is skipped (None: nothing to say)."""
    fields = line.split()
    if not fields or fields[0].startswith("#"):
        return None
    marker = ""
    if fields[0].startswith("@"):
        marker, fields = fields[0], fields[1:]
        if marker == "@cert-authority":
            return ("@cert-authority (certificate host keys) is not supported by sshmr; list"
                    " the hosts' own keys instead")
        if marker != "@revoked":
            return f"unknown marker {marker!r}"
    if len(fields) < 3:
        return "not a known_hosts line (want: host keytype key)"
    patterns, keytype, data = fields[0].split(","), fields[1], fields[2]
    try:
        blob = base64.b64decode(data.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeError):
        return "not a known_hosts line (its key is not base64)"
    try:
        key = paramiko.PKey.from_type_string(keytype, blob)
    except paramiko.UnknownKeyType:
        return f"key type {keytype!r} is not supported"
    except (paramiko.SSHException, ValueError, TypeError, IndexError) as exc:
        return f"the {keytype} key cannot be read ({exc})"
    (found.revoked if marker else found.keys).append((patterns, key))
    return None


def _warn_once(path: str, number: int, problem: str) -> None:
    with _WARNED_LOCK:
        if (path, number) in _WARNED:
            return
        _WARNED.add((path, number))
    sys.stderr.write(f"sshmr: warning: {shown_path(path)} line {number}: {problem}; skipped\n")
    sys.stderr.flush()


def matches(patterns: list[str], name: str) -> bool:
    """OpenSSH's host pattern list: any positive match and no negated one."""
    name = name.lower()
    hit = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern[1:] if negated else pattern
        if _one(pattern, name):
            if negated:
                return False
            hit = True
    return hit


def _one(pattern: str, name: str) -> bool:
    if pattern.startswith("|1|"):
        try:
            _, _, salt, digest = pattern.split("|")
            mac = hmac.new(base64.b64decode(salt), name.encode(), hashlib.sha1).digest()
            return hmac.compare_digest(mac, base64.b64decode(digest))
        except (ValueError, binascii.Error):
            return False
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                    for c in pattern.lower())
    return re.fullmatch(regex, name) is not None
