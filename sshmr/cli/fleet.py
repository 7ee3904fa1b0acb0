"""``sshmr hosts drain|undrain|add [RUN] HOST``: change a running run's hosts. Each is a
command to the run's master, through its run directory (``record.commands``); this waits
for the master's answer and prints it."""

from __future__ import annotations

import os

import click

from ..errors import ConfigError, RunError
from .app import RUNS_DIR
from .hosts import hosts_cmd

ANSWER_WAIT = 30.0  # seconds; a loaded master answers at its next tick


def _send(op: str, args: tuple[str, ...], runs_dir: str) -> None:
    from ..record import commands
    from ..record.runs import RunLock, find_run

    if len(args) not in (1, 2):
        raise ConfigError(f"hosts {op} takes [RUN_ID] HOST, got {len(args)} arguments")
    run_id, host = (None, args[0]) if len(args) == 1 else args
    run_dir = find_run(runs_dir, run_id)
    name = os.path.basename(run_dir)
    if not RunLock.held(run_dir):
        raise RunError(f"run {name} is not running (no master holds it); 'sshmr resume {name}'"
                       " continues it")
    cid = commands.send(run_dir, op, host=host)
    answer = commands.wait_answer(run_dir, cid, ANSWER_WAIT, lambda: RunLock.held(run_dir))
    if answer is None:
        why = (f"did not answer within {ANSWER_WAIT:g}s" if RunLock.held(run_dir)
               else "ended before it answered")
        raise RunError(f"the master of run {name} {why}; the command stays queued: a"
                       f" resumed run carries it out ('sshmr resume {name}')")
    if not answer.get("ok"):
        raise ConfigError(str(answer.get("message")))
    click.echo(f"run {name}: {answer.get('message')}")


@hosts_cmd.command("drain", short_help="Let a host finish its jobs and get no new ones.")
@click.argument("args", nargs=-1, required=True, metavar="[RUN_ID] HOST")
@RUNS_DIR
def drain_cmd(args: tuple[str, ...], runs_dir: str) -> None:
    """HOST's running jobs finish; it gets no new ones (RUN_ID: default the latest run)."""
    _send("drain", args, runs_dir)


@hosts_cmd.command("undrain", short_help="Give a drained host jobs again.")
@click.argument("args", nargs=-1, required=True, metavar="[RUN_ID] HOST")
@RUNS_DIR
def undrain_cmd(args: tuple[str, ...], runs_dir: str) -> None:
    """HOST, drained, gets jobs again."""
    _send("undrain", args, runs_dir)


@hosts_cmd.command("add", short_help="Bring hosts into a running run.")
@click.argument("args", nargs=-1, required=True, metavar="[RUN_ID] HOST_OR_PATTERN")
@RUNS_DIR
def add_cmd(args: tuple[str, ...], runs_dir: str) -> None:
    """Bring hosts into the run: the run inventory's hosts HOST_OR_PATTERN names (a shell
    pattern like 'web-*' matches several), or one host of your own, [user@]host[:port] or an
    ssh_config alias, reached with the inventory's defaults."""
    _send("add", args, runs_dir)
