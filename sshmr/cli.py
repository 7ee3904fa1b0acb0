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


@main.command("run")
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
def run_cmd(target: str, inputs: tuple[str, ...], inventory: str | None, timeout: float | None,
            max_retries: int | None, max_living: float | None, slots: int | None,
            split: str | None, partitioner: str | None, seed: int | None,
            halt_on_failures: str | None, speculate: float | None, runs_dir: str,
            as_json: bool, quiet: bool,
            accept_new_hosts: bool) -> None:
    """Run TARGET (file.py:Class or package.module:Class) on the jobs cut from INPUTS.

    Each input line is one job unless --split or --partitioner says otherwise; no INPUTS
    (or -) reads standard input.
    """
    from . import api
    from .config import parse_halt
    from .executor import JobExecutor
    from .partition import Partitioner
    from .target import load_target

    cls, code = load_target(target, JobExecutor)
    user_partitioner = None
    if partitioner:
        pcls, _ = load_target(partitioner, Partitioner, what="--partitioner")
        user_partitioner = pcls()

    def progress(line: str) -> None:
        if not quiet:
            click.echo(f"sshmr: {line}", err=True)

    result = api.run(
        cls, files=list(inputs) or ["-"], split=split, partitioner=user_partitioner,
        inventory=inventory, runs_dir=runs_dir, progress=progress, code=code, timeout=timeout,
        max_retries=max_retries, max_living=max_living, slots=slots, seed=seed,
        accept_new_hosts=accept_new_hosts or None, halt_on_failures=parse_halt(halt_on_failures),
        speculate=speculate)
    _report(result, as_json, quiet)


def _report(result: Any, as_json: bool, quiet: bool) -> None:
    from .jobs import JobState

    if not quiet:
        failed = [j for j in result.jobs if j.state in (JobState.FAILED, JobState.UNKNOWN)]
        for job in failed[:5]:
            click.echo(f"sshmr: job {job.job} {job.state.value}: {job.error}", err=True)
        if len(failed) > 5:
            click.echo(f"sshmr: ... and {len(failed) - 5} more; see 'sshmr results "
                       f"{result.run_id}'", err=True)
    if result.message and result.state == "no_hosts":
        click.echo(f"sshmr: error: {result.message}", err=True)
    elif result.message and not quiet:
        click.echo(f"sshmr: {result.message}", err=True)
    summary = result.summary()
    if as_json:
        click.echo(json.dumps(summary))
    elif not quiet:
        click.echo(f"run {result.run_id} {result.state}: {result.succeeded}/{len(result)} "
                   f"succeeded, {result.failed} failed, {result.unknown} unknown, "
                   f"{result.attempts} attempts in {summary['elapsed_s']:.2f}s "
                   f"(results: sshmr results {result.run_id})")
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

    def progress(line: str) -> None:
        if not quiet:
            click.echo(f"sshmr: {line}", err=True)

    result = api.resume(run_id, runs_dir=runs_dir, inventory=inventory,
                        accept_new_hosts=accept_new_hosts, progress=progress)
    _report(result, as_json, quiet)


@main.command("status")
@click.argument("run_id", required=False)
@RUNS_DIR
@click.option("--json", "as_json", is_flag=True)
def status_cmd(run_id: str | None, runs_dir: str, as_json: bool) -> None:
    """Progress of RUN_ID (default: the latest run), read-only, while it runs or after."""
    from .journal import Journal
    from .runs import find_run, run_state

    run_dir = find_run(runs_dir, run_id)
    journal = Journal(run_dir, readonly=True)
    try:
        meta = journal.meta()
        counts = journal.counts()
        hosts = [dict(h) for h in journal.hosts()]
        attempts = journal.attempt_count()
    finally:
        journal.close()
    state = run_state(run_dir, meta.get("state"))
    elapsed = meta.get("elapsed_s") or (time.time() - meta.get("created", time.time()))
    info = {"run_id": meta.get("run_id"), "state": state, "jobs": sum(counts.values()),
            "counts": counts, "attempts": attempts, "elapsed_s": round(elapsed, 3),
            "hosts": hosts, "message": meta.get("message", "")}
    if as_json:
        click.echo(json.dumps(info))
        return
    done = sum(v for k, v in counts.items() if k not in ("PENDING", "RUNNING"))
    click.echo(f"run {info['run_id']} {state}: {done}/{info['jobs']} jobs done in "
               f"{elapsed:.1f}s, {attempts} attempts")
    click.echo("  " + ", ".join(f"{k.lower()} {v}" for k, v in counts.items()))
    for h in hosts:
        line = f"  host {h['name']}: {h['state']}"
        if h.get("slots"):
            line += f", {h['slots']} slots"
        if h.get("error") and h["state"] != "up":
            line += f" ({h['error']})"
        click.echo(line)
    if info["message"]:
        click.echo(f"  {info['message']}")


@main.command("results")
@click.argument("run_id", required=False)
@RUNS_DIR
def results_cmd(run_id: str | None, runs_dir: str) -> None:
    """Results of RUN_ID (default: the latest run): one JSON line per job, in job order."""
    from .journal import Journal
    from .result import iter_job_results
    from .runs import find_run

    run_dir = find_run(runs_dir, run_id)
    journal = Journal(run_dir, readonly=True)
    try:
        for job in iter_job_results(journal, run_dir):
            click.echo(json.dumps(job.as_json()))
    finally:
        journal.close()


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
