"""The engine's entry point: from a journal full of jobs to a finished run.

``sshmr.run`` (plain jobs), ``sshmr.resume`` and the MapReduce driver (one engine run per
phase) all come through here: ``make_scheduler`` builds the state machine from a
``RunConfig``, ``host_transports`` reaches the hosts (an inventory's, or the local default),
``execute`` drives the master loop until the scheduler says the run finished, and
``save_code``/``load_code`` keep the job's code in the run directory so a run can resume
with exactly the code it started with.
"""

from __future__ import annotations

import os
import queue
import secrets
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..inventory import Inventory
from ..jobs import JobState
from ..record.journal import Journal
from ..transport.base import Transport
from ..transport.local import LocalTransport
from . import scheduler as s
from .bundle import Bundle
from .config import RunConfig
from .diskspace import local_disk_full, runs_dir_full
from .hostsession import HostSession
from .hostspec import fleet_entries
from .master import Master
from .target import Code

HostEntry = tuple[Transport, str, str, "int | None"]  # transport, python, workdir, slots


def make_scheduler(config: RunConfig, hosts: list[str],
                   first_attempt_id: int = 1) -> s.Scheduler:
    return s.Scheduler(
        hosts, max_retries=config.max_retries, timeout=config.fixed_timeout,
        adaptive=adaptive.as_tuple() if (adaptive := config.adaptive_timeout) else None,
        attempt_limit=config.max_living + config.kill_grace,
        deadline_grace=config.kill_grace + config.host_silence, seed=config.seed,
        quarantine_after=config.quarantine_after, halt_on_failures=config.halt_on_failures,
        speculate=config.speculate, host_retries=config.host_retries,
        reconnect_backoff=tuple(config.reconnect_backoff), first_attempt_id=first_attempt_id,
        prefetch=config.prefetch)


def host_transports(inv: Inventory | None, config: RunConfig,
                    runs_dir: str) -> list[HostEntry]:
    """(transport, python, workdir, slots) for each host; the local default without ``inv``."""
    if inv is None:
        slots = config.slots or os.cpu_count() or 1
        return [(LocalTransport("local"), sys.executable,
                 os.path.join(os.path.abspath(runs_dir), ".work"), slots)]
    from ..transport.ssh import SshTransport  # paramiko only when SSH is used

    return [(SshTransport(host, inv.known_hosts, accept_new=config.accept_new_hosts),
             host.python, host.workdir, config.slots or host.slots) for host in inv.hosts]


def record_run(journal: Journal, run_id: str, runs_dir: str, code: Code, bundle: Bundle,
               config: RunConfig, inv: Inventory | None, **meta: Any) -> None:
    """A new run's code snapshot and its metadata: what ``resume`` and the views read."""
    save_code(journal.run_dir, code)
    journal.set_meta(run_id=run_id, created=time.time(), state="running", pid=os.getpid(),
                     target=f"{code.module}:{code.cls_name}", code_module=code.module,
                     code_class=code.cls_name, code_state=bundle.state, config=asdict(config),
                     inventory=inv.path if inv and inv.kind != "ssh_config" else None,
                     host_pattern=inv.pattern if inv else None, runs_dir=os.path.abspath(runs_dir),
                     dispatch_key=secrets.token_hex(16), **meta)


def execute(journal: Journal, run_dir: str, run_id: str, runs_dir: str, inv: Inventory | None,
            config: RunConfig, bundle: Bundle, sched: s.Scheduler, initial: list[object],
            progress: Callable[[str], None] | None, transports: list[HostEntry] | None = None,
            result_key: bytes | None = None, record_state: bool = True,
            next_phase: Callable[[], list[int] | None] | None = None) -> s.Finished:
    """Run the scheduler's jobs on the hosts until it finishes. With ``record_state``
    (a plain run) the run's final state, message and elapsed time go to the journal.
    ``next_phase`` (MapReduce) is asked for more jobs each time every job ended: their ids
    (journaled), run on the same host sessions, or None: the run is finished."""
    started = time.monotonic()  # elapsed time, immune to wall-clock steps
    events: queue.SimpleQueue = queue.SimpleQueue()
    agent_config = {"max_living": config.max_living, "hb_interval": config.heartbeat,
                    "master_grace": config.master_grace, "kill_grace": config.kill_grace,
                    "inline_limit": config.inline_limit}
    if result_key is not None:  # HostSession sends it over the channel, not in argv
        agent_config["result_key"] = result_key

    def new_session(entry: HostEntry) -> HostSession:
        t, python, workdir, slots = entry
        return HostSession(t, python=python, workdir=workdir, slots=slots, run_id=run_id,
                           bundle=bundle, agent_config=agent_config, events=events)

    entries = list(transports or host_transports(inv, config, runs_dir))
    meta = journal.meta()
    entries += fleet_entries(meta, config, {t.name for t, *_ in entries})  # added mid-run
    sessions = {entry[0].name: new_session(entry) for entry in entries}
    for name in sessions:
        sched.add_host(name)  # (no-op for the hosts it was made with)
    adaptive = config.adaptive_timeout
    if adaptive is not None and not journal.db.execute(
            "SELECT 1 FROM events WHERE kind = 'timeout' LIMIT 1").fetchone():
        journal.event("timeout", f"{adaptive.ceiling:.3f}s (the ceiling, until 5 jobs"
                                 " succeeded)")
    drained = (meta.get("fleet") or {}).get("drained") or []
    initial = [*initial, *(s.DrainHost(h) for h in drained if h in sessions)]
    master = Master(run_dir=run_dir, journal=journal, sessions=sessions, scheduler=sched,
                    config=config, events=events, progress=progress, result_key=result_key,
                    new_session=new_session,
                    inventory_path=inv.path if inv and inv.kind != "ssh_config" else None,
                    host_pattern=inv.pattern if inv else None, next_phase=next_phase)
    finished = _drive(master, journal, initial)
    if finished.state == "no_hosts" and master.host_errors:
        finished = s.Finished(finished.state, "no host usable: " + "; ".join(
            sorted(master.host_errors.values())))
    if record_state:
        elapsed = float(journal.meta().get("elapsed_s") or 0.0) + time.monotonic() - started
        journal.set_meta(state=finished.state, message=finished.message, elapsed_s=elapsed)
    return finished


def _drive(master: Master, journal: Journal, initial: list[object]) -> s.Finished:
    try:
        return master.run(initial)
    except KeyboardInterrupt:  # a second Ctrl-C: the agents are already told to stop
        for row in journal.db.execute("SELECT id FROM jobs WHERE state IN ('PENDING','RUNNING')"
                                      ).fetchall():
            journal.give_up(row[0], JobState.CANCELLED, "interrupted (forced)")
        return s.Finished("cancelled", "interrupted")


def stop_if_runs_dir_full(exc: OSError | sqlite3.Error, journal: Journal, run_dir: str) -> None:
    """A journal or result write failed for want of space: stop with one clear line."""
    if local_disk_full(exc, run_dir):
        journal.abandon()
        raise runs_dir_full(run_dir) from None


def save_code(run_dir: str, code: Code) -> None:
    for name, data in code.files.items():
        path = os.path.join(run_dir, "code", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)


def load_code(run_dir: str) -> dict[str, bytes]:
    root = Path(run_dir, "code")
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}
