"""Commands that read runs: ``status``, ``results``, ``show``, ``report``, ``runs``, and
``cancel``, which asks a running master to stop."""

from __future__ import annotations

import json
import os
import time

import click

from ..errors import ConfigError
from .app import RUNS_DIR, main


@main.command("status", short_help="A run's progress, once or --watch.")
@click.argument("run_id", required=False)
@RUNS_DIR
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object: counts, jobs/s, ETA, per-host figures.")
@click.option("--watch", is_flag=True, help="Redraw the live view until the run ends.")
def status_cmd(run_id: str | None, runs_dir: str, as_json: bool, watch: bool) -> None:
    """Progress of RUN_ID (default: the latest run), read-only, while it runs or after."""
    from ..record.journal import Journal
    from ..record.runs import find_run
    from ..views.progress import current, status_info

    run_dir = find_run(runs_dir, run_id)
    if watch and not as_json:
        from ..views.live import watch as watch_run

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
    else:  # rich only for the text view: ``--json`` stays lean
        from rich.console import Console

        from ..views.live import render

        Console(highlight=False).print(render(fig))


@main.command("results", short_help="A run's results, one JSON line per job.")
@click.argument("run_id", required=False)
@RUNS_DIR
@click.option("--failed", "only_failed", is_flag=True,
              help="Only FAILED and UNKNOWN jobs (each line carries its error).")
def results_cmd(run_id: str | None, runs_dir: str, only_failed: bool) -> None:
    """Results of RUN_ID (default: the latest run): one JSON line per job, in job order.

    A FAILED, UNKNOWN or CANCELLED job's line carries ``error``: its last attempt's error
    (exception type and message) or the reason (timeout, worker_died, host_lost, ...).
    """
    from ..jobs import JobState
    from ..record.journal import Journal
    from ..record.results import iter_job_results
    from ..record.runs import find_run

    run_dir = find_run(runs_dir, run_id)
    journal = Journal(run_dir, readonly=True)
    try:
        for job in iter_job_results(journal, run_dir):
            if not only_failed or job.state in (JobState.FAILED, JobState.UNKNOWN):
                click.echo(json.dumps(job.as_json()))
    finally:
        journal.close()


@main.command("show", short_help="One job whole: payload, result or error, attempts.")
@click.argument("args", nargs=-1, required=True, metavar="[RUN_ID] JOB")
@RUNS_DIR
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def show_cmd(args: tuple[str, ...], runs_dir: str, as_json: bool) -> None:
    """One job whole: payload, state, result or error, and every attempt (host, slot,
    start, duration, reason, exit code, error, traceback, stdout/stderr tails).

    JOB alone is a job of the latest run. JOB ``setup`` shows each host's failed setup()
    with its traceback.
    """
    from ..record.journal import Journal
    from ..record.runs import find_run
    from ..views.show import format_job, format_setup, job_detail, setup_detail

    if len(args) > 2:
        raise ConfigError(f"show takes [RUN_ID] JOB, got {len(args)} arguments; e.g. "
                          "'sshmr show 7' or 'sshmr show RUN_ID 7'")
    run_id, job = (None, args[0]) if len(args) == 1 else args
    if not job.isdigit() and job != "setup":
        raise ConfigError(f"JOB must be a job number like 7 (or 'setup'), not {job!r} "
                          "('sshmr results' lists the jobs)")
    run_dir = find_run(runs_dir, run_id)
    journal = Journal(run_dir, readonly=True)
    try:
        detail = (setup_detail(journal, run_dir) if job == "setup"
                  else job_detail(journal, run_dir, int(job)))
    finally:
        journal.close()
    if as_json:
        click.echo(json.dumps(detail))
    else:
        click.echo(format_setup(detail) if job == "setup" else format_job(detail))


@main.command("report", short_help="Write a run's HTML report.")
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
    from ..record.runs import find_run
    from ..views.report import write_report

    run_dir = find_run(runs_dir, run_id)
    path = write_report(run_dir, output or os.path.join(run_dir, "report.html"))
    click.echo(f"report of run {os.path.basename(run_dir)} written to {path}")


@main.command("cancel", short_help="Cancel a running run.")
@click.argument("run_id", required=False)
@RUNS_DIR
def cancel_cmd(run_id: str | None, runs_dir: str) -> None:
    """Cancel RUN_ID: its master kills every running attempt and exits with 130."""
    from ..record.runs import RunLock, find_run

    run_dir = find_run(runs_dir, run_id)
    if not RunLock.held(run_dir):
        raise ConfigError(f"run {os.path.basename(run_dir)} is not running; nothing to cancel")
    with open(os.path.join(run_dir, "cancel"), "w") as f:
        f.write(str(time.time()))
    click.echo(f"cancel requested for run {os.path.basename(run_dir)}")


@main.command("runs", short_help="List the runs, oldest first.")
@RUNS_DIR
def runs_cmd(runs_dir: str) -> None:
    """List the runs in the runs dir, oldest first."""
    from ..record.journal import Journal
    from ..record.runs import run_state

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
        done = f"{counts['SUCCEEDED']}/{sum(counts.values())} succeeded"
        if meta.get("engine") == "spark":  # no jobs in sshmr's journal: Spark ran the tasks
            done = f"on Spark {(meta.get('spark') or {}).get('master', '')}"
        click.echo(f"{name}  {state:<11} {done}  {meta.get('target', '')}")
