"""Ansible inventories read without Ansible: the groups, hosts and variables that the INI
and YAML readers (``ansible_ini``, ``ansible_yaml``) find, and how they become ``Host``
records.

Variables inherit as in Ansible: a host gets the vars of every group it is in and of their
ancestors, merged in order of group depth (``all`` first, a child group after its parent),
then ``ansible_group_priority``, then name; its own vars come last. The variables sshmr
reads (``VAR_FIELDS``) are validated like the sshmr YAML inventory's fields, with the
``file:line`` of the line that set them. Unknown ``sshmr_*`` variables and Ansible
connection settings sshmr cannot honour get one warning each; other variables (playbook
variables) are ignored.
"""

from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import InventoryError, SshmrWarning
from .model import DEFAULT_KNOWN_HOSTS, DEFAULT_SSH_CONFIG, Host, Inventory
from .patterns import expand_range, split_port

if TYPE_CHECKING:
    from .parse import _Parser

# Ansible variable -> sshmr Host field; the first one set wins.
VAR_FIELDS: dict[str, tuple[str, ...]] = {
    "port": ("ansible_port", "ansible_ssh_port"),
    "user": ("ansible_user", "ansible_ssh_user"),
    "identity_file": ("ansible_ssh_private_key_file", "ansible_private_key_file"),
    "slots": ("sshmr_slots",),
    "python": ("sshmr_python", "ansible_python_interpreter"),
    "workdir": ("sshmr_workdir",),
    "connect_timeout": ("sshmr_connect_timeout", "ansible_ssh_timeout", "ansible_timeout"),
}
HOSTNAME_VARS = ("ansible_host", "ansible_ssh_host")
FILE_VARS = ("sshmr_known_hosts", "sshmr_ssh_config")  # inventory-wide: the 'all' group's
KNOWN = frozenset(v for names in VAR_FIELDS.values() for v in names) | {
    *HOSTNAME_VARS, *FILE_VARS, "ansible_group_priority", "ansible_connection"}
NOT_HONOURED = ("ansible_password", "ansible_ssh_pass", "ansible_ssh_password",
                "ansible_ssh_common_args", "ansible_ssh_extra_args", "ansible_ssh_args",
                "ansible_ssh_executable", "ansible_host_key_checking")
SSH_CONNECTIONS = ("ssh", "smart", "paramiko", "paramiko_ssh")


@dataclass
class Var:
    value: Any
    line: int


@dataclass
class Group:
    name: str
    line: int
    vars: dict[str, Var] = field(default_factory=dict)
    children: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)


