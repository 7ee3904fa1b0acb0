"""The ``sshmr`` command line (click). Thin: parsing and printing around ``sshmr.api``.

Exit codes: 0 every job succeeded; 1 some job failed or is unknown; 2 bad usage or
configuration; 3 no host usable; 130 interrupted or cancelled.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import click

from .errors import ConfigError, SshmrError

RUNS_DIR = click.option("--runs-dir", default="sshmr-runs", show_default=True,
                        type=click.Path(file_okay=False), help="Where run directories live.")
EXIT = {"done": 0, "halted": 1, "cancelled": 130, "no_hosts": 3}


def _fail(exc: SshmrError) -> None:
    click.echo(f"sshmr: error: {exc}", err=True)
    sys.exit(exc.exit_code)


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SshmrError as exc:
            _fail(exc)
        except KeyboardInterrupt:
            click.echo("sshmr: interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group)
@click.version_option(package_name="sshmr")
def main() -> None:
    """Run jobs and MapReduce over plain SSH servers (or locally, with no inventory)."""


class _RunCommand(click.Command):
    """``run``: everything after ``--`` is the mrjob job's own options (ctx.meta)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            cut = args.index("--")
            ctx.meta["job_args"], args = args[cut + 1:], args[:cut]
        return super().parse_args(ctx, args)


@main.command("run", cls=_RunCommand)
@click.argument("target")
@click.argument("inputs", nargs=-1)
@click.option("-i", "--inventory", type=click.Path(dir_okay=False),
              help="Host inventory (YAML). Absent: run locally, one slot per CPU.")
@click.option("--timeout", type=float, help="Seconds one attempt may run.")
@click.option("--max-retries", type=int, help="Re-runs after a failure (0: never run twice).")
@click.option("--max-living", type=float, help="Seconds a worker process lives at most.")
@click.option("--slots", type=int, help="Worker slots per host (overrides the inventory).")
@click.option("--split", help="lines (default), lines:N, files or bytes:SIZE.")
@click.option("--partitioner", help="FILE.py:Class, a sshmr.Partitioner of your own.")
@click.option("--seed", type=int, help="Seed for the random assignment of jobs to slots.")
@click.option("--halt-on-failures", help="Stop after N failed jobs, or PCT% of the jobs.")
@click.option("--speculate", type=float, metavar="FACTOR",
              help="Idempotent jobs only: copy a straggler running FACTOR x the median runtime"
                   " to another host; the first result wins.")
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
def run_cmd(target: str, inputs: tuple[str, ...], inventory: str | None, timeout: float | None,
            max_retries: int | None, max_living: float | None, slots: int | None,
            split: str | None, partitioner: str | None, seed: int | None,
            halt_on_failures: str | None, speculate: float | None, runs_dir: str,
            as_json: bool, quiet: bool,
            accept_new_hosts: bool, report_path: str | None = None, output: str | None = None,
            reducers: int | None = None, sort_memory: str | None = None,
            overwrite: bool = False) -> None:
    """Run TARGET (file.py:Class or package.module:Class) on the jobs cut from INPUTS.

    Each input line is one job unless --split or --partitioner says otherwise; no INPUTS
    (or -) reads standard input. A sshmr.MapReduce TARGET runs its steps over INPUTS
    (text files, .gz read transparently) and writes --output DIR. So does a mrjob.job.MRJob
    TARGET, unmodified; its own options go after -- (e.g. -- --stop-words-file w.txt).
    """
    from . import api
    from .config import parse_halt
    from .executor import JobExecutor
    from .live import run_output
    from .mrjob_adapter import is_mrjob_class
    from .partition import Partitioner
    from .target import load_target

    cls, code = load_target(target, JobExecutor, accept=is_mrjob_class)
    job_args = click.get_current_context().meta.get("job_args")
    files = list(inputs) or ["-"]
    if is_mrjob_class(cls):  # an unmodified mrjob job: its options come after --
        from .mrjob_adapter import adapt

        adapted = adapt(cls, job_args or [], files, code=code, split=split)
        for warning in adapted.warnings:
            click.echo(f"sshmr: warning: {warning}", err=True)
        cls, code, files, split = adapted.executor, adapted.code, adapted.inputs, adapted.split
    elif job_args is not None:
        raise ConfigError(f"options after -- ({' '.join(job_args)}) are for mrjob jobs, and"
                          f" {target} is not a mrjob.job.MRJob; put sshmr options before --")
    if report_path:
        from .report import check_output_path

        check_output_path(report_path)
    user_partitioner = None
    if partitioner:
        pcls, _ = load_target(partitioner, Partitioner, what="--partitioner")
        user_partitioner = pcls()

    with run_output(runs_dir, quiet=quiet, as_json=as_json) as progress:
        result = api.run(
            cls, files=files, split=split, partitioner=user_partitioner,
            inventory=inventory, runs_dir=runs_dir, progress=progress, code=code,
            timeout=timeout, max_retries=max_retries, max_living=max_living, slots=slots,
            seed=seed, accept_new_hosts=accept_new_hosts or None,
            halt_on_failures=parse_halt(halt_on_failures), speculate=speculate,
            output=output, reducers=reducers, sort_memory=_size(sort_memory, "--sort-memory"),
            overwrite=overwrite or None)
    if report_path:
        _write_report(result.run_dir, report_path, quiet)
    _report(result, as_json, quiet)


