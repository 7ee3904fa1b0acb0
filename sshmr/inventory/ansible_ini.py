"""Ansible's INI inventory format, read with the standard library (no ansible-core).

``[group]`` sections list hosts (``name [key=value ...]``, ranges and ``:port`` allowed),
``[group:children]`` child groups and ``[group:vars]`` group variables; hosts before any
section are ungrouped. Values are Python literals when they parse as one (``2222`` is an
int), else strings, as Ansible reads them. Errors name the file and line.
"""

from __future__ import annotations

import ast
import re
import shlex
import warnings
from typing import Any

from .ansible import Source, Var

SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
GROUP_LINE = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")


def looks_like_ini(text: str) -> bool:
    """Its first significant line is a ``[section]`` or a host line, not YAML."""
    for raw in text.splitlines():
        line = raw.strip()
        if line and line[0] not in "#;":
            return SECTION.match(line) is not None or (":" not in line and "=" in line)
    return False


def parse_value(text: str) -> Any:
    """Ansible's reading of an INI value: a Python literal if it is one, else the text."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def read_ini(text: str, src: Source) -> None:
    """Fill ``src`` with the groups, hosts and variables of INI ``text``."""
    group, state = "ungrouped", "hosts"
    pending: dict[str, tuple[str, int]] = {}  # group named but not declared -> (how, line)
    declared = {"all", "ungrouped"}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        m = SECTION.match(line)
        if m:
            group, state = m.group(1), m.group(2) or "hosts"
            if state not in ("hosts", "children", "vars"):
                raise src.fail(n, f"section [{group}:{state}] has an unknown type {state!r}"
                                  " (use [name], [name:children] or [name:vars])")
            src.group(group, n)
            if state == "vars" and group not in declared:
                pending.setdefault(group, ("vars", n))
            elif state != "vars":
                declared.add(group)
                pending.pop(group, None)
            continue
        if line.startswith("["):
            raise src.fail(n, f"invalid section line {line!r}; write [name], [name:children] or"
                              " [name:vars], with no spaces inside the brackets")
        if state == "hosts":
            _host_line(line, n, group, src)
        elif state == "children":
            child = GROUP_LINE.match(line)
            if not child:
                raise src.fail(n, f"expected a group name in [{group}:children], got {line!r}")
            name = child.group(1)
            if name not in declared:
                pending.setdefault(name, ("children", n))
            src.group(name, n)
            if name == group or name == "all":
                raise src.fail(n, f"group {group!r} cannot have {name!r} as a child")
            src.add_child(group, name)
        else:
            key, eq, value = line.partition("=")
            if not eq or not key.strip():
                raise src.fail(n, f"expected key=value in [{group}:vars], got {line!r}")
            src.groups[group].vars[key.strip()] = Var(parse_value(value.strip()), n)
    for name, (how, n) in pending.items():
        if how == "vars":
            raise src.fail(n, f"section [{name}:vars] is for a group that is never declared;"
                              f" add a [{name}] section or fix the name")
        raise src.fail(n, f"[..:children] names group {name!r}, which is never declared; add"
                          f" a [{name}] section or fix the name")


def _host_line(line: str, n: int, group: str, src: Source) -> None:
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as e:
        raise src.fail(n, f"cannot read host line {line!r}: {e}") from None
    if not tokens:
        return
    hvars: dict[str, Var] = {}
    for token in tokens[1:]:
        key, eq, value = token.partition("=")
        if not eq or not key:
            raise src.fail(n, f"host {tokens[0]!r}: expected key=value, got {token!r}"
                              " (no spaces inside a [begin:end] range)")
        hvars[key] = Var(parse_value(value), n)
    src.add_hosts(group, tokens[0], n, hvars)
