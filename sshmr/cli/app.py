"""The ``sshmr`` command group, its error handling and the options its commands share.

Exit codes: 0 every job succeeded; 1 some job failed or is unknown; 2 bad usage or
configuration; 3 no host usable; 130 interrupted or cancelled.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import click

from ..errors import SshmrError, SshmrWarning

RUNS_DIR = click.option("--runs-dir", default="sshmr-runs", show_default=True,
                        type=click.Path(file_okay=False), help="Where run directories live.")
HOSTS = click.option(
    "--hosts", "hosts", metavar="PATTERN",
    help="Only these hosts of the inventory: a group, a host, a glob (web*), ~regex, a union"
         " (web:db or web,db), &GROUP to intersect, !HOST to exclude. Without -i: Host"
         " aliases of ~/.ssh/config. Default: every host of the inventory.")
EXIT = {"done": 0, "halted": 1, "cancelled": 130, "no_hosts": 3}


def _fail(exc: SshmrError) -> None:
    click.echo(f"sshmr: error: {exc}", err=True)
    sys.exit(exc.exit_code)


def _show_warning(message: Any, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    if issubclass(category, SshmrWarning):
        click.echo(f"sshmr: warning: {message}", err=True)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


_default_showwarning = warnings.showwarning


def _usage(exc: click.UsageError) -> None:
    """A usage error on one line, like any other error: ``sshmr: error: No such option
    '--nope' (see 'sshmr run --help')``; exit 2."""
    message = " ".join(exc.format_message().split()).rstrip(".")
    where = exc.ctx.command_path if exc.ctx is not None else "sshmr"
    click.echo(f"sshmr: error: {message} (see '{where} --help')", err=True)
    sys.exit(exc.exit_code)


class _Group(click.Group):
    """The main group: an ``SshmrError`` or a usage error (bad option or argument, unknown
    command, here or in a subcommand) ends as one ``sshmr: error:`` line."""

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            _usage(exc)
            raise  # not reached: _usage exits

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("default", SshmrWarning)
                warnings.showwarning = _show_warning
                return super().invoke(ctx)
        except click.UsageError as exc:
            _usage(exc)
        except SshmrError as exc:
            _fail(exc)
        except KeyboardInterrupt:
            click.echo("sshmr: interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sshmr")
def main() -> None:
    """Run jobs and MapReduce over plain SSH servers (or locally, with no inventory)."""
