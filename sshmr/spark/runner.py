"""``--engine spark``: a ``sshmr.MapReduce`` run as classic PySpark RDDs (the driver side).

The plan, per step: the input RDD (text lines from ``textFile``, only ``\\n`` ending a
line, as sshmr reads; or the previous step's record chunks) -> ``mapPartitionsWithIndex``
(one sshmr map task per Spark partition: mapper, combiner, partitioner, sort) ->
``partitionBy`` (Spark's shuffle of each reducer's sorted runs) -> ``mapPartitionsWithIndex``
(one sshmr reduce task per reducer). The last step's chunks come back to this process
partition by partition and are written with the engine's own writers (``sshmr.spark.plan``)
to ``DIR/part-NNNNN``, then ``_SUCCESS``. Counters ride in a Spark
accumulator. The run gets a run directory and a journal (``engine: spark``) so that
``sshmr runs`` and ``sshmr report`` show it; it has no jobs, attempts or resume.

What sshmr's engine does and Spark cannot is mapped (``spark_settings``) or refused here
with one line: see ``check_options``.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

from ..engine.bundle import build_bundle
from ..engine.config import DEFAULT_MAX_LIVING, RunConfig
from ..engine.target import Code, code_of
from ..errors import ConfigError, InputError, SshmrError
from ..mapreduce.driver import check_sizes, checked_steps, clear_output
from ..mapreduce.job import MapReduce
from ..mapreduce.mrjob_task import MRJobTask
from ..record.journal import Journal
from ..record.runs import RunLock, create_run_dir
from ..remote.mrfiles import remove_quietly
from .context import check_master, check_runtime, spark_context
from .plan import run_plan

MiB = 1 << 20
DEFAULT_SORT_MEMORY = 256 * MiB
#: Options of sshmr's engine that Spark has no counterpart for: the reason, for the error.
REFUSED = {
    "slots": "Spark's master decides the cores (--spark-master local[N], or the cluster's)",
    "seed": "Spark assigns tasks to executors itself",
    "halt_on_failures": "Spark stops a job at its first task that fails for good",
    "max_result_size": "task outputs travel through Spark's shuffle, not sshmr's results",
    "accept_new_hosts": "Spark reaches no hosts over SSH",
    "watch_inventory": "Spark's cluster manager owns the executors",
    "max_living": "Spark manages the life of its Python workers",
    "split": "Spark cuts the input into partitions itself (textFile's input splits)",
    "partitioner": "Spark reads its input with textFile; give text files",
    "inventory": "Spark runs on its master's executors, not on an sshmr inventory",
    "hosts": "Spark runs on its master's executors, not on an sshmr inventory",
}


def check_options(job: MapReduce, options: dict[str, Any]) -> tuple[RunConfig, list[str]]:
    """The run's configuration, or a one-line ConfigError for an option Spark cannot honour
    (``REFUSED``, an adaptive timeout); warnings for such policies set by the job class."""
    given = {k: v for k, v in options.items() if v is not None and v is not False}
    for name in given:
        if name in REFUSED:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{flag} cannot be used with --engine spark: {REFUSED[name]}")
    known = {f for f in RunConfig.__dataclass_fields__}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ConfigError(f"unknown option(s) for --engine spark: {', '.join(unknown)}")
    config = RunConfig.build(job, **given)
    if isinstance(config.timeout, str):
        raise ConfigError(f"an adaptive timeout ({config.timeout}) needs sshmr's engine (the"
                          " median of finished tasks); give seconds with --engine spark")
    notes = []
    if config.max_living != DEFAULT_MAX_LIVING:
        notes.append(f"{type(job).__name__}.max_living is not applied on Spark ("
                     f"{REFUSED['max_living']})")
    return config, notes


def run_spark(job: MapReduce, inputs: list[str], *, output: str | None,
              master: str | None = None, reducers: int | None = None,
              sort_memory: int | None = None, overwrite: bool | None = False,
              runs_dir: str = "sshmr-runs", progress: Callable[[str], None] | None = None,
              code: Code | None = None, **options: Any) -> str:
    """Run ``job`` on Spark (``master``, default ``local[*]``) over text ``inputs``; write
    ``output`` as sshmr's engine does. Returns the run directory."""
    steps = checked_steps(job, output)
    _check_input_hook(job, inputs)
    if isinstance(job, MRJobTask) and options.get("split") == "files":
        options = dict(options, split=None)  # the adapter's choice for .bz2 (refused above)
    config, notes = check_options(job, options)
    uris = _input_uris(inputs)
    check_sizes(reducers, sort_memory)
    master = check_master(master or "local[*]", config.max_retries)
    check_runtime()
    for note in notes:
        progress(f"warning: {note}") if progress else warnings.warn(note, stacklevel=3)
    out_dir = clear_output(output, overwrite)
    code = code or code_of(type(job))
    bundle = build_bundle(code, job if vars(job) else None)

    from ..engine import launch

    with spark_context(master, config) as sc:
        run_id, run_dir = create_run_dir(runs_dir)
        lock = RunLock(run_dir)
        journal = Journal(run_dir, create=True)
        created = False
        started = time.monotonic()
        try:
            os.makedirs(out_dir)
            created = True
            r = reducers or sc.defaultParallelism
            launch.record_run(
                journal, run_id, runs_dir, code, bundle, config, None, engine="spark",
                spark={"master": sc.master, "app_id": sc.applicationId, "version": sc.version},
                mapreduce={"steps": [s.describe() for s in steps], "output": out_dir,
                           "reducers": r, "sort_memory": sort_memory or DEFAULT_SORT_MEMORY,
                           "phases": [], "current": None, "counters": {}, "shuffle_bytes": 0,
                           "output_lines": bool(job.output_lines)})
            journal.flush()
            if progress:
                progress(f"Spark {sc.version} on {sc.master}: {len(steps)} step(s),"
                         f" {r} reducers")
            state, message, counters = "done", "", {}
            try:
                counters, parts = run_plan(sc, job, journal, run_dir, bundle, uris, inputs, r,
                                           config, out_dir, progress)
                message = f"output: {parts} parts in {out_dir} (Spark {sc.master})"
            except SshmrError:
                raise
            except Exception as exc:  # noqa: BLE001 - Spark's errors: one line, recorded
                state, message = "failed", f"Spark job failed: {task_error(exc)}"
            journal.set_meta(state=state, message=message,
                             elapsed_s=time.monotonic() - started,
                             mapreduce=dict(journal.meta()["mapreduce"], counters=counters))
            journal.flush()
        finally:
            if journal.meta().get("state") == "running":  # an exception is on its way out
                interrupted = isinstance(sys.exc_info()[1], KeyboardInterrupt)
                journal.set_meta(state="cancelled" if interrupted else "failed",
                                 message="interrupted" if interrupted else
                                 f"stopped by an error: {sys.exc_info()[1]}",
                                 elapsed_s=time.monotonic() - started)
            journal.close()
            lock.release()
            if created:
                for name in os.listdir(out_dir):
                    if name.startswith("."):
                        remove_quietly(os.path.join(out_dir, name))
                with contextlib.suppress(OSError):
                    os.rmdir(out_dir)  # only if empty: a finished run wrote _SUCCESS into it
    return run_dir


