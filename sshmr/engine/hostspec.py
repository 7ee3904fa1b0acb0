"""Hosts named on the command line of a running run: ``sshmr hosts add HOST_OR_PATTERN``.

``resolve`` turns a name into ``Host`` records: the run inventory's hosts it names (exactly
or as a shell pattern, ``web-*``), or else one ad-hoc host, ``[user@]host[:port]`` or an
alias of the inventory's ssh_config, resolved with the inventory's defaults, known_hosts
and ssh_config (as if it were one more entry of the file). ``entry`` makes the transport
the master reaches it with. ``fleet_entries`` rebuilds the hosts added to a run (recorded
in the journal's ``fleet`` meta) for the next phase or a resume.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from typing import Any

from ..errors import ConfigError, InventoryError
from ..inventory import Host, Inventory, load_inventory, parse_inventory
from .config import RunConfig

ADHOC = re.compile(r"(?:(?P<user>[^@\s]+)@)?(?P<host>\[[^\]]+\]|[^:@\s]+)(?::(?P<port>\d+))?")
HostEntry = tuple[Any, str, str, "int | None"]  # transport, python, workdir, slots


def resolve(spec: str, inventory: str | None) -> tuple[list[Host], str]:
    """The hosts ``spec`` names, and the known_hosts file to check them against."""
    inv = load_inventory(inventory) if inventory else None
    if inv is not None:
        found = [h for h in inv.hosts if h.name == spec or fnmatch.fnmatchcase(h.name, spec)]
        if found:
            return found, inv.known_hosts
    m = ADHOC.fullmatch(spec)
    explicit = m is not None and (m.group("user") or m.group("port"))
    if m is None or (not explicit and not _alias(inv, spec)):
        where = f"the run's inventory ({inv.path})" if inv else "the run (it has no inventory)"
        raise ConfigError(f"unknown host {spec!r}: not in {where} nor an ssh_config alias;"
                          " give user@host[:port] to add a host of your own")
    entry: dict[str, Any] = {"host": m.group("host").strip("[]")}
    if m.group("user"):
        entry["user"] = m.group("user")
    if m.group("port"):
        entry["port"] = int(m.group("port"))
    doc = _raw(inv)
    doc["hosts"] = [entry]
    import yaml  # here only: a run without hosts to add never loads PyYAML

    try:
        one = parse_inventory(yaml.safe_dump(doc), inv.path if inv else "<hosts add>")
    except InventoryError as exc:
        raise ConfigError(f"cannot add {spec!r}: {exc}") from None
    return list(one.hosts), one.known_hosts


def _raw(inv: Inventory | None) -> dict[str, Any]:
    if inv is None:
        return {}
    if inv.kind != "sshmr":  # an Ansible inventory: its defaults are per group, not here
        return {"known_hosts": inv.known_hosts, "ssh_config": inv.ssh_config}
    import yaml

    with open(inv.path, encoding="utf-8") as f:
        doc = yaml.safe_load(f) or {}
    return {k: v for k, v in doc.items() if k != "hosts"} if isinstance(doc, dict) else {}


def _alias(inv: Inventory | None, name: str) -> bool:
    """``name`` is a Host entry of the ssh_config in use (not a wildcard's match)."""
    import paramiko

    path = inv.ssh_config if inv else None
    if path is None:
        return False
    try:
        names = paramiko.SSHConfig.from_path(path).get_hostnames()
    except (OSError, ValueError):
        return False
    return name in names


def entry(host: Host, known_hosts: str, config: RunConfig) -> HostEntry:
    from ..transport.ssh import SshTransport  # paramiko only when SSH is used

    return (SshTransport(host, known_hosts, accept_new=config.accept_new_hosts),
            host.python, host.workdir, config.slots or host.slots)


def record(host: Host, known_hosts: str) -> dict[str, Any]:
    """What the journal keeps of an added host (see ``fleet_entries``)."""
    return {"host": dataclasses.asdict(host), "known_hosts": known_hosts}


def fleet_entries(meta: dict[str, Any], config: RunConfig,
                  skip: set[str]) -> list[HostEntry]:
    """Transports for the hosts added to the run (not those named in ``skip``)."""
    out = []
    for name, rec in ((meta.get("fleet") or {}).get("added") or {}).items():
        if name in skip:
            continue
        fields = dict(rec["host"], identity_files=tuple(rec["host"]["identity_files"]))
        out.append(entry(Host(**fields), rec["known_hosts"], config))
    return out
