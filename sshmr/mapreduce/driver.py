"""MapReduce on the engine: steps, phases, the shuffle and the output directory (master).

A MapReduce run is one run (one journal) made of *phases*: for each step a map phase
and, when the step has a reducer, a reduce phase. Each task is an engine job, so
timeouts, retries, max_living, quarantine, cancel and resume apply to it unchanged.
The phases run in one engine run: the hosts' agents and workers start once, and each
phase's tasks are added when the one before it ended. Between them the master:

* cuts the input into map tasks (``--split bytes:SIZE`` at line boundaries, ``files``,
  or a Partitioner; a ``.gz`` file is one task, as gzip cannot be split);
* shuffles: a map task's result is a segment file with one sorted run per reducer,
  fetched (streamed, checksummed) into the run directory when the task commits; reduce
  task *r* gets one file holding run *r* of every map task, in map task order;
* writes the output: each final task's records to ``DIR/part-NNNNN`` (a temp name, then
  a rename), and ``DIR/_SUCCESS`` last.

``meta["mapreduce"]`` records the phases created so far, the current phase and the
counters, so ``sshmr resume`` continues at the step, phase and task where it stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..engine import launch
from ..engine import scheduler as s
from ..engine.bundle import Bundle, build_bundle
from ..engine.config import RunConfig
from ..engine.target import code_of
from ..errors import ConfigError, InputError
from ..inventory import Inventory, load_inventory
from ..jobs import JobState
from ..partition import Partitioner, check_inputs
from ..record.journal import Journal
from ..record.results import INPUT_FILE_KEY
from ..record.runs import RunLock, create_run_dir
from ..remote.mrfiles import concat_segments, copy_data, copy_lines, read_trailer, remove_quietly
from .job import MapReduce, step_functions
from .phases import (
    Ctx,
    add_phase,
    open_tasks,
    phase_failure,
    phase_of,
    result_files,
)
from .splits import first_splits

MiB = 1 << 20
DEFAULT_SORT_MEMORY = 256 * MiB
SUCCESS = "_SUCCESS"


def run_mapreduce(job: MapReduce, items: Iterable[Any] | None = None, *,
                  files: list[str] | None = None, split: str | None = None,
                  partitioner: Partitioner | None = None, inventory: Any = None,
                  runs_dir: str = "sshmr-runs", progress: Callable[[str], None] | None = None,
                  code: Any = None, output: str | None = None, reducers: int | None = None,
                  sort_memory: int | None = None, overwrite: bool | None = False,
                  **options: Any) -> str:
    """Run ``job``'s steps over input files (``items`` or ``files``); see ``sshmr.run``.
    Returns the run directory (``sshmr.run`` reads the run's result back from it)."""
    steps = checked_steps(job, output)
    inputs = [os.fspath(p) for p in (files if items is None else items) or ["-"]]
    if items is not None and files:
        raise InputError("give the input paths either as items or as files, not both")
    check_inputs(inputs)
    config = RunConfig.build(job, **options)
    inv = load_inventory(inventory) if isinstance(inventory, (str, os.PathLike)) else inventory
    check_sizes(reducers, sort_memory)
    out_dir = clear_output(output, overwrite)
    code = code or code_of(type(job))
    bundle = build_bundle(code, job if vars(job) else None)

    run_id, run_dir = create_run_dir(runs_dir)
    lock = RunLock(run_dir)
    journal = Journal(run_dir, create=True)
    created = False
    try:
        os.makedirs(out_dir)
        created = True
        launch.record_run(
            journal, run_id, runs_dir, code, bundle, config, inv,
            mapreduce={
                "steps": [s.describe() for s in steps], "output": out_dir,
                "reducers": reducers or _fleet_slots(inv, config),
                "sort_memory": sort_memory or DEFAULT_SORT_MEMORY, "phases": [],
                "current": None, "counters": {}, "shuffle_bytes": 0,
                "output_lines": bool(job.output_lines)})
        ctx = Ctx(journal, run_dir, run_id, runs_dir, inv, config, bundle, progress)
        _add_map_phase(ctx, 0, first_splits(run_dir, inputs, split, partitioner,
                                                _fleet_slots(inv, config)))
        journal.flush()
        _drive(ctx)
    finally:
        journal.close()
        lock.release()
        if created:  # a run that wrote nothing must not block its own rerun
            with contextlib.suppress(OSError):
                os.rmdir(out_dir)  # only if empty: a finished run wrote _SUCCESS into it
    return run_dir


def continue_mapreduce(journal: Journal, run_dir: str, inv: Inventory | None, config: RunConfig,
                       bundle: Bundle, progress: Callable[[str], None] | None) -> None:
    """``sshmr resume`` of a MapReduce run (its open attempts already collected)."""
    meta = journal.meta()
    ctx = Ctx(journal, run_dir, meta["run_id"], meta.get("runs_dir", "sshmr-runs"), inv,
               config, bundle, progress)
    _drive(ctx)


# ------------------------------------------------------------------------ phases

def _drive(ctx: Ctx) -> None:
    started = time.monotonic()  # elapsed time, immune to wall-clock steps
    state, message = _run_phases(ctx)
    if state == "done":
        message = _write_output(ctx)
    elapsed = float(ctx.journal.meta().get("elapsed_s") or 0.0) + time.monotonic() - started
    ctx.journal.set_meta(state=state, message=message, elapsed_s=elapsed)
    ctx.journal.flush()
    if state == "done":
        _remove_intermediate(ctx)


def _phase_order(ctx: Ctx) -> Iterator[dict[str, Any]]:
    """The run's phases in order, each created (its tasks added) when it is reached: a
    later step's map once the step before it is done, a reduce by shuffling its map's
    outputs. Advance only past a phase whose tasks all succeeded."""
    for step, desc in enumerate(ctx.mr["steps"]):
        if phase_of(ctx, step, "map") is None:
            _add_map_phase(ctx, step, _step_inputs(ctx, step))
        yield _checked(phase_of(ctx, step, "map"))
        if desc["reducer"]:
            if phase_of(ctx, step, "reduce") is None:
                _shuffle(ctx, step)
            yield _checked(phase_of(ctx, step, "reduce"))


def _run_phases(ctx: Ctx) -> tuple[str, str]:
    """Run every phase left, in one engine run: the hosts' agents and workers start once
    and are kept from phase to phase (a phase is added when the one before it ended).
    ("done", "") when every task of every phase succeeded."""
    phases = _Phases(ctx)
    rows = phases.next_tasks()
    if rows is None:
        return phases.outcome
    hosts = [h.name for h in ctx.inv.hosts] if ctx.inv else ["local"]
    sched = launch.make_scheduler(ctx.config, hosts,
                                  first_attempt_id=ctx.journal.max_attempt_id() + 1)
    for job_id, launches in rows:
        sched.restore_job(job_id, JobState.PENDING, launches)
    finished = launch.execute(ctx.journal, ctx.run_dir, ctx.run_id, ctx.runs_dir, ctx.inv,
                              ctx.config, ctx.bundle, sched, [s.JobsAdded(())], ctx.progress,
                              record_state=False, next_phase=phases.next_job_ids)
    if finished.state != "done":
        return finished.state, finished.message
    return phases.outcome


class _Phases:
    """Walks the run's phases: each one's unfinished tasks in turn, stopping at the first
    phase that failed (``outcome`` says how the walk ended)."""

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.order = _phase_order(ctx)
        self.current: dict[str, Any] | None = None
        self.outcome = ("done", "")

    def next_tasks(self) -> list[tuple[int, int]] | None:
        """(id, launches) of the next phase's unfinished tasks; None: no phase is left, or
        the one that just ran failed."""
        while True:
            if self.current is not None:
                failure = phase_failure(self.ctx, self.current)
                if failure is not None:
                    self.outcome = failure
                    return None
            self.current = next(self.order, None)
            if self.current is None:
                return None
            rows = open_tasks(self.ctx, self.current)
            if rows:
                return rows

    def next_job_ids(self) -> list[int] | None:
        """The engine's ``next_phase``: the next phase's job ids, or None."""
        rows = self.next_tasks()
        return [job_id for job_id, _ in rows] if rows else None


def _checked(phase: dict[str, Any] | None) -> dict[str, Any]:
    assert phase is not None
    return phase


# ------------------------------------------------------------------------ inputs

def _step_inputs(ctx: Ctx, step: int) -> list[tuple[str, str]]:
    """A later step's map tasks: one per output of the previous step's last phase."""
    prev = phase_of(ctx, step - 1, "reduce") or phase_of(ctx, step - 1, "map")
    assert prev is not None
    return [(os.path.join(ctx.run_dir, f), f"step {step} output {i}")
            for i, f in enumerate(result_files(ctx, prev))]


def _add_map_phase(ctx: Ctx, step: int, splits: list[tuple[str, str]]) -> None:
    desc = ctx.mr["steps"][step]
    parts = ctx.mr["reducers"] if desc["reducer"] else 1
    payloads = [_payload(path, "map", step, i, parts, ctx, source, text=step == 0)
                for i, (path, source) in enumerate(splits)]
    add_phase(ctx, step, "map", payloads)
    ctx.say(f"step {step + 1}/{len(ctx.mr['steps'])} map: {len(payloads)} tasks")


def _payload(path: str, phase: str, step: int, task: int, parts: int, ctx: Ctx, source: str,
             text: bool = False) -> str:
    mr = {"phase": phase, "step": step, "task": task, "parts": parts, "text": text,
          "memory": ctx.mr["sort_memory"], "source": source}
    return json.dumps({INPUT_FILE_KEY: os.path.abspath(path), "mr": mr},
                          separators=(",", ":"))


# ------------------------------------------------------------------ shuffle, output

def _shuffle(ctx: Ctx, step: int) -> None:
    """Build reduce task r's input from run r of every map task, then add the phase."""
    maps = phase_of(ctx, step, "map")
    assert maps is not None
    ctx.save(current={"step": step, "phase": "shuffle"})
    ctx.journal.flush()
    files = [os.path.join(ctx.run_dir, f) for f in result_files(ctx, maps)]
    trailers = [read_trailer(f) for f in files]
    dest = os.path.join(ctx.run_dir, "mr", f"s{step}")
    os.makedirs(dest, exist_ok=True)
    payloads, moved = [], 0
    for r in range(ctx.mr["reducers"]):
        sources = [(f, *t["parts"][r]) for f, t in zip(files, trailers, strict=True)]
        moved += sum(length for _, _, length in sources)
        path = os.path.join(dest, f"r{r:05d}")
        concat_segments(sources, path, {})
        payloads.append(_payload(path, "reduce", step, r, 1, ctx,
                                 f"partition {r} of {len(files)} map outputs"))
    ctx.save(shuffle_bytes=ctx.mr["shuffle_bytes"] + moved)
    ctx.say(f"step {step + 1}/{len(ctx.mr['steps'])} shuffle: {moved / MiB:.1f} MiB to"
            f" {len(payloads)} reducers")
    add_phase(ctx, step, "reduce", payloads)


def _write_output(ctx: Ctx) -> str:
    steps = ctx.mr["steps"]
    last = phase_of(ctx, len(steps) - 1, "reduce" if steps[-1]["reducer"] else "map")
    assert last is not None
    out_dir = ctx.mr["output"]
    ctx.save(current={"step": len(steps) - 1, "phase": "output"})
    os.makedirs(out_dir, exist_ok=True)
    files = result_files(ctx, last)
    copy = copy_lines if ctx.mr.get("output_lines") else copy_data
    for i, f in enumerate(files):
        copy(os.path.join(ctx.run_dir, f), os.path.join(out_dir, f"part-{i:05d}"))
    with open(os.path.join(out_dir, SUCCESS), "wb") as f:
        os.fsync(f.fileno())
    ctx.save(current=None)
    return f"output: {len(files)} parts in {out_dir}"


def _remove_intermediate(ctx: Ctx) -> None:
    """Once the run is recorded done: the input chunks, shuffle files and task outputs."""
    remove_quietly(os.path.join(ctx.run_dir, "mr"))
    for f in _task_results(ctx):
        remove_quietly(os.path.join(ctx.run_dir, f))


def _task_results(ctx: Ctx) -> list[str]:
    return [r[0] for r in ctx.journal.db.execute(
        "SELECT result_file FROM jobs WHERE result_file IS NOT NULL")]


def _fleet_slots(inv: Inventory | None, config: RunConfig) -> int:
    """The run's slots: the default number of reducers, and what sizes the default split."""
    if config.slots:
        return config.slots * (len(inv.hosts) if inv else 1)
    if inv is None:
        return os.cpu_count() or 1
    return sum(h.slots if isinstance(h.slots, int) else 4 for h in inv.hosts)


def check_sizes(reducers: int | None, sort_memory: int | None) -> None:
    """``--reducers`` and ``--sort-memory`` as every engine takes them."""
    if reducers is not None and reducers < 1:
        raise ConfigError(f"reducers must be >= 1, got {reducers}")
    if sort_memory is not None and sort_memory < MiB:
        raise ConfigError(f"sort memory must be at least 1 MiB, got {sort_memory} bytes")


def clear_output(output: str, overwrite: bool) -> str:
    """The output directory's absolute path, once an old one is removed (``--overwrite``)
    or refused; a symbolic link is removed, never its target."""
    out_dir = os.path.abspath(output)
    if os.path.lexists(out_dir):
        if not overwrite:
            raise ConfigError(f"output directory {output} already exists; choose another"
                              " --output or pass --overwrite to replace it")
        is_dir = os.path.isdir(out_dir) and not os.path.islink(out_dir)
        shutil.rmtree(out_dir) if is_dir else os.unlink(out_dir)
    return out_dir


def checked_steps(job: MapReduce, output: str | None) -> list:
    """The job's steps, once it has an output directory and steps every engine can run."""
    if output is None:
        raise ConfigError(f"{type(job).__name__} is a MapReduce: give an output directory"
                          " (--output DIR / output=...)")
    try:
        return step_functions(job)
    except TypeError as exc:
        raise ConfigError(str(exc)) from None
