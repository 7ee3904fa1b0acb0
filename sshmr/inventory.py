"""The SSH host inventory: parse the inventory YAML and resolve it into ``Host`` records.

This module owns the inventory file format (``defaults``, ``known_hosts``, ``ssh_config``,
``hosts``), its validation, and the merge of each entry with the user's OpenSSH client config.
Precedence for every field is: per-host value > ``defaults`` > ssh_config (HostName, Port,
User, IdentityFile, ProxyJump, ConnectTimeout) > built-in default. It only records the
known_hosts path; reading and verifying host keys is the transport's job. Every problem is
an ``InventoryError`` with a one-line ``file:line: field: problem`` message. Master-side only.

Like OpenSSH, it refuses a host name with shell metacharacters (ssh_config may hand it to a
shell: ``Match exec``) and a private key file that others may read (``key_file_problem``).
"""

from __future__ import annotations

import difflib
import getpass
import math
import os
import re
import shlex
import stat
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import paramiko
import yaml

from sshmr.errors import InventoryError

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
DEFAULT_SSH_CONFIG = "~/.ssh/config"
DEFAULT_PORT = 22
DEFAULT_PYTHON = "python3"
DEFAULT_WORKDIR = "~/.sshmr"
DEFAULT_CONNECT_TIMEOUT = 10.0

TOP_KEYS = ("defaults", "known_hosts", "ssh_config", "hosts")
FIELD_KEYS = ("port", "user", "identity_file", "slots", "python", "workdir", "connect_timeout")
HOST_KEYS = ("host", *FIELD_KEYS)
USER_METACHARS = frozenset("'`\";&<>|(){}$")  # OpenSSH's valid_ruser refuses these
HOST_NAME = re.compile(r"[A-Za-z0-9_.:%+\[\]-]+")  # DNS names, IPv4/6 (+ zone), aliases