class Source:
    """What a reader found in an Ansible inventory file, before inheritance."""

    def __init__(self, parser: _Parser, kind: str) -> None:
        self.parser, self.kind = parser, kind
        self.groups: dict[str, Group] = {"all": Group("all", 1), "ungrouped": Group("ungrouped", 1)}
        self.host_vars: dict[str, dict[str, Var]] = {}  # in order of first appearance
        self.host_lines: dict[str, int] = {}
        self.flat: dict[str, set[str]] = {}  # group -> its hosts and its children's

    def fail(self, line: int | None, msg: str) -> InventoryError:
        return self.parser.fail(line, "", msg)

    def group(self, name: str, line: int) -> Group:
        if name not in self.groups:
            self.groups[name] = Group(name, line)
        return self.groups[name]

    def add_child(self, parent: str, child: str) -> None:
        if child not in self.groups[parent].children:
            self.groups[parent].children.append(child)
            self.groups[child].parents.append(parent)

    def add_hosts(self, group: str, pattern: str, line: int, hvars: dict[str, Var]) -> None:
        """Add the hosts ``pattern`` (ranges, ``:port``) stands for to ``group``."""
        name, port = split_port(pattern)
        try:
            names = expand_range(name)
        except ValueError as e:
            raise self.fail(line, f"host {pattern!r}: {e}") from None
        for host in names:
            own = self.host_vars.setdefault(host, {})
            self.host_lines.setdefault(host, line)
            if port is not None:
                own["ansible_port"] = Var(port, line)
            own.update(hvars)
            if host not in self.groups[group].hosts:
                self.groups[group].hosts.append(host)

    def settle(self) -> dict[str, dict[str, Var]]:
        """Ansible's implicit structure (parentless groups under 'all', hosts of no group
        in 'ungrouped'), then each host's variables after inheritance, in host order."""
        all_group = self.groups["all"]
        for g in self.groups.values():
            if g.name != "all" and not g.parents:
                self.add_child("all", g.name)
        in_a_group = {h for g in self.groups.values() if g.name != "all" for h in g.hosts}
        ungrouped = self.groups["ungrouped"].hosts
        ungrouped += [h for h in self.host_vars if h not in in_a_group and h not in ungrouped]
        all_group.hosts.clear()  # as Ansible: 'all' has every host through its children
        depth = self._depths()
        self.flat = {g: self._flatten(g) for g in self.groups}
        merged_all: dict[str, dict[str, Var]] = {}
        for host, own in self.host_vars.items():
            groups = sorted((g for g in self.groups if host in self.flat[g]),
                            key=lambda g: (depth[g], _priority(self.groups[g]), g))
            merged: dict[str, Var] = {}
            for g in groups:
                merged.update(self.groups[g].vars)
            merged.update(own)
            merged_all[host] = merged
        return merged_all

    def inventory(self) -> Inventory:
        """Inheritance applied, variables mapped: the ``Inventory``."""
        host_vars = self.settle()
        if not host_vars:
            raise self.fail(None, "no hosts in this Ansible inventory")
        file_vars = {k: v for k, v in self.groups["all"].vars.items() if k in FILE_VARS}
        p = self.parser
        if "sshmr_known_hosts" in file_vars:
            v = file_vars["sshmr_known_hosts"]
            known_hosts = p.path_value(v.value, v.line, "sshmr_known_hosts")
        else:
            known_hosts = p.resolve(DEFAULT_KNOWN_HOSTS)
        if "sshmr_ssh_config" in file_vars:
            v = file_vars["sshmr_ssh_config"]
            p.use_ssh_config(v.value, v.line)
        else:
            p.use_ssh_config(DEFAULT_SSH_CONFIG, None)
        warned: set[str] = set()
        entries: list[tuple[Host, int]] = []
        for host, merged in host_vars.items():
            self._warn_unknown(merged, warned, host)
            entries.append((self._host(host, merged), self.host_lines[host]))
        hosts = p.name_hosts(entries)
        names = [h.name for h in hosts]
        groups_out = {g: tuple(n for n in names if n in self.flat[g]) for g in self.groups}
        return Inventory(p.abs_path, hosts, known_hosts, p.config_path, groups_out, self.kind)

    def _depths(self) -> dict[str, int]:
        """Each group's longest distance from 'all'; a cycle of children is an error."""
        depth: dict[str, int] = {}

        def visit(name: str, d: int, path: tuple[str, ...]) -> None:
            for child in self.groups[name].children:
                if child in path:
                    line = self.groups[child].line
                    raise self.fail(line, f"group {child!r} is its own ancestor "
                                          f"({' -> '.join(path + (child,))})")
                if depth.get(child, -1) < d + 1:
                    depth[child] = d + 1
                    visit(child, d + 1, path + (child,))

        depth["all"] = 0
        visit("all", 0, ("all",))
        for g in self.groups.values():  # not below 'all': only a cycle has no way up
            if g.name not in depth:
                raise self.fail(g.line, f"group {g.name!r} is its own ancestor (a cycle of"
                                        " [..:children] / children: entries)")
        return depth

    def _flatten(self, name: str) -> set[str]:
        g = self.groups[name]
        return set(g.hosts).union(*(self._flatten(c) for c in g.children))

    def _warn_unknown(self, merged: dict[str, Var], warned: set[str], host: str) -> None:
        for key, var in merged.items():
            if key in warned:
                continue
            why = None
            if key.startswith("sshmr_") and key not in KNOWN:
                sshmr_vars = sorted(k for k in KNOWN if k.startswith("sshmr_"))
                close = difflib.get_close_matches(key, sshmr_vars, n=1)
                why = ("is not a variable sshmr reads" +
                       (f" (did you mean {close[0]!r}?)" if close else
                        f" (it reads {', '.join(sshmr_vars)})"))
            elif key in NOT_HONOURED:
                why = "is not honoured by sshmr (it uses keys, ssh_config and known_hosts)"
            elif key == "ansible_connection" and var.value not in SSH_CONNECTIONS:
                why = f"{var.value!r} is not honoured: sshmr connects over SSH"
            elif key in FILE_VARS and var is not self.groups["all"].vars.get(key):
                why = "is read from the 'all' group's vars only"
            if why:
                warned.add(key)
                where = f"{self.parser.display}:{var.line}"
                warnings.warn(f"{where}: {key} {why}; ignored (host {host})", SshmrWarning,
                              stacklevel=2)

    def _host(self, name: str, merged: dict[str, Var]) -> Host:
        p = self.parser
        line = self.host_lines[name]
        p.check_name(name, line, f"host {name!r}")
        own: dict[str, Any] = {}
        for key, names in VAR_FIELDS.items():
            var_name = next((n for n in names if n in merged), None)
            if var_name is None:
                continue
            var = merged[var_name]
            value = var.value
            if var_name == "ansible_python_interpreter" and str(value).startswith("auto"):
                continue
            if key in ("port", "slots", "connect_timeout") and isinstance(value, str):
                value = _number(value)
            own[key] = p.field(key, value, var.line, f"{name} {var_name}")
        hostname = None
        var_name = next((n for n in HOSTNAME_VARS if n in merged), None)
        if var_name is not None:
            var = merged[var_name]
            hostname = p.check_name(var.value, var.line, f"{name} {var_name}")
        return p.resolve_host(name, line, f"host {name!r}", own, hostname)


def _priority(group: Group) -> int:
    var = group.vars.get("ansible_group_priority")
    try:
        return int(var.value) if var is not None else 1
    except (TypeError, ValueError):
        return 1


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text
