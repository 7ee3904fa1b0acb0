"""``sshmr gc``: find and remove what crashed or interrupted runs left on the hosts.

A finished or cancelled run removes its remote directory itself. A run whose master died
leaves ``WORKDIR/runs/<run_id>/`` behind (results that ``sshmr resume`` may still
collect). ``gc`` lists those directories on every host and removes the ones whose run is
not running and was not interrupted, so nothing ``resume`` could still use is removed
unless ``--all`` is given.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import ConfigError, HostError
from ..inventory import Inventory, resolve_inventory
from ..record.journal import Journal
from ..record.runs import RunLock, run_state


def _run_state(runs_dir: str, run_id: str) -> str:
    """running, interrupted (resumable), ended, or foreign (not in this runs dir)."""
    run_dir = os.path.join(runs_dir, run_id)
    if not os.path.exists(os.path.join(run_dir, Journal.FILE)):
        return "foreign"
    journal = Journal(run_dir, readonly=True)
    try:
        recorded = journal.meta().get("state")
    finally:
        journal.close()
    if RunLock.held(run_dir):
        return "running"
    state = run_state(run_dir, recorded)
    return state if state == "interrupted" else "ended"


def plan(run_id: str, state: str, remove_all: bool) -> tuple[bool, str]:
    """Whether gc removes a run directory in ``state`` and, if it keeps it, why (a hint).

    ``--dry-run`` and the real run both ask this, so the list is the same."""
    if state == "running":
        return False, "its master is running"
    if state == "interrupted" and not remove_all:
        return False, f"'sshmr resume {run_id}' continues it; 'sshmr gc --all' removes it"
    if state == "foreign" and not remove_all:
        return False, "not a run of this runs dir; 'sshmr gc --all' removes it"
    return True, ""


def collect_garbage(inventory: str | Inventory | None, runs_dir: str, *,
                    remove_all: bool = False, dry_run: bool = False,
                    hosts: str | None = None) -> list[dict[str, Any]]:
    """Visit each host of ``inventory`` (narrowed to the pattern ``hosts``)."""
    from ..transport.ssh import SshTransport

    inv = resolve_inventory(inventory, hosts)
    if inv is None:
        raise ConfigError("give an inventory (-i FILE) or a host pattern (--hosts PATTERN)")

    def visit(host) -> list[dict[str, Any]]:
        t = SshTransport(host, inv.known_hosts)
        found: list[dict[str, Any]] = []
        try:
            t.connect()
            workdir = t.expand_user(host.workdir)
            try:
                names = t.listdir(f"{workdir}/runs")
            except FileNotFoundError:
                return found
            for run_id in sorted(names):
                state = _run_state(runs_dir, run_id)
                remove, why = plan(run_id, state, remove_all)
                path = f"{workdir}/runs/{run_id}"
                if remove and not dry_run:
                    t.rmtree(path)
                found.append({"host": host.name, "path": path, "run_id": run_id,
                              "state": state, "remove": remove, "why": why,
                              "removed": remove and not dry_run})
        except HostError as exc:
            found.append({"host": host.name, "error": str(exc)})
        finally:
            t.close()
        return found

    with ThreadPoolExecutor(max_workers=min(32, len(inv.hosts))) as pool:
        return [item for items in pool.map(visit, inv.hosts) for item in items]
