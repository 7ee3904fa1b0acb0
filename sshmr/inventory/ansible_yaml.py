"""Ansible's YAML inventory format (``all: children: hosts: vars:``), read with PyYAML.

Every top-level key is a group; a group is a mapping of ``hosts`` (host pattern -> its
variables, or nothing), ``vars`` and ``children`` (group name -> group). ``is_ansible_yaml``
tells this form from sshmr's own inventory YAML (whose ``hosts:`` is a list).
"""

from __future__ import annotations

from typing import Any

from .ansible import Source, Var
from .model import TOP_KEYS
from .yaml_lines import LineList, LineMap, type_name

GROUP_KEYS = ("hosts", "vars", "children")


def is_ansible_yaml(data: Any) -> bool:
    """A mapping of groups (each a mapping of hosts/vars/children, or empty), not sshmr's
    ``hosts:``-list form."""
    if not isinstance(data, LineMap) or not data or isinstance(data.get("hosts"), LineList):
        return False
    if all(key in TOP_KEYS for key in data) and "all" not in data:
        return False
    return all(v is None or (isinstance(v, LineMap) and set(v) <= set(GROUP_KEYS))
               for v in data.values())


def read_yaml(data: LineMap, src: Source) -> None:
    """Fill ``src`` with the groups, hosts and variables of the parsed YAML ``data``."""
    for name in data:
        _group(str(name), data[name], data.key_lines[name], None, src)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _vars(m: Any, line: int, what: str, src: Source) -> dict[str, Var]:
    if m is None:
        return {}
    if not isinstance(m, LineMap):
        raise src.fail(line, f"{what}: expected a mapping of variables, got {type_name(m)}")
    return {str(k): Var(_plain(v), m.value_lines[k]) for k, v in m.items()}


def _group(name: str, body: Any, line: int, parent: str | None, src: Source) -> None:
    src.group(name, line)
    if parent is not None:
        if name == "all" or name == parent:
            raise src.fail(line, f"group {parent!r} cannot have {name!r} as a child")
        src.add_child(parent, name)
    if body is None:
        return
    if not isinstance(body, LineMap):
        raise src.fail(line, f"group {name!r}: expected a mapping with hosts, vars or children,"
                             f" got {type_name(body)}")
    for key in body:
        if key not in GROUP_KEYS:
            raise src.fail(body.key_lines[key], f"group {name!r}: unknown key {key!r} (a group"
                                                " has hosts, vars and children)")
    src.groups[name].vars.update(_vars(body.get("vars"), body.value_lines.get("vars", line),
                                       f"group {name!r} vars", src))
    hosts = body.get("hosts")
    if hosts is not None and not isinstance(hosts, LineMap):
        raise src.fail(body.value_lines["hosts"], f"group {name!r}: hosts must be a mapping of"
                       f" host name to its variables (or nothing), got {type_name(hosts)}")
    for host in hosts or {}:
        hline = hosts.key_lines[host]
        hvars = _vars(hosts[host], hline, f"host {host!r}", src)
        src.add_hosts(name, str(host), hline, hvars)
    children = body.get("children")
    if children is not None and not isinstance(children, LineMap):
        raise src.fail(body.value_lines["children"], f"group {name!r}: children must be a"
                       f" mapping of group names, got {type_name(children)}")
    for child in children or {}:
        _group(str(child), children[child], children.key_lines[child], name, src)
