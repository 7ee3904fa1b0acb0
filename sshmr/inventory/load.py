"""Reading an inventory: which format a file is in, the ``--hosts`` selection, and the
inventory made of ``~/.ssh/config`` ``Host`` aliases when no file is given.

Formats: an Ansible INI inventory (``.ini``/``.cfg``, or INI content), an Ansible YAML
inventory (``all: children: ...``) or sshmr's own YAML (``hosts:`` list), told apart by
extension first, then by content.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace

from ..errors import InventoryError
from .ansible import Source
from .ansible_ini import looks_like_ini, read_ini
from .ansible_yaml import is_ansible_yaml, read_yaml
from .model import DEFAULT_KNOWN_HOSTS, DEFAULT_SSH_CONFIG, Inventory
from .parse import _Parser
from .patterns import select
from .yaml_lines import LineMap

INI_EXTENSIONS = (".ini", ".cfg")
YAML_EXTENSIONS = (".yaml", ".yml", ".json")
_HOST_KEYWORD = re.compile(r"^\s*host(?:\s+|\s*=\s*)(.*)$", re.IGNORECASE)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise InventoryError(f"{path}: cannot read file: [Errno {e.errno}] {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise InventoryError(f"{path}: cannot read file: not UTF-8 text ({e.reason})") from None


def parse_any(text: str, path: str) -> Inventory:
    """Parse ``text`` (from ``path``) in whichever format it is in."""
    parser = _Parser(path)
    ext = os.path.splitext(path)[1].lower()
    if ext in INI_EXTENSIONS or (ext not in YAML_EXTENSIONS and looks_like_ini(text)):
        return _ini(text, parser)
    try:
        data = parser.load_yaml(text)
    except InventoryError:
        if ext in YAML_EXTENSIONS:
            raise
        return _ini(text, parser)  # not YAML: e.g. a bare host list with a ':port'
    if ext not in YAML_EXTENSIONS and not isinstance(data, LineMap) and data is not None:
        return _ini(text, parser)  # "web1" or "web1\nweb2": a YAML scalar, an INI host list
    if is_ansible_yaml(data):
        src = Source(parser, "ansible-yaml")
        read_yaml(data, src)
        return src.inventory()
    return parser.parse_data(data)


def _ini(text: str, parser: _Parser) -> Inventory:
    src = Source(parser, "ansible-ini")
    read_ini(text, src)
    return src.inventory()


def load_inventory(path: str | os.PathLike[str], hosts: str | None = None) -> Inventory:
    """Read and parse the inventory file at ``path``, keeping only the hosts the pattern
    ``hosts`` selects (all without it). Raises ``InventoryError``."""
    display = os.fspath(path)
    inv = parse_any(_read(display), display)
    return select_hosts(inv, hosts) if hosts is not None else inv


def select_hosts(inv: Inventory, pattern: str) -> Inventory:
    """``inv`` with only the hosts ``pattern`` selects (groups, names, globs, ``a:b``,
    ``!x``, ``&x``); selecting nothing is an ``InventoryError`` naming the file."""
    names = [h.name for h in inv.hosts]
    try:
        picked = set(select(pattern, names, inv.groups))
    except ValueError as e:
        raise InventoryError(f"{inv.path}: {e}") from None
    hosts = tuple(h for h in inv.hosts if h.name in picked)
    groups = {g: tuple(n for n in members if n in picked) for g, members in inv.groups.items()}
    return replace(inv, hosts=hosts, groups=groups, pattern=pattern)


def ssh_config_aliases(path: str) -> list[str]:
    """The concrete names of ``path``'s ``Host`` lines (no wildcards, no negations), in order."""
    names: list[str] = []
    for line in _read(path).splitlines():
        m = _HOST_KEYWORD.match(line)
        if not m:
            continue
        for name in m.group(1).split("#")[0].replace('"', " ").split():
            if not any(c in name for c in "*?!") and name not in names:
                names.append(name)
    return names


def ssh_config_inventory(pattern: str) -> Inventory:
    """The hosts of ``~/.ssh/config`` that ``pattern`` selects, each resolved from its Host
    entry (HostName, Port, User, IdentityFile, ProxyJump, ConnectTimeout); keys are checked
    against ``~/.ssh/known_hosts``."""
    path = os.path.expanduser(DEFAULT_SSH_CONFIG)
    if not os.path.exists(path):
        raise InventoryError(f"--hosts {pattern!r} without -i reads Host aliases from {path},"
                             " which does not exist; give -i INVENTORY")
    aliases = ssh_config_aliases(path)
    try:
        picked = select(pattern, aliases, {})
    except ValueError as e:
        raise InventoryError(f"{path}: {e}") from None
    parser = _Parser(path)
    parser.use_ssh_config(DEFAULT_SSH_CONFIG, None)
    hosts = tuple(parser.resolve_host(name, 0, f"Host {name}", {}) for name in picked)
    return Inventory(path, hosts, os.path.expanduser(DEFAULT_KNOWN_HOSTS), path,
                     {"all": tuple(picked)}, "ssh_config", pattern)


def resolve_inventory(inventory: str | os.PathLike[str] | Inventory | None,
                      hosts: str | None = None) -> Inventory | None:
    """What ``sshmr.run(inventory=..., hosts=...)`` runs on: the file (or ``Inventory``)
    narrowed to ``hosts``; without an inventory, ``hosts`` picks ``~/.ssh/config`` aliases;
    with neither, None (this machine)."""
    if isinstance(inventory, Inventory):
        return select_hosts(inventory, hosts) if hosts is not None else inventory
    if inventory is not None:
        return load_inventory(inventory, hosts)
    return ssh_config_inventory(hosts) if hosts is not None else None
