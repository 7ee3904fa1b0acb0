"""``sshmr run`` and ``sshmr resume``: start or continue a run, show it live, report how
it ended (summary line, exit code, optional HTML report)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from ..engine.config import DEFAULT_MAX_LIVING, DEFAULT_MAX_RETRIES
from ..errors import ConfigError, SshmrError
from .app import EXIT, HOSTS, RUNS_DIR, main


class _RunCommand(click.Command):
    """``run``: everything after ``--`` is the mrjob job's own options (ctx.meta)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            cut = args.index("--")
            ctx.meta["job_args"], args = args[cut + 1:], args[:cut]
        return super().parse_args(ctx, args)


@main.command("run", cls=_RunCommand, short_help="Run a job class or a MapReduce over the inputs.")
@click.argument("target")
@click.argument("inputs", nargs=-1)
@click.option("-i", "--inventory", type=click.Path(dir_okay=False),
              help="Host inventory: sshmr YAML, or an Ansible INI/YAML inventory. Absent (and"
                   " no --hosts): run locally, one slot per CPU.")
@HOSTS
@click.option("--timeout", help="Seconds one attempt may run, or PCT%[:FLOOR[:CEILING]]:"
                                " PCT% of the median runtime of the jobs that succeeded so far"
                                " (e.g. 300% or 300%:10s:1h; floor 1s, ceiling max_living)."
                                " Default: the job class's timeout, else none (only"
                                " --max-living bounds an attempt).")
@click.option("--max-retries", type=int,
              help=f"Re-runs after a failure (0: never run twice); default {DEFAULT_MAX_RETRIES},"
                   " or the job class's max_retries.")
@click.option("--max-living", type=float,
              help=f"Seconds a worker process lives at most; default {DEFAULT_MAX_LIVING:.0f},"
                   " or the job class's max_living.")
@click.option("--slots", type=int,
              help="Worker slots per host (overrides the inventory); default: the inventory's,"
                   " locally one per CPU.")
@click.option("--split", help="lines (default), lines:N, files or bytes:SIZE.")
@click.option("--partitioner", help="FILE.py:Class, a sshmr.Partitioner of your own.")
@click.option("--seed", type=int,
              help="Seed for the random assignment of jobs to slots; default: a new one each run.")
@click.option("--halt-on-failures",
              help="Stop after N failed jobs, or PCT% of the jobs; default: never.")
@click.option("--speculate", type=float, metavar="FACTOR",
              help="Idempotent jobs only: copy a straggler running FACTOR x the median runtime"
                   " to another host; the first result wins. Default: off.")
