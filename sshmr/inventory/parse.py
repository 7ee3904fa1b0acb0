"""Parsing an inventory file: its fields, validated with ``file:line`` errors, each host
merged with the user's OpenSSH client config (see ``sshmr.inventory``)."""

from __future__ import annotations

import difflib
import getpass
import math
import os
from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..errors import InventoryError
from .model import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_KNOWN_HOSTS,
    DEFAULT_PORT,
    DEFAULT_PYTHON,
    DEFAULT_SSH_CONFIG,
    DEFAULT_WORKDIR,
    FIELD_KEYS,
    HOST_KEYS,
    HOST_NAME,
    TOP_KEYS,
    USER_METACHARS,
    Host,
    Inventory,
    key_file_problem,
)
from .yaml_lines import LineList, LineMap, load_yaml, type_name

if TYPE_CHECKING:  # paramiko (0.1 s to import) only once an ssh_config is read
    import paramiko


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
        return load_yaml(text, self.fail)

    def check_keys(self, m: LineMap, allowed: tuple[str, ...], field: str) -> None:
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
            raise self.fail(line, field, f"expected a file path, got {type_name(value)}")
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
        got = type_name(value)
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
            if not isinstance(value, LineList):
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

    def fields(self, m: LineMap, field: str) -> dict[str, Any]:
        return {
            k: self.field(k, m[k], m.value_lines[k], f"{field}.{k}") for k in FIELD_KEYS if k in m
        }

    def parse(self, text: str) -> Inventory:
        return self.parse_data(self.load_yaml(text))

    def parse_data(self, data: Any) -> Inventory:
        if not isinstance(data, LineMap):
            line = 1 if data is None else getattr(data, "line", 1)
            got = "an empty file" if data is None else type_name(data)
            raise self.fail(line, "", f"expected a mapping with a 'hosts' list, got {got}")
        self.check_keys(data, TOP_KEYS, "")

        d = data.get("defaults")
        if d is not None and not isinstance(d, LineMap):
            msg = f"expected a mapping of host settings, got {type_name(d)}"
            raise self.fail(data.value_lines["defaults"], "defaults", msg)
        if d:
            self.check_keys(d, FIELD_KEYS, "defaults")
            self.defaults = self.fields(d, "defaults")

        known_hosts = self.resolve(DEFAULT_KNOWN_HOSTS)
        if "known_hosts" in data:
            line = data.value_lines["known_hosts"]
            known_hosts = self.path_value(data["known_hosts"], line, "known_hosts")
        if "ssh_config" in data:
            self.use_ssh_config(data["ssh_config"], data.value_lines["ssh_config"])
        else:
            self.use_ssh_config(DEFAULT_SSH_CONFIG, None)

        hosts = data.get("hosts")
        if not isinstance(hosts, LineList) or not hosts:
            got = "an empty list" if hosts == [] else type_name(hosts)
            line = data.value_lines.get("hosts", data.line)
            raise self.fail(line, "hosts", f"expected a non-empty list of hosts, got {got}")
        entries = [self.host(i, item, hosts.item_lines[i]) for i, item in enumerate(hosts)]
        named = self.name_hosts(entries)
        groups = self.groups(data, [h.name for h, _ in entries], [h.name for h in named])
        return Inventory(self.abs_path, named, known_hosts, self.config_path, groups)

    def groups(self, data: LineMap, written: list[str],
               names: list[str]) -> dict[str, tuple[str, ...]]:
        """The optional ``groups:`` mapping (group -> host or group names), flattened."""
        members: dict[str, set[int]] = {}
        for i, (w, n) in enumerate(zip(written, names, strict=True)):
            members.setdefault(w, set()).add(i)
            members.setdefault(n, set()).add(i)
        raw = data.get("groups")
        if raw is None:
            return {"all": tuple(names)}
        if not isinstance(raw, LineMap):
            msg = f"expected a mapping of group name to a list of hosts, got {type_name(raw)}"
            raise self.fail(data.value_lines["groups"], "groups", msg)
        out: dict[str, set[int]] = {}

        def flatten(group: str, stack: tuple[str, ...]) -> set[int]:
            if group in out:
                return out[group]
            items, where = raw[group], f"groups.{group}"
            if not isinstance(items, LineList):
                raise self.fail(raw.value_lines[group], where,
                                f"expected a list of host or group names, got {type_name(items)}")
            found: set[int] = set()
            for j, item in enumerate(items):
                line = items.item_lines[j]
                if isinstance(item, str) and item in raw and item != group:
                    if item in stack:
                        msg = f"group {item!r} contains itself ({' -> '.join(stack + (item,))})"
                        raise self.fail(line, f"{where}[{j}]", msg)
                    found |= flatten(item, stack + (item,))
                elif isinstance(item, str) and item in members:
                    found |= members[item]
                else:
                    msg = (f"{type_name(item)} is neither a host of 'hosts:' nor a group of"
                           " 'groups:'")
                    raise self.fail(line, f"{where}[{j}]", msg)
            out[group] = found
            return found

        for group in raw:
            if not isinstance(group, str) or not HOST_NAME.fullmatch(group):
                msg = f"{type_name(group)} cannot be a group name; use letters, digits, '._-'"
                raise self.fail(raw.key_lines[group], "groups", msg)
            if group in members:
                msg = f"group {group!r} has the name of a host; rename one"
                raise self.fail(raw.key_lines[group], "groups", msg)
            flatten(group, (group,))
        groups = {g: tuple(names[i] for i in sorted(ix)) for g, ix in out.items()}
        groups.setdefault("all", tuple(names))
        return groups

    def use_ssh_config(self, value: Any, line: int | None) -> None:
        """Read the OpenSSH client config ``value`` (None: none at all). The default path
        may be missing; another path must exist."""
        if value is None:  # explicit null: use no ssh_config at all
            return
        default = self.resolve(DEFAULT_SSH_CONFIG)
        path = default if line is None else self.path_value(value, line, "ssh_config")
        if not os.path.exists(path) and path == default:
            return
        if not os.path.exists(path):
            msg = f"file not found: {path} (fix the path, or remove the key to use the default)"
            raise self.fail(line, "ssh_config", msg)
        import paramiko

        try:
            self.config_path, self.config = path, paramiko.SSHConfig.from_path(path)
        except (OSError, UnicodeDecodeError, paramiko.ssh_exception.ConfigParseError) as e:
            raise self.fail(line, "ssh_config", f"cannot read {path}: {e}") from None

    def host(self, i: int, item: Any, line: int) -> tuple[Host, int]:
        where = f"hosts[{i}]"
        if isinstance(item, str):
            entry = LineMap(line)
            entry["host"] = item
            entry.key_lines["host"] = entry.value_lines["host"] = line
        elif isinstance(item, LineMap):
            entry = item
        else:
            msg = f"expected a host name or a mapping with a 'host' key, got {type_name(item)}"
            raise self.fail(line, where, msg)
        self.check_keys(entry, HOST_KEYS, where)
        if "host" not in entry:
            raise self.fail(entry.line, where, "missing required key 'host'")
        name, nline = entry["host"], entry.value_lines["host"]
        self.check_name(name, nline, f"{where}.host")
        return self.resolve_host(name, nline, where, self.fields(entry, where)), entry.line

    def check_name(self, name: Any, line: int, field: str) -> str:
        """``name`` as a host name or ssh_config alias, or a ``file:line`` error."""
        if not isinstance(name, str) or not name or any(c.isspace() for c in name):
            msg = f"expected a host name or ssh_config alias, got {type_name(name)}"
            raise self.fail(line, field, msg)
        if "@" in name:
            raise self.fail(line, field, "put the user in 'user:', not in 'host:'")
        if not HOST_NAME.fullmatch(name) or name.startswith("-"):
            bad = next((c for c in name if not HOST_NAME.fullmatch(c)), name[0])
            msg = (f"{name!r} cannot be a host name (it has {bad!r}); use a DNS name, an IP"
                   " address or an ssh_config alias of letters, digits and '.-_:'")
            raise self.fail(line, field, msg)
        return name

    def resolve_host(self, name: str, nline: int, where: str, own: dict[str, Any],
                     hostname: str | None = None) -> Host:
        """The ``Host`` for entry ``name`` (line ``nline``) with its own validated fields
        ``own``, merged with ``defaults`` and ssh_config. ``hostname`` (Ansible's
        ansible_host) overrides ssh_config's HostName."""

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
        hostname = hostname or ssh.get("hostname") or name
        timeout = timeout or DEFAULT_CONNECT_TIMEOUT
        return Host(name, hostname, port, user, identity, slots, python, workdir, proxy, timeout)

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