def task_error(exc: BaseException) -> str:
    """The line that says what failed, out of a Spark job's error (Python traceback
    inside a Java stack trace): sshmr's task error when there is one."""
    text = str(exc)
    found = re.findall(r"TaskError: (.+)", text)
    if found:
        return found[-1].strip()
    found = re.findall(r"^(\w[\w.]*(?:Error|Exception|Timeout)\b: .+)$", text, re.M)
    python = [f for f in found if not f.startswith(("org.", "java.", "py4j.", "scala."))]
    if python:
        return python[-1].strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0][:500] if lines else type(exc).__name__


def _check_input_hook(job: MapReduce, inputs: list[str]) -> None:
    """Spark hands a task text lines, not files: a job that reads whole input files is
    refused. An mrjob job reads lines through its hook (``MRJobTask.input_records``)
    unless it uses ``mapper_raw`` or reads .bz2 (whole files, on sshmr's engine)."""
    name = type(job).__name__
    if isinstance(job, MRJobTask):
        name = job.job_class
        if job.new_job().steps()[0]["mapper_raw"]:
            raise ConfigError(f"{name} uses mapper_raw, which reads whole input files:"
                              " --engine spark hands tasks text lines; run it on sshmr's"
                              " engine")
        if any(p.endswith(".bz2") for p in inputs):
            raise ConfigError(f"{name} reads .bz2 input as whole files on sshmr's engine:"
                              " --engine spark takes text or .gz input for mrjob jobs")
        return
    if getattr(job, "input_records", None) is not None:
        raise ConfigError(f"{name} reads whole input files (input_records): --engine spark"
                          " hands tasks text lines; run it on sshmr's engine")


def _input_uris(inputs: list[str]) -> list[str]:
    """Hadoop URIs of the inputs: a URI (``hdfs://``, ``s3a://``, ...) as given; a local
    path checked here and made ``file://`` (glob characters escaped: a name is a name)."""
    if not inputs:
        raise InputError("--engine spark reads input files: give INPUTS")
    uris = []
    for path in inputs:
        if path == "-":
            raise InputError("--engine spark cannot read standard input: give INPUTS files")
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", path):
            uris.append(path)
            continue
        if os.path.isdir(path):
            raise InputError(f"input file '{path}' is a directory; give the files inside it")
        if not os.path.exists(path):
            raise InputError(f"input file '{path}' does not exist; check the path")
        uris.append("file://" + re.sub(r"([\\*?\[\]{}])", r"\\\1", os.path.abspath(path)))
    return uris


def python_for_workers() -> str:
    return os.environ.get("PYSPARK_PYTHON") or sys.executable
