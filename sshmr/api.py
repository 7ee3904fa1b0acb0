"""``sshmr.run``: from an executor and inputs to a finished run. The CLI calls this too.

It resolves the hosts (an inventory, or the local default), snapshots the job code into
the run directory, partitions the work into the journal, and hands everything to the
master loop. The journal, not this function, is the record: ``RunResult`` is read back
from it.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

from .engine import launch
from .engine import scheduler as s
from .engine.bundle import build_bundle
from .engine.config import RunConfig
from .engine.hostspec import fleet_entries
from .engine.target import Code, code_of
from .errors import ConfigError, InputError, RunError, TargetError
from .executor import JobExecutor
from .inventory import Inventory, resolve_inventory
from .jobs import JobState
from .mapreduce.job import MapReduce
from .partition import InputFile, Partitioner, check_inputs, parse_split
from .record.journal import Journal
from .record.results import INPUT_FILE_KEY
from .record.runs import RunLock, create_run_dir, find_run
from .result import RunResult, load_run_result

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
    hosts: str | None = None,
    engine: str = "sshmr",
    spark_master: str | None = None,
    **options: Any,
) -> RunResult:
    """Run ``executor`` on every job and return the run's :class:`RunResult`.

    Jobs come from ``items`` (one job per item) or from input ``files`` cut by ``split``
    (``lines``, ``lines:N``, ``files``, ``bytes:SIZE``) or by a ``partitioner``.
    ``inventory`` (an sshmr YAML, Ansible INI or Ansible YAML inventory path) selects SSH
    hosts; without it jobs run on this machine with one slot per CPU. ``hosts`` (a pattern:
    ``web``, ``web*``, ``web:db``, ``web:!web03``) keeps only those hosts of the inventory;
    without an inventory it picks ``Host`` aliases of ``~/.ssh/config``.
    ``options`` are :class:`RunConfig` fields: ``timeout``, ``max_retries``, ``max_living``,
    ``slots``, ``seed``, ``accept_new_hosts``, ...

    ``engine="spark"`` runs a ``MapReduce`` on Apache Spark instead (``spark_master``:
    ``local[*]`` by default, ``spark://...``, ``yarn``, ``k8s://...``); see
    ``sshmr.spark``.
    """
    instance = executor() if isinstance(executor, type) else executor
    if not isinstance(instance, JobExecutor):
        raise TargetError(f"{type(instance).__name__} is not a sshmr.JobExecutor subclass")
    if engine != "sshmr" or spark_master is not None:
        return _run_elsewhere(instance, engine, spark_master, items, files, split, partitioner,
                              inventory, hosts, runs_dir, progress, code, options)
    inv = resolve_inventory(inventory, hosts)
    if isinstance(instance, MapReduce):
        from .mapreduce.driver import run_mapreduce

        return load_run_result(run_mapreduce(
            instance, items, files=files, split=split, partitioner=partitioner,
            inventory=inv, runs_dir=runs_dir, progress=progress, code=code, **options))
    for name in MAPREDUCE_OPTIONS:
        if options.get(name) is not None:
            raise ConfigError(f"{name!r} is a MapReduce option, but {type(instance).__name__}"
                              " is not a sshmr.MapReduce")
        options.pop(name, None)
    config = RunConfig.build(instance, **options)
    payloads = _payloads(items, files, split, partitioner)
    code = code or code_of(type(instance))
    bundle = build_bundle(code, instance if vars(instance) else None)
    # Function runs (sshmr.notebook) may send pickled results back: signed with this key.
    key = secrets.token_bytes(32) if getattr(instance, "pickle_results", False) is True else None

    run_id, run_dir = create_run_dir(runs_dir)
    lock = RunLock(run_dir)
    journal = Journal(run_dir, create=True)
    try:
        launch.record_run(journal, run_id, runs_dir, code, bundle, config, inv,
                          pickle_results=key is not None)
        count = _add_jobs(journal, payloads)
        journal.flush()
        sched = launch.make_scheduler(config, [h.name for h in inv.hosts] if inv else ["local"])
        launch.execute(journal, run_dir, run_id, runs_dir, inv, config, bundle, sched,
                       [s.JobsAdded(tuple(range(1, count + 1)))], progress, result_key=key)
    except (OSError, sqlite3.Error) as exc:
        launch.stop_if_runs_dir_full(exc, journal, run_dir)
        raise
    finally:
        journal.close()
        lock.release()
    return load_run_result(run_dir)


def _run_elsewhere(instance: JobExecutor, engine: str, master: str | None,
                   items: Iterable[Any] | None, files: list[str] | None, split: str | None,
                   partitioner: Partitioner | None, inventory: Any, hosts: str | None,
                   runs_dir: str, progress: Callable[[str], None] | None, code: Code | None,
                   options: dict[str, Any]) -> RunResult:
    """``engine="spark"``: a MapReduce on Spark (``sshmr.spark.runner``, imported lazily)."""
    if engine == "sshmr":
        raise ConfigError("spark_master is for engine='spark': add engine='spark'")
    if engine != "spark":
        raise ConfigError(f"engine {engine!r}: expected 'sshmr' (the default) or 'spark'")
    if not isinstance(instance, MapReduce):
        raise ConfigError(f"--engine spark runs a sshmr.MapReduce; {type(instance).__name__}"
                          " is a plain job: run it on sshmr's engine")
    if items is not None and files:
        raise InputError("give the input paths either as items or as files, not both")
    from .spark.runner import run_spark

    inputs = [os.fspath(p) for p in (files if items is None else items) or []]
    return load_run_result(run_spark(
        instance, inputs, master=master, runs_dir=runs_dir, progress=progress, code=code,
        split=split, partitioner=partitioner, inventory=inventory, hosts=hosts, **options))


def resume(
    run_id: str | None = None,
    *,
    runs_dir: str = "sshmr-runs",
    inventory: str | os.PathLike | None = None,
    accept_new_hosts: bool = False,
    progress: Callable[[str], None] | None = None,
) -> RunResult:
    """Continue a run whose master died: collect what finished remotely, re-queue the rest.

    A job dispatched with ``max_retries=0`` is never launched again: if it still runs under
    the dead master's agent, it is waited for (the agent ends it within ``max_living``);
    if its result is not on its host, it ends UNKNOWN. A second ``resume`` of a running
    run is refused.
    """
    from .engine.collect import collect_open_attempts, remove_run_dirs

    run_dir = find_run(runs_dir, run_id)
    lock = RunLock(run_dir)
    journal = Journal(run_dir)
    try:
        meta = journal.meta()
        if meta.get("engine") == "spark":
            raise RunError(f"run {meta['run_id']} ran on Spark, which has no journal of its"
                           " tasks to resume from: start it again with 'sshmr run --engine"
                           " spark'")
        if "config" not in meta:  # its master died before the jobs were recorded
            raise RunError(f"run {os.path.basename(run_dir)} stopped before its jobs were"
                           " recorded; nothing to resume: start it again with 'sshmr run'")
        if meta.get("state") not in ("running", None):
            raise RunError(f"run {meta['run_id']} already ended ({meta['state']}); nothing to"
                           " resume")
        config = RunConfig(**dict(meta["config"], accept_new_hosts=accept_new_hosts))
        inv = resolve_inventory(inventory or meta.get("inventory"), meta.get("host_pattern"))
        code = Code(meta["code_module"], meta["code_class"], launch.load_code(run_dir))
        bundle = build_bundle(code, state=meta.get("code_state"))
        sessions_for = launch.host_transports(inv, config, meta.get("runs_dir", runs_dir))
        sessions_for += fleet_entries(meta, config, {t.name for t, *_ in sessions_for})
        # a job still running under the dead master's agent ends within its timeout (or
        # max_living): by the agent's clock, so wait that long at most, and a little more
        collect_open_attempts(journal, sessions_for, meta["run_id"], config.max_retries,
                              config.max_result_size, progress,
                              wait_limit=config.attempt_life + 2 * config.kill_grace + 5)
        if not meta.get("mapreduce") and not journal.db.execute(
                "SELECT 1 FROM jobs WHERE state IN ('PENDING', 'RUNNING') LIMIT 1").fetchone():
            remove_run_dirs(sessions_for, meta["run_id"])  # nothing to run: no agent will
        if meta.get("mapreduce"):  # continue at the step, phase and task where it stopped
            from .mapreduce.driver import continue_mapreduce

            journal.event("resumed", f"pid {os.getpid()}")
            journal.set_meta(pid=os.getpid())
            journal.flush()
            continue_mapreduce(journal, run_dir, inv, config, bundle, progress)
            return load_run_result(run_dir)
        sched = launch.make_scheduler(config, [t.name for t, *_ in sessions_for],
                                      first_attempt_id=journal.max_attempt_id() + 1)
        for job_id, launches in journal.db.execute(
                "SELECT id, launches FROM jobs WHERE state = 'PENDING' ORDER BY id").fetchall():
            sched.restore_job(job_id, JobState.PENDING, launches)
        journal.event("resumed", f"pid {os.getpid()}")
        journal.set_meta(pid=os.getpid())
        journal.flush()
        key = secrets.token_bytes(32) if meta.get("pickle_results") else None
        launch.execute(journal, run_dir, meta["run_id"], meta.get("runs_dir", runs_dir), inv,
                       config, bundle, sched, [s.JobsAdded(())], progress,
                       transports=sessions_for, result_key=key)
    except (OSError, sqlite3.Error) as exc:
        launch.stop_if_runs_dir_full(exc, journal, run_dir)
        raise
    finally:
        journal.close()
        lock.release()
    return load_run_result(run_dir)


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
