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
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from . import scheduler as s
from .bundle import build_bundle
from .config import RunConfig
from .errors import InputError, TargetError
from .executor import JobExecutor
from .hostsession import HostSession
from .inventory import Inventory, load_inventory
from .journal import Journal
from .master import Master
from .partition import InputFile, Partitioner, check_inputs, parse_split
from .result import INPUT_FILE_KEY, RunResult, load_run_result
from .runs import RunLock, create_run_dir
from .target import Code, code_of
from .transport.base import Transport
from .transport.local import LocalTransport

JOB_BATCH = 5000


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
    config = RunConfig.build(instance, **options)
    payloads = _payloads(items, files, split, partitioner)
    inv = load_inventory(inventory) if isinstance(inventory, (str, os.PathLike)) else inventory
    code = code or code_of(type(instance))
    bundle = build_bundle(code, instance if vars(instance) else None)

    run_id, run_dir = create_run_dir(runs_dir)
    lock = RunLock(run_dir)
    journal = Journal(run_dir, create=True)
    try:
        _snapshot(run_dir, code)
        started = time.time()
        journal.set_meta(run_id=run_id, created=started, state="running", pid=os.getpid(),
                         target=f"{code.module}:{code.cls_name}", config=_config_dict(config),
                         inventory=inv.path if inv else None)
        count = _add_jobs(journal, payloads)
        journal.flush()
        events: queue.SimpleQueue = queue.SimpleQueue()
        sessions = _sessions(inv, config, runs_dir, run_id, bundle, events)
        sched = s.Scheduler(
            sessions, max_retries=config.max_retries, timeout=config.timeout,
            deadline_grace=config.kill_grace + config.host_silence, seed=config.seed,
            quarantine_after=config.quarantine_after, halt_on_failures=config.halt_on_failures)
        master = Master(run_dir=run_dir, journal=journal, sessions=sessions, scheduler=sched,
                        config=config, events=events, progress=progress)
        finished = _drive(master, journal, [s.JobsAdded(tuple(range(1, count + 1)))])
        message = finished.message
        if finished.state == "no_hosts" and master.host_errors:
            message = "no host usable: " + "; ".join(sorted(master.host_errors.values()))
        journal.set_meta(state=finished.state, message=message,
                         elapsed_s=time.time() - started)
    finally:
        journal.close()
        lock.release()
    return load_run_result(run_dir)


def _drive(master: Master, journal: Journal, initial: list[object]) -> s.Finished:
    try:
        return master.run(initial)
    except KeyboardInterrupt:  # a second Ctrl-C: the agents are already told to stop
        for row in journal.db.execute("SELECT id FROM jobs WHERE state IN ('PENDING','RUNNING')"
                                      ).fetchall():
            journal.give_up(row[0], s.JobState.CANCELLED, "interrupted (forced)")
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


def _sessions(inv: Inventory | None, config: RunConfig, runs_dir: str, run_id: str, bundle: Any,
              events: queue.SimpleQueue) -> dict[str, HostSession]:
    agent_config = {"max_living": config.max_living, "hb_interval": config.heartbeat,
                    "master_grace": config.master_grace, "kill_grace": config.kill_grace,
                    "inline_limit": config.inline_limit}
    targets: list[tuple[Transport, str, str, int | None]] = []
    if inv is None:
        slots = config.slots or os.cpu_count() or 1
        targets.append((LocalTransport("local"), sys.executable,
                        os.path.join(os.path.abspath(runs_dir), ".work"), slots))
    else:
        from .transport.ssh import SshTransport  # paramiko only when SSH is used

        for host in inv.hosts:
            transport = SshTransport(host, inv.known_hosts, accept_new=config.accept_new_hosts)
            targets.append((transport, host.python, host.workdir, host.slots))
    return {
        t.name: HostSession(t, python=python, workdir=workdir, slots=slots, run_id=run_id,
                            bundle=bundle, agent_config=agent_config, events=events)
        for t, python, workdir, slots in targets
    }


def _snapshot(run_dir: str, code: Code) -> None:
    for name, data in code.files.items():
        path = os.path.join(run_dir, "code", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)


def _config_dict(config: RunConfig) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(config)
