"""``sshmr.run``: from an executor and inputs to a finished run. The CLI calls this too.

It resolves the hosts (an inventory, or the local default), snapshots the job code into
the run directory, partitions the work into the journal, and hands everything to the
master loop. The journal, not this function, is the record: ``RunResult`` is read back
from it.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from . import scheduler as s
from .bundle import Bundle, build_bundle
from .config import RunConfig
from .diskspace import local_disk_full, runs_dir_full
from .errors import ConfigError, InputError, RunError, TargetError
from .executor import JobExecutor
from .hostsession import HostSession
from .inventory import Inventory, load_inventory
from .jobs import JobState
from .journal import Journal
from .mapreduce import MapReduce
from .master import Master
from .partition import InputFile, Partitioner, check_inputs, parse_split
from .result import INPUT_FILE_KEY, RunResult, load_run_result
from .runs import RunLock, create_run_dir, find_run
from .target import Code, code_of
from .transport.base import Transport
from .transport.local import LocalTransport

JOB_BATCH = 5000
MAPREDUCE_OPTIONS = ("output", "reducers", "sort_memory", "overwrite")


def run(
    executor: JobExecutor | type[JobExecutor],
    items: Iterable[Any] | None = None,
    *,
    files: list[str] | None = None,
    split: str | None = None,
    partitioner: Partitioner | None = None,
    inventory: str | os.PathLike | Inventory | None = None,
    runs_dir: str = "sshmr-runs",
    progress: Callable[[str], None] | None = None,
    code: Code | None = None,
    **options: Any,
) -> RunResult:
    """Run ``executor`` on every job and return the run's :class:`RunResult`.

    Jobs come from ``items`` (one job per item) or from input ``files`` cut by ``split``
    (``lines``, ``lines:N``, ``files``, ``bytes:SIZE``) or by a ``partitioner``.
    ``inventory`` (a YAML path) selects SSH hosts; without it jobs run on this machine
    with one slot per CPU. ``options`` are :class:`RunConfig` fields: ``timeout``,
    ``max_retries``, ``max_living``, ``slots``, ``seed``, ``accept_new_hosts``, ...
    """
    instance = executor() if isinstance(executor, type) else executor
    if not isinstance(instance, JobExecutor):
        raise TargetError(f"{type(instance).__name__} is not a sshmr.JobExecutor subclass")
    if isinstance(instance, MapReduce):
        from .mrdriver import run_mapreduce

        return run_mapreduce(instance, items, files=files, split=split, partitioner=partitioner,
                             inventory=inventory, runs_dir=runs_dir, progress=progress, code=code,
                             **options)
    for name in MAPREDUCE_OPTIONS:
        if options.get(name) is not None:
            raise ConfigError(f"{name!r} is a MapReduce option, but {type(instance).__name__}"
                              " is not a sshmr.MapReduce")
        options.pop(name, None)
    config = RunConfig.build(instance, **options)
    payloads = _payloads(items, files, split, partitioner)
    inv = load_inventory(inventory) if isinstance(inventory, (str, os.PathLike)) else inventory
    code = code or code_of(type(instance))
    bundle = build_bundle(code, instance if vars(instance) else None)
    # Function runs (sshmr.notebook) may send pickled results back: signed with this key.
    key = secrets.token_bytes(32) if getattr(instance, "pickle_results", False) is True else None

    run_id, run_dir = create_run_dir(runs_dir)
    lock = RunLock(run_dir)
    journal = Journal(run_dir, create=True)
    try:
        _snapshot(run_dir, code)
        journal.set_meta(run_id=run_id, created=time.time(), state="running", pid=os.getpid(),
                         target=f"{code.module}:{code.cls_name}", code_module=code.module,
                         code_class=code.cls_name, code_state=bundle.state,
                         pickle_results=key is not None, config=asdict(config),
                         inventory=inv.path if inv else None, runs_dir=os.path.abspath(runs_dir))
        count = _add_jobs(journal, payloads)
        journal.flush()
        sched = _scheduler(config, [h.name for h in inv.hosts] if inv else ["local"])
        _execute(journal, run_dir, run_id, runs_dir, inv, config, bundle, sched,
                 [s.JobsAdded(tuple(range(1, count + 1)))], progress, result_key=key)
    except (OSError, sqlite3.Error) as exc:
        _raise_if_disk_full(exc, journal, run_dir)
        raise
    finally:
        journal.close()
        lock.release()
    return load_run_result(run_dir)


def resume(
    run_id: str | None = None,
    *,
    runs_dir: str = "sshmr-runs",
    inventory: str | os.PathLike | None = None,
    accept_new_hosts: bool = False,
    progress: Callable[[str], None] | None = None,
) -> RunResult:
    """Continue a run whose master died: collect what finished remotely, re-queue the rest.

    A job dispatched with ``max_retries=0`` is never launched again: if its result is not
    on its host, it ends UNKNOWN. A second ``resume`` of a running run is refused.
    """
    from .collect import collect_open_attempts, remove_run_dirs

    run_dir = find_run(runs_dir, run_id)
    lock = RunLock(run_dir)
    journal = Journal(run_dir)
    try:
        meta = journal.meta()
        if "config" not in meta:  # its master died before the jobs were recorded
            raise RunError(f"run {os.path.basename(run_dir)} stopped before its jobs were"
                           " recorded; nothing to resume: start it again with 'sshmr run'")
        if meta.get("state") not in ("running", None):
            raise RunError(f"run {meta['run_id']} already ended ({meta['state']}); nothing to"
                           " resume")
        config = RunConfig(**dict(meta["config"], accept_new_hosts=accept_new_hosts))
        path = inventory or meta.get("inventory")
        inv = load_inventory(path) if path else None
        code = Code(meta["code_module"], meta["code_class"], _read_snapshot(run_dir))
        bundle = build_bundle(code, state=meta.get("code_state"))
        sessions_for = _transports(inv, config, meta.get("runs_dir", runs_dir))
        collect_open_attempts(journal, sessions_for, meta["run_id"], config.max_retries,
                              config.inline_limit, progress)
        if not meta.get("mapreduce") and not journal.db.execute(
                "SELECT 1 FROM jobs WHERE state IN ('PENDING', 'RUNNING') LIMIT 1").fetchone():
            remove_run_dirs(sessions_for, meta["run_id"])  # nothing to run: no agent will
        if meta.get("mapreduce"):  # continue at the step, phase and task where it stopped
            from .mrdriver import continue_mapreduce

            journal.event("resumed", f"pid {os.getpid()}")
            journal.set_meta(pid=os.getpid())
            journal.flush()
            continue_mapreduce(journal, run_dir, inv, config, bundle, progress)
            return load_run_result(run_dir)
        sched = _scheduler(config, [t.name for t, *_ in sessions_for],
                           first_attempt_id=journal.max_attempt_id() + 1)
        for job_id, launches in journal.db.execute(
                "SELECT id, launches FROM jobs WHERE state = 'PENDING' ORDER BY id").fetchall():
            sched.restore_job(job_id, JobState.PENDING, launches)
        journal.event("resumed", f"pid {os.getpid()}")
        journal.set_meta(pid=os.getpid())
        journal.flush()
        _execute(journal, run_dir, meta["run_id"], meta.get("runs_dir", runs_dir), inv, config,
                 bundle, sched, [s.JobsAdded(())], progress, transports=sessions_for,
                 result_key=secrets.token_bytes(32) if meta.get("pickle_results") else None)
    except (OSError, sqlite3.Error) as exc:
        _raise_if_disk_full(exc, journal, run_dir)
        raise
    finally:
        journal.close()
        lock.release()
    return load_run_result(run_dir)


def _raise_if_disk_full(exc: BaseException, journal: Journal, run_dir: str) -> None:
    """A journal or result write failed for want of space: stop with one clear line."""
    if local_disk_full(exc, run_dir):
        journal.abandon()
        raise runs_dir_full(run_dir) from None


def _scheduler(config: RunConfig, hosts: list[str], first_attempt_id: int = 1) -> s.Scheduler:
    return s.Scheduler(
        hosts, max_retries=config.max_retries, timeout=config.timeout,
        deadline_grace=config.kill_grace + config.host_silence, seed=config.seed,
        quarantine_after=config.quarantine_after, halt_on_failures=config.halt_on_failures,
        speculate=config.speculate, host_retries=config.host_retries,
        reconnect_backoff=tuple(config.reconnect_backoff), first_attempt_id=first_attempt_id,
        prefetch=config.prefetch)


def _execute(journal: Journal, run_dir: str, run_id: str, runs_dir: str, inv: Inventory | None,
             config: RunConfig, bundle: Bundle, sched: s.Scheduler, initial: list[object],
             progress: Callable[[str], None] | None, transports: list | None = None,
             result_key: bytes | None = None, record_state: bool = True) -> s.Finished:
    """Run the scheduler's jobs on the hosts until it finishes. With ``record_state``
    (a plain run) the run's final state, message and elapsed time go to the journal."""
    started = time.monotonic()  # elapsed time, immune to wall-clock steps
    events: queue.SimpleQueue = queue.SimpleQueue()
    agent_config = {"max_living": config.max_living, "hb_interval": config.heartbeat,
                    "master_grace": config.master_grace, "kill_grace": config.kill_grace,
                    "inline_limit": config.inline_limit}
    if result_key is not None:  # HostSession sends it over the channel, not in argv
        agent_config["result_key"] = result_key
    sessions = {
        t.name: HostSession(t, python=python, workdir=workdir, slots=slots, run_id=run_id,
                            bundle=bundle, agent_config=agent_config, events=events)
        for t, python, workdir, slots in transports or _transports(inv, config, runs_dir)
    }
    master = Master(run_dir=run_dir, journal=journal, sessions=sessions, scheduler=sched,
                    config=config, events=events, progress=progress, result_key=result_key)
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


