"""Fleet changes while the run goes on: ``sshmr hosts drain|undrain|add`` commands (read
from the run dir's spool, see ``record.commands``) and ``--watch-inventory`` (the inventory
file re-read when it changes: new hosts join, removed hosts drain, a broken edit is
ignored with a one-line warning). See ``sshmr.engine.master``.

Every change is journaled (an event, and the ``fleet`` meta: the drained hosts and the
hosts added, with what it takes to reach them), so a resumed run keeps a drained host
drained and reaches an added host; ``engine.launch`` reads it back.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from ...errors import ConfigError, InventoryError
from ...inventory import Host, load_inventory
from ...record import commands as spool
from .. import hostspec
from .. import scheduler as s
from .state import MasterState

POLL = 0.25  # seconds between looks at the spool
WATCH = 1.0  # seconds between looks at the inventory file


class Commands(MasterState):
    """Commands and inventory changes in, scheduler events out."""

    def _fleet(self) -> dict[str, Any]:
        fleet = self.journal.meta().get("fleet") or {}
        fleet.setdefault("drained", [])
        fleet.setdefault("added", {})
        fleet.setdefault("unlisted", [])  # drained because --watch-inventory saw them go
        return fleet

    def _save_fleet(self, fleet: dict[str, Any]) -> None:
        self.journal.set_meta(fleet=fleet)

    def _fleet_changes(self, now: float) -> list[object]:
        events: list[object] = []
        last = self._last
        if now - last.setdefault("commands", 0.0) >= POLL:
            last["commands"] = now
            for cid, cmd in spool.pending(self.run_dir):
                ok, message, evs = self._command(cmd)
                events += evs
                spool.answer(self.run_dir, cid, ok, message)
        if self.cfg.watch_inventory and self.inventory_path and now - last.setdefault(
                "inventory", 0.0) >= WATCH:
            last["inventory"] = now
            events += self._watch_inventory()
        if events:
            self.journal.flush()  # the change is durable before it takes effect
        return events

    def _command(self, cmd: dict[str, Any] | None) -> tuple[bool, str, list[object]]:
        op = (cmd or {}).get("op")
        host = (cmd or {}).get("host")
        if op not in ("drain", "undrain", "add") or not isinstance(host, str):
            return False, f"not a command: {cmd!r}", []
        if op == "add":
            try:
                hosts, known = hostspec.resolve(host, self.inventory_path)
            except (ConfigError, OSError) as exc:
                return False, str(exc), []
            events: list[object] = []
            said = []
            for h in hosts:
                evs, line = self._add(h, known, "hosts add")
                events += evs
                said.append(line)
            return True, "; ".join(said), events
        if host not in self.sessions:
            known = ", ".join(sorted(self.sessions))
            return False, f"unknown host {host!r}: the run's hosts are {known}", []
        return True, *self._set_drained(host, op == "drain", f"hosts {op}")

    def _set_drained(self, host: str, drain: bool, why: str) -> tuple[str, list[object]]:
        fleet = self._fleet()
        if drain == (host in fleet["drained"]):
            return f"host {host} is {'drained' if drain else 'not drained'} already", []
        if drain:
            fleet["drained"].append(host)
        else:
            fleet["drained"].remove(host)
            if host in fleet["unlisted"]:
                fleet["unlisted"].remove(host)
        self._save_fleet(fleet)
        kind = "drain" if drain else "undrain"
        self.journal.event(kind, why, host=host)
        line = (f"host {host} draining: its running jobs finish, it gets no new ones" if drain
                else f"host {host} undrained: it gets jobs again")
        if self.progress:
            self.progress(line)
        return line, [s.DrainHost(host) if drain else s.UndrainHost(host)]

    def _add(self, host: Host, known_hosts: str, why: str,
             from_inventory: bool = False) -> tuple[list[object], str]:
        if host.name in self.sessions:
            if host.name in self._fleet()["drained"]:
                line, events = self._set_drained(host.name, False, why)
                return events, line
            return [], f"host {host.name} is in the run already"
        self.sessions[host.name] = self.new_session(hostspec.entry(host, known_hosts, self.cfg))
        fleet = self._fleet()
        fleet["added"][host.name] = dict(hostspec.record(host, known_hosts),
                                         from_inventory=from_inventory)
        self._save_fleet(fleet)
        self.journal.host(host.name, "joining")
        self.journal.event("host_added", why, host=host.name)
        line = f"host {host.name} joins the run ({host.user}@{host.hostname}:{host.port})"
        if self.progress:
            self.progress(line)
        return [s.AddHost(host.name)], line

    def _do_ConnectHost(self, a: s.ConnectHost) -> None:
        self.sessions[a.host].connect_async()

    def _watch_inventory(self) -> list[object]:
        path = self.inventory_path
        try:
            st = os.stat(path)
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp == self._inv_seen[0]:
                return []
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
        except OSError as exc:
            return self._inventory_warning(f"cannot read {path}: {exc.strerror}", None)
        if digest == self._inv_seen[1]:
            self._inv_seen = (stamp, digest)
            return []
        self._inv_seen = (stamp, digest)
        try:
            inv = load_inventory(path, self.host_pattern)
        except InventoryError as exc:
            return self._inventory_warning(str(exc), digest)
        self._inv_warned = None
        events: list[object] = []
        listed = {h.name for h in inv.hosts}
        fleet = self._fleet()
        for h in inv.hosts:
            if h.name not in self.sessions:
                events += self._add(h, inv.known_hosts, "the inventory lists it now",
                                    from_inventory=True)[0]
            elif h.name in fleet["unlisted"]:
                events += self._set_drained(h.name, False, "the inventory lists it again")[1]
        for name in sorted(self.sessions):
            fleet = self._fleet()
            by_hand = name in fleet["added"] and not fleet["added"][name].get("from_inventory")
            if name not in listed and name not in fleet["drained"] and not by_hand:
                events += self._set_drained(name, True, "the inventory no longer lists it")[1]
                fleet = self._fleet()
                fleet["unlisted"].append(name)
                self._save_fleet(fleet)
        return events

    def _inventory_warning(self, problem: str, digest: str | None) -> list[object]:
        if self._inv_warned != problem:
            self._inv_warned = problem
            line = f"warning: inventory change ignored: {problem}"
            self.journal.event("inventory_ignored", problem)
            if self.progress:
                self.progress(line)
        return []
