"""Host names and host patterns as Ansible writes them, without Ansible.

``expand_range`` turns ``web[01:20].example.com``, ``db[a:f]`` and ``n[0:100:10]`` into
names; ``split_port`` takes ``host:port`` apart; ``select`` picks host names with a
``--hosts`` pattern: groups, names, globs (``web*``), ``~regex``, unions (``a:b``, ``a,b``),
intersections (``&x``) and exclusions (``!x``). Problems are ``ValueError`` with a one-line
message; the callers add the file and line.
"""

from __future__ import annotations

import fnmatch
import re
import string
from collections.abc import Mapping, Sequence

_RANGE = re.compile(r"\[([^\[\]]*:[^\[\]]*)\]")  # [beg:end] or [beg:end:step]
_TERMS = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")  # ':'-separated terms; [a:b] kept whole
_PORT = re.compile(r"^(.*[^:]):(\d+)$")
_GLOB = frozenset("*?[")
_IPV6 = re.compile(r"^[0-9A-Fa-f:.]+(%\S+)?$")


def has_range(name: str) -> bool:
    return _RANGE.search(name) is not None


def expand_range(name: str) -> list[str]:
    """Every name ``name``'s ``[beg:end(:step)]`` ranges stand for, in order (Ansible's
    rules: zero-padded numbers keep their width, letters a-z/A-Z, step default 1)."""
    m = _RANGE.search(name)
    if m is None:
        return [name]
    head, tail = name[:m.start()], name[m.end():]
    bounds = m.group(1).split(":")
    if len(bounds) not in (2, 3):
        raise ValueError(f"range [{m.group(1)}] must be [begin:end] or [begin:end:step]")
    beg, end = bounds[0] or "0", bounds[1]
    if not end:
        raise ValueError(f"range [{m.group(1)}] has no end value")
    try:
        step = int(bounds[2]) if len(bounds) == 3 else 1
    except ValueError:
        raise ValueError(f"range [{m.group(1)}]: step {bounds[2]!r} is not a number") from None
    if step < 1:
        raise ValueError(f"range [{m.group(1)}]: step must be 1 or more")
    if beg in string.ascii_letters and end in string.ascii_letters:
        i, j = string.ascii_letters.index(beg), string.ascii_letters.index(end)
        seq = list(string.ascii_letters[i:j + 1:step])
    elif beg.isdigit() and end.isdigit():
        width = len(beg) if beg.startswith("0") and len(beg) > 1 else 0
        if width and len(end) != width:
            raise ValueError(f"range [{m.group(1)}]: a zero-padded begin needs an end of the"
                             " same width")
        seq = [str(n).zfill(width) for n in range(int(beg), int(end) + 1, step)]
    else:
        raise ValueError(f"range [{m.group(1)}] must be numbers (01:20) or letters (a:f)")
    if not seq:
        raise ValueError(f"range [{m.group(1)}] in {name!r} expands to no host (begin > end)")
    return [out for part in seq for out in expand_range(head + part + tail)]


def split_port(pattern: str) -> tuple[str, int | None]:
    """``host:2222`` -> (``host``, 2222); ``[::1]:22`` -> (``::1``, 22); else no port.
    A bare IPv6 address (more than one ':' outside brackets) has no port."""
    if pattern.startswith("[") and "]:" in pattern:
        addr, _, port = pattern[1:].partition("]:")
        if _IPV6.match(addr) and ("::" in addr or addr.count(":") > 2):  # not a [1:3] range
            return addr, int(port) if port.isdigit() else None
    outside = _RANGE.sub("", pattern)
    m = _PORT.match(pattern)
    if m and outside.count(":") == 1:
        return m.group(1), int(m.group(2))
    return pattern, None


def split_pattern(pattern: str) -> list[str]:
    """The terms of a host pattern: split on ',' if it has one, else on ':' outside [ ]."""
    if "," in pattern:
        terms = [t.strip() for t in pattern.split(",")]
    else:
        terms = _TERMS.findall(pattern)
    return [t for t in terms if t]


def _match_term(term: str, names: Sequence[str],
                groups: Mapping[str, Sequence[str]]) -> set[str]:
    if term in ("all", "*"):
        return set(names)
    if term.startswith("~"):
        try:
            rx = re.compile(term[1:])
        except re.error as e:
            raise ValueError(f"{term!r} is not a regular expression ({e})") from None
        matches = rx.match
    else:
        matches = re.compile(fnmatch.translate(term)).match
    found: set[str] = set()
    matched_groups = [g for g in groups if matches(g)]
    for g in matched_groups:
        found.update(groups[g])
    if not matched_groups or term.startswith("~") or _GLOB & set(term) or "." in term:
        found.update(n for n in names if matches(n))
    return found


def select(pattern: str, names: Sequence[str],
           groups: Mapping[str, Sequence[str]]) -> list[str]:
    """The names (in ``names`` order) that ``pattern`` selects. A term matching nothing,
    or a pattern selecting no host at all, is a ``ValueError``."""
    terms = split_pattern(pattern)
    if not terms:
        raise ValueError(f"--hosts {pattern!r} names no group or host")
    chosen: set[str] = set()
    keep: set[str] | None = None
    drop: set[str] = set()
    for term in terms:
        bare = term[1:] if term[0] in "!&" else term
        if not bare:
            raise ValueError(f"--hosts {pattern!r}: {term!r} needs a name after {term[0]!r}")
        found = _match_term(bare, names, groups)
        if not found:
            raise ValueError(f"--hosts {pattern!r}: no group or host matches {bare!r}"
                             f" ({_known(names, groups)})")
        if term[0] == "!":
            drop |= found
        elif term[0] == "&":
            keep = found if keep is None else keep & found
        else:
            chosen |= found
    if not chosen and all(t[0] in "!&" for t in terms):  # "!db": everything but db
        chosen = set(names)
    picked = [n for n in names if n in chosen and n not in drop and (keep is None or n in keep)]
    if not picked:
        raise ValueError(f"--hosts {pattern!r} selects no host ({_known(names, groups)})")
    return picked


def _known(names: Sequence[str], groups: Mapping[str, Sequence[str]]) -> str:
    def some(items: list[str]) -> str:
        return ", ".join(items[:8]) + (f", ... ({len(items)} in all)" if len(items) > 8 else "")

    shown = [g for g in groups if g not in ("all", "ungrouped")]
    return (f"groups: {some(shown)}; " if shown else "") + f"hosts: {some(list(names))}"