def _payloads(items: Iterable[Any] | None, files: list[str] | None, split: str | None,
              partitioner: Partitioner | None) -> Iterable[Any]:
    if items is not None:
        if files or split or partitioner:
            raise InputError("give either items, or files with split/partitioner, not both")
        return items
    inputs = list(files or ["-"])
    check_inputs(inputs)
    if partitioner is not None and split is not None:
        raise InputError("give either --split or --partitioner, not both")
    return (partitioner or parse_split(split)).partition(inputs)


def _add_jobs(journal: Journal, payloads: Iterable[Any]) -> int:
    batch: list[tuple[int, str]] = []
    count = 0
    for count, payload in enumerate(payloads, 1):
        if isinstance(payload, InputFile):
            text = json.dumps({INPUT_FILE_KEY: payload.path})
        else:
            try:
                text = json.dumps(payload, separators=(",", ":"), allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise InputError(f"job {count}'s payload is not JSON-serialisable ({exc}); yield"
                                 " JSON values or sshmr.InputFile") from None
        batch.append((count, text))
        if len(batch) >= JOB_BATCH:
            journal.add_jobs(batch)
            batch.clear()
    journal.add_jobs(batch)
    return count


def _transports(inv: Inventory | None, config: RunConfig,
                runs_dir: str) -> list[tuple[Transport, str, str, int | None]]:
    """(transport, python, workdir, slots) for each host; the local default without ``inv``."""
    if inv is None:
        slots = config.slots or os.cpu_count() or 1
        return [(LocalTransport("local"), sys.executable,
                 os.path.join(os.path.abspath(runs_dir), ".work"), slots)]
    from .transport.ssh import SshTransport  # paramiko only when SSH is used

    return [(SshTransport(host, inv.known_hosts, accept_new=config.accept_new_hosts),
             host.python, host.workdir, config.slots or host.slots) for host in inv.hosts]


def _snapshot(run_dir: str, code: Code) -> None:
    for name, data in code.files.items():
        path = os.path.join(run_dir, "code", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)


def _read_snapshot(run_dir: str) -> dict[str, bytes]:
    root = Path(run_dir, "code")
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}