@RUNS_DIR
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary as the last line.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@click.option("--accept-new-hosts", is_flag=True,
              help="Record unknown host keys in known_hosts (like accept-new).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="Write the HTML run report to this file when the run ends (also when it"
                   " failed or was cancelled).")
@click.option("--output", type=click.Path(file_okay=False),
              help="MapReduce: the output directory (part-NNNNN files, then _SUCCESS).")
@click.option("--reducers", type=int, help="MapReduce: reduce tasks (default: total slots).")
@click.option("--sort-memory", help="MapReduce: memory a task sorts in before it spills to"
                                    " disk (default 256M).")
@click.option("--overwrite", is_flag=True, help="MapReduce: replace an existing --output.")
@click.option("--max-result-size", help="A larger result fails its attempt and is not fetched"
                                        " (default 1G).")
@click.option("--watch-inventory", is_flag=True,
              help="Re-read the inventory when it changes: new hosts join, removed hosts"
                   " drain; a broken edit is ignored with a warning.")
@click.option("--allow-empty", is_flag=True,
              help="Exit 0 when the inputs give no job (else: exit 2).")
@click.option("--engine", type=click.Choice(["sshmr", "spark"]), default="sshmr",
              show_default=True,
              help="MapReduce: run on sshmr's engine, or on Apache Spark via pyspark"
                   " (pip install 'sshmr[spark]'; see README 'When you outgrow your fleet').")
@click.option("--spark-master", help="--engine spark: the master URL (default local[*];"
                                     " spark://HOST:PORT, yarn, k8s://... pass through).")
def run_cmd(target: str, inputs: tuple[str, ...], inventory: str | None, hosts: str | None,
            timeout: str | None,
            max_retries: int | None, max_living: float | None, slots: int | None,
            split: str | None, partitioner: str | None, seed: int | None,
            halt_on_failures: str | None, speculate: float | None, runs_dir: str,
            as_json: bool, quiet: bool,
            accept_new_hosts: bool, report_path: str | None = None, output: str | None = None,
            reducers: int | None = None, sort_memory: str | None = None,
            overwrite: bool = False, max_result_size: str | None = None,
            watch_inventory: bool = False, allow_empty: bool = False, engine: str = "sshmr",
            spark_master: str | None = None) -> None:
    """Run TARGET (file.py:Class or package.module:Class) on the jobs cut from INPUTS.

    Each input line is one job unless --split or --partitioner says otherwise; no INPUTS
    (or -) reads standard input. Inputs that give no job exit 2 (--allow-empty: 0).
    A sshmr.MapReduce TARGET runs its steps over INPUTS
    (text files, .gz read transparently) and writes --output DIR. So does a mrjob.job.MRJob
    TARGET, unmodified; its own options go after -- (e.g. -- --stop-words-file w.txt).
    """
    from .. import api
    from ..engine.config import parse_halt
    from ..engine.target import load_target
    from ..executor import JobExecutor
    from ..mapreduce.mrjob_adapter import is_mrjob_class
    from ..partition import Partitioner
    from ..views.live import run_output

    cls, code = load_target(target, JobExecutor, accept=is_mrjob_class)
    job_args = click.get_current_context().meta.get("job_args")
    files = list(inputs) or ["-"]
    if is_mrjob_class(cls):  # an unmodified mrjob job: its options come after --
        from ..mapreduce.mrjob_adapter import adapt

        adapted = adapt(cls, job_args or [], files, code=code, split=split)
        for warning in adapted.warnings:
            click.echo(f"sshmr: warning: {warning}", err=True)
        cls, code, files, split = adapted.executor, adapted.code, adapted.inputs, adapted.split
    elif job_args is not None:
        raise ConfigError(f"options after -- ({' '.join(job_args)}) are for mrjob jobs, and"
                          f" {target} is not a mrjob.job.MRJob; put sshmr options before --")
    if "-" in files and sys.stdin.isatty():  # else it would wait silently for the terminal
        click.echo("sshmr: reading jobs from standard input, one per line; end it with Ctrl-D"
                   " (or give INPUTS files)", err=True)
    if report_path:
        from ..views.report import check_output_path

        check_output_path(report_path)
    if spark_master and engine != "spark":
        raise ConfigError("--spark-master is for --engine spark: add --engine spark")
    if engine == "spark":
        _run_spark(cls, files, locals())
        return
    user_partitioner = None
    if partitioner:
        pcls, _ = load_target(partitioner, Partitioner, what="--partitioner")
        user_partitioner = pcls()

    with run_output(runs_dir, quiet=quiet, as_json=as_json) as progress:
        result = api.run(
            cls, files=files, split=split, partitioner=user_partitioner,
            inventory=inventory, hosts=hosts, runs_dir=runs_dir, progress=progress, code=code,
            timeout=timeout, max_retries=max_retries, max_living=max_living, slots=slots,
            seed=seed, accept_new_hosts=accept_new_hosts or None,
            halt_on_failures=parse_halt(halt_on_failures), speculate=speculate,
            output=output, reducers=reducers, sort_memory=_size(sort_memory, "--sort-memory"),
            overwrite=overwrite or None,
            max_result_size=_size(max_result_size, "--max-result-size"),
            watch_inventory=watch_inventory or None)
    if report_path:
        _write_report(result.run_dir, report_path, quiet)
    _report(result, as_json, quiet, allow_empty=allow_empty)


def _run_spark(cls: Any, files: list[str], given: dict[str, Any]) -> None:
    """``run --engine spark``: the run on Spark, its summary line and exit code."""
    from .. import api

    say = None if given["quiet"] else (
        lambda line: click.echo(f"sshmr: {line}", err=True))  # noqa: E731
    result = api.run(
        cls, files=files, engine="spark", spark_master=given["spark_master"],
        runs_dir=given["runs_dir"], progress=say, code=given["code"],
        split=given["split"],
        partitioner=given["partitioner"], inventory=given["inventory"], hosts=given["hosts"],
        timeout=given["timeout"], max_retries=given["max_retries"],
        max_living=given["max_living"], slots=given["slots"], seed=given["seed"],
        accept_new_hosts=given["accept_new_hosts"] or None,
        halt_on_failures=given["halt_on_failures"], speculate=given["speculate"],
        output=given["output"], reducers=given["reducers"],
        sort_memory=_size(given["sort_memory"], "--sort-memory"),
        overwrite=given["overwrite"] or None,
        max_result_size=_size(given["max_result_size"], "--max-result-size"),
        watch_inventory=given["watch_inventory"] or None)
    if given["report_path"]:
        _write_report(result.run_dir, given["report_path"], given["quiet"])
    if given["as_json"]:
        click.echo(json.dumps(dict(result.summary(), engine="spark",
                                   message=result.message)))
    elif result.state != "done":
        click.echo(f"sshmr: error: {result.message} (run {result.run_id})", err=True)
    elif not given["quiet"]:
        click.echo(f"run {result.run_id} done on Spark in {result.elapsed_s:.2f}s:"
                   f" {result.message}", err=True)
    sys.exit(0 if result.state == "done" else 1)


def _size(text: str | None, option: str) -> int | None:
    from ..partition import _parse_size

    if text is None:
        return None
    size = _parse_size(text.strip())
    if size is None:
        raise ConfigError(f"{option} {text!r}: expected a size like 512M or 2G")
    return size


def _write_report(run_dir: str, path: str, quiet: bool) -> None:
    """``run --report``: the run's outcome (and exit code) stands even if this fails."""
    from ..views.report import write_report

    try:
        write_report(run_dir, path)
    except SshmrError as exc:
        click.echo(f"sshmr: error: {exc} ('sshmr report {os.path.basename(run_dir)} -o FILE'"
                   " writes it later)", err=True)
    else:
        if not quiet:
            click.echo(f"sshmr: report written to {path}", err=True)


def _say_setup_failures(run_dir: str) -> None:
    """One line per distinct setup() error: the hosts it failed on, where the traceback is."""
    from ..record.journal import Journal
    from ..views.show import setup_what

    journal = Journal(run_dir, readonly=True)
    try:
        failures, target = journal.setup_failures(), journal.meta().get("target", "")
    finally:
        journal.close()
    by_error: dict[str, list[str]] = {}
    for f in failures:
        by_error.setdefault(f["error"], []).append(f["host"])
    run_id = os.path.basename(run_dir)
    for error, hosts in by_error.items():
        click.echo(f"sshmr: {setup_what(error, target)} failed on {', '.join(hosts)}: {error}"
                   f" (traceback: sshmr show {run_id} setup)", err=True)


def _report(result: Any, as_json: bool, quiet: bool, allow_empty: bool = True) -> None:
    if not quiet or result.state == "no_hosts":
        _say_setup_failures(result.run_dir)
    bad = result.failed + result.unknown
    if bad and not quiet:  # each was reported as it happened; say where to read them
        click.echo(f"sshmr: {bad} job(s) failed or unknown: 'sshmr results --failed "
                   f"{result.run_id}' lists them, 'sshmr show {result.run_id} JOB' shows one",
                   err=True)
    finished_mr = result.output is not None and result.state == "done"
    if result.message and result.state == "no_hosts":
        click.echo(f"sshmr: error: {result.message}", err=True)
    elif result.message and not quiet and not finished_mr:
        click.echo(f"sshmr: {result.message}", err=True)
    summary = result.summary()
    where = (f"output: {result.output}" if finished_mr
             else f"results: sshmr results {result.run_id}")
    if as_json:
        click.echo(json.dumps(summary))
    elif not quiet:
        tasks = " tasks" if result.output is not None else ""
        click.echo(f"run {result.run_id} {result.state}: {result.succeeded}/{len(result)}{tasks}"
                   f" succeeded, {result.failed} failed, {result.unknown} unknown, "
                   f"{result.attempts} attempts in {summary['elapsed_s']:.2f}s ({where})")
    code = EXIT.get(result.state, 1)
    if code == 0 and not result.ok:
        code = 1
    if code == 0 and len(result) == 0 and not allow_empty:
        click.echo("sshmr: warning: the inputs gave no job, nothing ran (exit 2); pass"
                   " --allow-empty if an empty input is fine", err=True)
        code = ConfigError.exit_code
    sys.exit(code)


@main.command("resume", short_help="Continue a run whose master died.")
@click.argument("run_id", required=False)
@click.option("-i", "--inventory", type=click.Path(dir_okay=False),
              help="Inventory to use instead of the one the run started with.")
@RUNS_DIR
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary as the last line.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@click.option("--accept-new-hosts", is_flag=True)
def resume_cmd(run_id: str | None, inventory: str | None, runs_dir: str, as_json: bool,
               quiet: bool, accept_new_hosts: bool) -> None:
    """Continue RUN_ID (default: the latest) after its master died (e.g. kill -9).

    Results that finished remotely meanwhile are collected; a max_retries=0 job that was
    dispatched is never launched again (waited for if it still runs under the old agent,
    UNKNOWN unless its result is found); the rest is re-queued. Refused while another
    master holds the run.
    """
    from .. import api
    from ..record.runs import find_run
    from ..views.live import run_output

    run_dir = find_run(runs_dir, run_id)
    with run_output(runs_dir, quiet=quiet, as_json=as_json, run_dir=run_dir) as progress:
        result = api.resume(run_id, runs_dir=runs_dir, inventory=inventory,
                            accept_new_hosts=accept_new_hosts, progress=progress)
    _report(result, as_json, quiet)