def key_file_problem(path: str) -> str | None:
    """Why OpenSSH would refuse the private key file ``path``: it is ours and others may
    read or write it. None if it is fine or does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid != os.getuid() or not mode & 0o077:
        return None
    how = "readable" if mode & 0o044 else "writable"
    return (f"key file {path} is {how} by others (mode {mode:04o}); run "
            f"`chmod 600 {shlex.quote(path)}`")


@dataclass(frozen=True)
class Host:
    """One resolved inventory entry. ``name`` is the unique key used everywhere else."""

    name: str
    hostname: str
    port: int
    user: str
    identity_files: tuple[str, ...]
    slots: int | None  # None means "auto": the host's CPU count, resolved by the master
    python: str
    workdir: str
    proxy_jump: str | None
    connect_timeout: float


@dataclass(frozen=True)
class Inventory:
    """A parsed inventory file."""

    path: str
    hosts: tuple[Host, ...]
    known_hosts: str
    ssh_config: str | None


class _Map(dict):  # a YAML mapping that remembers the line of itself, its keys and values
    def __init__(self, line: int) -> None:
        super().__init__()
        self.line, self.key_lines, self.value_lines = line, {}, {}


class _Seq(list):  # a YAML sequence that remembers the line of itself and of each item
    def __init__(self, line: int) -> None:
        super().__init__()
        self.line, self.item_lines = line, []


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    return {_Map: "a mapping", _Seq: "a list"}.get(type(value), repr(value))


class _Parser:
    def __init__(self, path: str) -> None:
        self.display = path
        pseudo = path.startswith("<") and path.endswith(">")  # "<inventory>": not a file
        self.abs_path = path if pseudo else os.path.abspath(path)
        self.base_dir = os.getcwd() if pseudo else os.path.dirname(self.abs_path)
        self.defaults: dict[str, Any] = {}
        self.config: paramiko.SSHConfig | None = None
        self.config_path: str | None = None

    def fail(self, line: int | None, field: str, msg: str) -> InventoryError:
        where = self.display if line is None else f"{self.display}:{line}"
        return InventoryError(f"{where}: {field}: {msg}" if field else f"{where}: {msg}")

    def load_yaml(self, text: str) -> Any:
        try:
            loader = yaml.SafeLoader(text)
            node = loader.get_single_node()
            return None if node is None else self.build(node, loader, set())
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            line = mark.line + 1 if mark is not None else None
            what = "; ".join(str(p) for p in (e.context, e.problem) if p)
            raise self.fail(line, "", f"invalid YAML: {what}") from None
        except yaml.reader.ReaderError as e:
            line = text.count("\n", 0, e.position) + 1
            msg = f"invalid YAML: character U+{e.character:04X} is not allowed; remove it"
            raise self.fail(line, "", msg) from None
        except yaml.YAMLError as e:
            raise self.fail(None, "", f"invalid YAML: {' '.join(str(e).split())}") from None

    def build(self, node: yaml.Node, loader: yaml.SafeLoader, active: set[int]) -> Any:
        line = node.start_mark.line + 1
        if isinstance(node, yaml.ScalarNode):
            return loader.construct_object(node, deep=True)
        if id(node) in active:
            raise self.fail(line, "", "recursive YAML alias; write the value out instead")
        active.add(id(node))
        out: _Map | _Seq
        if isinstance(node, yaml.SequenceNode):
            out = _Seq(line)
            for item in node.value:
                out.append(self.build(item, loader, active))
                out.item_lines.append(item.start_mark.line + 1)
        else:
            own = sum(k.tag != "tag:yaml.org,2002:merge" for k, _ in node.value)
            loader.flatten_mapping(node)  # apply YAML merge keys (<<: *anchor) first
            out, merged, seen = _Map(line), len(node.value) - own, set()
            for n, (knode, vnode) in enumerate(node.value):
                kline = knode.start_mark.line + 1
                if not isinstance(knode, yaml.ScalarNode):
                    raise self.fail(kline, "", "mapping keys must be plain names")
                key = loader.construct_object(knode, deep=True)
                if n >= merged:  # written here, not merged in: must be unique
                    if key in seen:
                        raise self.fail(kline, "", f"duplicate key {key!r}; keep only one")
                    seen.add(key)
                out[key] = self.build(vnode, loader, active)
                out.key_lines[key] = kline
                out.value_lines[key] = vnode.start_mark.line + 1
        active.discard(id(node))
        return out

    def check_keys(self, m: _Map, allowed: tuple[str, ...], field: str) -> None:
        for key in m:
            if key in allowed:
                continue
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"valid keys: {', '.join(allowed)}"
            if key == "host" and field == "defaults":
                hint = "'host' belongs in a hosts entry, not in defaults"
            what = "unknown top-level key" if not field else "unknown key"
            raise self.fail(m.key_lines[key], field, f"{what} {key!r} ({hint})")

    def path_value(self, value: Any, line: int, field: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(line, field, f"expected a file path, got {_type_name(value)}")
        return self.resolve(value)

    def key_path(self, value: Any, line: int, field: str) -> str:
        path = self.path_value(value, line, field)
        problem = key_file_problem(path)
        if problem:
            raise self.fail(line, field, problem)
        return path

    def resolve(self, path: str) -> str:
        path = os.path.expanduser(path)
        return os.path.normpath(os.path.join(self.base_dir, path))

    def field(self, key: str, value: Any, line: int, field: str) -> Any:
        got = _type_name(value)
        is_int = isinstance(value, int) and not isinstance(value, bool)
        if key == "port":
            if not is_int or not 1 <= value <= 65535:
                raise self.fail(line, field, f"expected an integer 1-65535, got {got}")
            return value
        if key == "slots":
            if value == "auto":
                return None
            if not is_int or value < 1:
                raise self.fail(line, field, f"expected a positive integer or 'auto', got {got}")
            return value
        if key == "connect_timeout":
            ok = is_int or isinstance(value, float)
            if not ok or not math.isfinite(value) or value <= 0:
                raise self.fail(line, field, f"expected a positive number of seconds, got {got}")
            return float(value)
        if key == "identity_file":
            if not isinstance(value, _Seq):
                return (self.key_path(value, line, field),)
            if not value:
                raise self.fail(line, field, "expected a key file path or a list of them, got []")
            lines = value.item_lines
            return tuple(self.key_path(v, lines[i], f"{field}[{i}]") for i, v in enumerate(value))
        # user, python, workdir: non-empty strings
        if not isinstance(value, str) or not value.strip():
            raise self.fail(line, field, f"expected a non-empty string, got {got}")
        if key == "user":
            bad = next((c for c in value if c in USER_METACHARS or not c.isprintable()
                        or c.isspace()), "-" if value.startswith("-") else None)
            if bad is not None:
                raise self.fail(line, field, f"{value!r} cannot be a user name (it has {bad!r});"
                                " OpenSSH refuses shell metacharacters there too")
        return value

    def fields(self, m: _Map, field: str) -> dict[str, Any]:
        return {
            k: self.field(k, m[k], m.value_lines[k], f"{field}.{k}") for k in FIELD_KEYS if k in m
        }

    def parse(self, text: str) -> Inventory:
        data = self.load_yaml(text)
        if not isinstance(data, _Map):
            line = 1 if data is None else getattr(data, "line", 1)
            got = "an empty file" if data is None else _type_name(data)
            raise self.fail(line, "", f"expected a mapping with a 'hosts' list, got {got}")
        self.check_keys(data, TOP_KEYS, "")

        d = data.get("defaults")
        if d is not None and not isinstance(d, _Map):
            msg = f"expected a mapping of host settings, got {_type_name(d)}"
            raise self.fail(data.value_lines["defaults"], "defaults", msg)
        if d:
            self.check_keys(d, FIELD_KEYS, "defaults")
            self.defaults = self.fields(d, "defaults")

        known_hosts = self.resolve(DEFAULT_KNOWN_HOSTS)
        if "known_hosts" in data:
            line = data.value_lines["known_hosts"]
            known_hosts = self.path_value(data["known_hosts"], line, "known_hosts")
        self.config_path, self.config = self.ssh_config(data)

        hosts = data.get("hosts")
        if not isinstance(hosts, _Seq) or not hosts:
            got = "an empty list" if hosts == [] else _type_name(hosts)
            line = data.value_lines.get("hosts", data.line)
            raise self.fail(line, "hosts", f"expected a non-empty list of hosts, got {got}")
        entries = [self.host(i, item, hosts.item_lines[i]) for i, item in enumerate(hosts)]
        return Inventory(self.abs_path, self.name_hosts(entries), known_hosts, self.config_path)

    def ssh_config(self, data: _Map) -> tuple[str | None, paramiko.SSHConfig | None]:
        default = self.resolve(DEFAULT_SSH_CONFIG)
        if "ssh_config" not in data:
            path, line = default, None
        elif data["ssh_config"] is None:  # explicit null: use no ssh_config at all
            return None, None
        else:
            line = data.value_lines["ssh_config"]
            path = self.path_value(data["ssh_config"], line, "ssh_config")
        if not os.path.exists(path) and path == default:
            return None, None
        if not os.path.exists(path):
            msg = f"file not found: {path} (fix the path, or remove the key to use the default)"
            raise self.fail(line, "ssh_config", msg)
        try:
            return path, paramiko.SSHConfig.from_path(path)
        except (OSError, UnicodeDecodeError, paramiko.ssh_exception.ConfigParseError) as e:
            raise self.fail(line, "ssh_config", f"cannot read {path}: {e}") from None

    def host(self, i: int, item: Any, line: int) -> tuple[Host, int]:
        where = f"hosts[{i}]"
        if isinstance(item, str):
            entry = _Map(line)
            entry["host"] = item
            entry.key_lines["host"] = entry.value_lines["host"] = line
        elif isinstance(item, _Map):
            entry = item
        else:
            msg = f"expected a host name or a mapping with a 'host' key, got {_type_name(item)}"
            raise self.fail(line, where, msg)
        self.check_keys(entry, HOST_KEYS, where)
        if "host" not in entry:
            raise self.fail(entry.line, where, "missing required key 'host'")
        name, nline = entry["host"], entry.value_lines["host"]
        if not isinstance(name, str) or not name or any(c.isspace() for c in name):
            msg = f"expected a host name or ssh_config alias, got {_type_name(name)}"
            raise self.fail(nline, f"{where}.host", msg)
        if "@" in name:
            raise self.fail(nline, f"{where}.host", "put the user in 'user:', not in 'host:'")
        if not HOST_NAME.fullmatch(name) or name.startswith("-"):
            bad = next((c for c in name if not HOST_NAME.fullmatch(c)), name[0])
            msg = (f"{name!r} cannot be a host name (it has {bad!r}); use a DNS name, an IP"
                   " address or an ssh_config alias of letters, digits and '.-_:'")
            raise self.fail(nline, f"{where}.host", msg)
        own = self.fields(entry, where)

        def pick(key: str) -> Any:
            return own[key] if key in own else self.defaults.get(key)

        ssh: dict[str, Any] = {}
        if self.config is not None:
            try:
                ssh = self.config.lookup(name)
            except Exception as e:  # Match exec without invoke, canonicalisation failure, ...
                msg = f"ssh_config {self.config_path}: {' '.join(str(e).split())}"
                raise self.fail(nline, where, msg) from None

        def from_ssh(key: str, conv: type, low: float, high: float) -> Any:
            try:
                value = conv(ssh[key]) if key in ssh else None
            except ValueError:
                value = math.nan
            if value is not None and not low <= value <= high:
                msg = f"ssh_config sets {key} {ssh[key]!r} for it; fix {self.config_path}"
                raise self.fail(nline, where, msg)
            return value

        port = pick("port") or from_ssh("port", int, 1, 65535) or DEFAULT_PORT
        timeout = pick("connect_timeout") or from_ssh("connecttimeout", float, 1e-3, 1e9)
        ssh_ids = tuple(os.path.abspath(os.path.expanduser(p)) for p in ssh.get("identityfile", []))
        for problem in filter(None, map(key_file_problem, ssh_ids)):
            raise self.fail(nline, where, f"ssh_config {self.config_path}: {problem}")
        identity = pick("identity_file") or ssh_ids
        user = pick("user") or ssh.get("user") or self.local_user(nline, where)
        slots = pick("slots")  # None ("auto") when unset everywhere
        python, workdir = pick("python") or DEFAULT_PYTHON, pick("workdir") or DEFAULT_WORKDIR
        proxy = None if ssh.get("proxyjump", "none").lower() == "none" else ssh["proxyjump"]
        hostname, timeout = ssh.get("hostname") or name, timeout or DEFAULT_CONNECT_TIMEOUT
        host = Host(name, hostname, port, user, identity, slots, python, workdir, proxy, timeout)
        return host, entry.line

    def name_hosts(self, entries: list[tuple[Host, int]]) -> tuple[Host, ...]:
        """Reject duplicates (same name and port); give "name:port" to same-named entries."""
        counts = Counter(h.name for h, _ in entries)
        out: dict[str, tuple[int, Host]] = {}  # final name -> (index, entry as written)
        for i, (h, line) in enumerate(entries):
            orig = h
            if counts[h.name] > 1 and h.port != DEFAULT_PORT:
                host_part = f"[{h.name}]" if ":" in h.name else h.name
                h = replace(h, name=f"{host_part}:{h.port}")
            if h.name in out:
                j, other = out[h.name]
                if (other.name, other.port) == (orig.name, orig.port):
                    what = (
                        f"duplicate of hosts[{j}] (line {entries[j][1]}): "
                        f"same host {orig.name!r} and port {orig.port}"
                    )
                else:
                    what = f"name {h.name!r} clashes with hosts[{j}] (line {entries[j][1]})"
                raise self.fail(line, f"hosts[{i}]", f"{what}; remove or rename one entry")
            out[h.name] = (i, orig)
        return tuple(replace(orig, name=name) for name, (_, orig) in out.items())

    def local_user(self, line: int, where: str) -> str:
        try:
            return getpass.getuser()
        except (KeyError, OSError, ImportError):
            raise self.fail(line, where, "cannot tell the local user name; set 'user:'") from None


def parse_inventory(text: str, path: str = "<inventory>") -> Inventory:
    """Parse inventory YAML ``text``; ``path`` is used in messages and for relative paths."""
    return _Parser(str(path)).parse(text)


def load_inventory(path: str | os.PathLike[str]) -> Inventory:
    """Read and parse the inventory file at ``path``. Raises ``InventoryError``."""
    display = os.fspath(path)
    try:
        with open(display, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        msg = f"[Errno {e.errno}] {e.strerror}"
        raise InventoryError(f"{display}: cannot read file: {msg}") from None
    except UnicodeDecodeError as e:
        raise InventoryError(f"{display}: cannot read file: not UTF-8 text ({e.reason})") from None
    return parse_inventory(text, display)
