"""``sshmr replay [RUN_ID] JOB``: run one job of a run again on this machine (see
``engine.replay``); print its result or its traceback, exit 0 or 1."""

from __future__ import annotations

import os
import sys

import click

from ..errors import ConfigError
from .app import RUNS_DIR, main


@main.command("replay", short_help="Run one job of a run again here (--pdb).")
@click.argument("args", nargs=-1, required=True, metavar="[RUN_ID] JOB")
@RUNS_DIR
@click.option("--attempt", type=int, help="Replay this attempt's input (default: the last).")
@click.option("--pdb", "use_pdb", is_flag=True,
              help="Stop in the debugger (post mortem) where the job raised.")
def replay_cmd(args: tuple[str, ...], runs_dir: str, attempt: int | None,
               use_pdb: bool) -> None:
    """Run JOB of RUN_ID (default: the latest run) here: the same payload, the run's code
    snapshot, the same executor and its setup(). Prints the result (as the host returned
    it: JSON text, raw bytes, or a repr) or the traceback; exits 0 or 1."""
    from ..engine.replay import replay
    from ..record.runs import find_run

    if len(args) > 2:
        raise ConfigError(f"replay takes [RUN_ID] JOB, got {len(args)} arguments")
    run_id, job = (None, args[0]) if len(args) == 1 else args
    if not job.isdigit():
        raise ConfigError(f"JOB must be a job number like 7, not {job!r}")
    run_dir = find_run(runs_dir, run_id)
    done = replay(run_dir, int(job), attempt)
    rec = done.recorded
    if rec is not None:
        click.echo(f"sshmr: replayed job {job} of run {os.path.basename(run_dir)} (attempt"
                   f" {rec['number']} was {rec['state']} on {rec['host']})", err=True)
    if done.ok and done.kind == "bytes":
        sys.stdout.buffer.write(done.result)
        sys.stdout.flush()
    elif done.ok:
        click.echo(done.text)
    else:
        click.echo(done.text, nl=False)
        if use_pdb:
            import pdb

            pdb.post_mortem(done.traceback)
    sys.exit(0 if done.ok else 1)