def _size(text: str | None, option: str) -> int | None:
    from .partition import _parse_size

    if text is None:
        return None
    size = _parse_size(text.strip())
    if size is None:
        raise ConfigError(f"{option} {text!r}: expected a size like 512M or 2G")
    return size


def _write_report(run_dir: str, path: str, quiet: bool) -> None:
    """``run --report``: the run's outcome (and exit code) stands even if this fails."""
    from .report import write_report

    try:
        write_report(run_dir, path)
    except SshmrError as exc:
        click.echo(f"sshmr: error: {exc} ('sshmr report {os.path.basename(run_dir)} -o FILE'"
                   " writes it later)", err=True)
    else:
        if not quiet:
            click.echo(f"sshmr: report written to {path}", err=True)


def _report(result: Any, as_json: bool, quiet: bool) -> None:
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
    sys.exit(code)


@main.command("resume")
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
    dispatched is never launched again (UNKNOWN unless its result is found); the rest is
    re-queued. Refused while another master holds the run.
    """
    from . import api
    from .live import run_output
    from .runs import find_run

    run_dir = find_run(runs_dir, run_id)
    with run_output(runs_dir, quiet=quiet, as_json=as_json, run_dir=run_dir) as progress:
        result = api.resume(run_id, runs_dir=runs_dir, inventory=inventory,
                            accept_new_hosts=accept_new_hosts, progress=progress)
    _report(result, as_json, quiet)


@main.command("status")
@click.argument("run_id", required=False)
@RUNS_DIR
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object: counts, jobs/s, ETA, per-host figures.")
@click.option("--watch", is_flag=True, help="Redraw the live view until the run ends.")
def status_cmd(run_id: str | None, runs_dir: str, as_json: bool, watch: bool) -> None:
    """Progress of RUN_ID (default: the latest run), read-only, while it runs or after."""
    from rich.console import Console

    from .journal import Journal
    from .live import current, render
    from .live import watch as watch_run
    from .progress import status_info
    from .runs import find_run

    run_dir = find_run(runs_dir, run_id)
    if watch and not as_json:
        watch_run(run_dir)
        return
    journal = Journal(run_dir, readonly=True)
    try:
        fig = current(run_dir, journal)
        hosts = [dict(h) for h in journal.hosts()]
    finally:
        journal.close()
    if as_json:
        click.echo(json.dumps(status_info(fig, hosts)))
    else:
        Console(highlight=False).print(render(fig))


@main.command("results")
@click.argument("run_id", required=False)
@RUNS_DIR
@click.option("--failed", "only_failed", is_flag=True,
              help="Only FAILED and UNKNOWN jobs (each line carries its error).")
def results_cmd(run_id: str | None, runs_dir: str, only_failed: bool) -> None:
    """Results of RUN_ID (default: the latest run): one JSON line per job, in job order.

    A FAILED, UNKNOWN or CANCELLED job's line carries ``error``: its last attempt's error
    (exception type and message) or the reason (timeout, worker_died, host_lost, ...).
    """
    from .jobs import JobState
    from .journal import Journal
    from .result import iter_job_results
    from .runs import find_run

    run_dir = find_run(runs_dir, run_id)
    journal = Journal(run_dir, readonly=True)
    try:
        for job in iter_job_results(journal, run_dir):
            if not only_failed or job.state in (JobState.FAILED, JobState.UNKNOWN):
                click.echo(json.dumps(job.as_json()))
    finally:
        journal.close()


@main.command("show")
@click.argument("args", nargs=-1, required=True, metavar="[RUN_ID] JOB")
@RUNS_DIR
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def show_cmd(args: tuple[str, ...], runs_dir: str, as_json: bool) -> None:
    """One job whole: payload, state, result or error, and every attempt (host, slot,
    start, duration, reason, exit code, error, traceback, stdout/stderr tails).

    JOB alone is a job of the latest run.
    """
    from .journal import Journal
    from .runs import find_run
    from .show import format_job, job_detail

    if len(args) > 2:
        raise ConfigError(f"show takes [RUN_ID] JOB, got {len(args)} arguments; e.g. "
                          "'sshmr show 7' or 'sshmr show RUN_ID 7'")
    run_id, job = (None, args[0]) if len(args) == 1 else args
    if not job.isdigit():
        raise ConfigError(f"JOB must be a job number like 7, not {job!r} "
                          "('sshmr results' lists the jobs)")
    run_dir = find_run(runs_dir, run_id)
    journal = Journal(run_dir, readonly=True)
    try:
        detail = job_detail(journal, run_dir, int(job))
    finally:
        journal.close()
    click.echo(json.dumps(detail) if as_json else format_job(detail))


@main.command("report")
@click.argument("run_id", required=False)
@RUNS_DIR
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="The HTML file to write. Default: report.html in the run's directory.")
def report_cmd(run_id: str | None, runs_dir: str, output: str | None) -> None:
    """Write the HTML report of RUN_ID (default: the latest run), while it runs or after.

    One self-contained file (no script, nothing fetched): summary, policies, a timeline of
    every attempt per host slot, per-host figures, runtimes and stragglers, and every
    failed job's attempts.
    """
    from .report import write_report
    from .runs import find_run

    run_dir = find_run(runs_dir, run_id)
    path = write_report(run_dir, output or os.path.join(run_dir, "report.html"))
    click.echo(f"report of run {os.path.basename(run_dir)} written to {path}")


@main.command("cancel")
@click.argument("run_id", required=False)
@RUNS_DIR
def cancel_cmd(run_id: str | None, runs_dir: str) -> None:
    """Cancel RUN_ID: its master kills every running attempt and exits with 130."""
    from .runs import RunLock, find_run

    run_dir = find_run(runs_dir, run_id)
    if not RunLock.held(run_dir):
        raise ConfigError(f"run {os.path.basename(run_dir)} is not running; nothing to cancel")
    with open(os.path.join(run_dir, "cancel"), "w") as f:
        f.write(str(time.time()))
    click.echo(f"cancel requested for run {os.path.basename(run_dir)}")


@main.command("runs")
@RUNS_DIR
def runs_cmd(runs_dir: str) -> None:
    """List the runs in the runs dir, oldest first."""
    from .journal import Journal
    from .runs import run_state

    if not os.path.isdir(runs_dir):
        return
    for name in sorted(os.listdir(runs_dir)):
        run_dir = os.path.join(runs_dir, name)
        if not os.path.exists(os.path.join(run_dir, Journal.FILE)):
            continue
        journal = Journal(run_dir, readonly=True)
        try:
            meta, counts = journal.meta(), journal.counts()
        finally:
            journal.close()
        state = run_state(run_dir, meta.get("state"))
        click.echo(f"{name}  {state:<11} {counts['SUCCEEDED']}/{sum(counts.values())} succeeded"
                   f"  {meta.get('target', '')}")


@main.command("hosts")
@click.option("-i", "--inventory", required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
@click.option("--accept-new-hosts", is_flag=True)
def hosts_cmd(inventory: str, as_json: bool, accept_new_hosts: bool) -> None:
    """Preflight: reach each host, check python3, its CPUs, free disk and the workdir."""
    from .preflight import check_hosts

    reports = check_hosts(inventory, accept_new=accept_new_hosts)
    if as_json:
        click.echo(json.dumps(reports))
    else:
        for r in reports:
            if r["ok"]:
                click.echo(f"ok    {r['host']}: python {r['python']}, {r['cpus']} cpus, "
                           f"{r['slots']} slots, {r['disk_free_mb']} MB free in {r['workdir']}"
                           f" ({r['latency_ms']} ms)")
            else:
                click.echo(f"FAIL  {r['error']}")
    if not any(r["ok"] for r in reports):
        sys.exit(3)
    sys.exit(0 if all(r["ok"] for r in reports) else 1)


@main.command("gc")
@click.option("-i", "--inventory", required=True, type=click.Path(dir_okay=False))
@RUNS_DIR
@click.option("--all", "remove_all", is_flag=True,
              help="Also remove interrupted runs' and unknown runs' directories.")
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
def gc_cmd(inventory: str, runs_dir: str, remove_all: bool, dry_run: bool) -> None:
    """Remove remote run directories that crashed or interrupted runs left behind."""
    from .gc import collect_garbage

    for item in collect_garbage(inventory, runs_dir, remove_all=remove_all, dry_run=dry_run):
        if "error" in item:
            click.echo(f"FAIL     {item['error']}")
        else:
            verb = "removed" if item["removed"] else "kept"
            click.echo(f"{verb:<8} {item['host']}:{item['path']} ({item['state']})")


if __name__ == "__main__":
    main()
