"""The CLI's surface: usage errors on one ``sshmr: error:`` line (exit 2), ``-h``, the
defaults in ``sshmr run --help``, whole command summaries in ``sshmr --help``."""

from __future__ import annotations

import pytest
from helpers import sshmr_cli


@pytest.mark.parametrize("args, said", [
    (["run", "--nope", "x.py:X"], "sshmr: error: No such option '--nope' (see 'sshmr run --help')"),
    (["bogus"], "sshmr: error: No such command 'bogus' (see 'sshmr --help')"),
    (["--nope"], "sshmr: error: No such option '--nope' (see 'sshmr --help')"),
    (["hosts", "drain"],
     "sshmr: error: Missing argument '[RUN_ID] HOST' (see 'sshmr hosts drain --help')"),
    (["run", "--max-retries", "many", "x.py:X"],
     "sshmr: error: Invalid value for '--max-retries': 'many' is not a valid integer"
     " (see 'sshmr run --help')"),
])
def test_usage_errors_are_one_line(tmp_path, args, said):
    proc = sshmr_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [said], proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("args", [["-h"], ["run", "-h"], ["hosts", "-h"],
                                  ["hosts", "drain", "-h"], ["status", "-h"]])
def test_dash_h_is_help_everywhere(tmp_path, args):
    proc = sshmr_cli(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"Usage: sshmr {' '.join(args[:-1])}".rstrip() + " ")
    assert "-h, --help" in proc.stdout
    assert proc.stdout == sshmr_cli(*args[:-1], "--help", cwd=tmp_path).stdout


NO_DEFAULT = {"target", "inputs", "inventory", "partitioner", "report_path", "output"}


def test_run_help_says_every_default():
    from sshmr.cli.run import run_cmd
    from sshmr.engine.config import DEFAULT_MAX_RETRIES

    for param in run_cmd.params:
        if param.name in NO_DEFAULT or getattr(param, "is_flag", False):
            continue
        help_text = (param.help or "").lower()
        assert "default" in help_text or param.show_default, param.name  # type: ignore[attr-defined]
    options = {p.name: p for p in run_cmd.params}
    assert f"default {DEFAULT_MAX_RETRIES}," in options["max_retries"].help  # type: ignore[attr-defined]


def test_run_help_shows_them(tmp_path):
    out = " ".join(sshmr_cli("run", "--help", cwd=tmp_path).stdout.split())
    assert "[default: sshmr-runs]" in out
    assert "default 3, or the job class's max_retries" in out
    assert "default 21600, or the job class's max_living" in out


def _commands(group, path=("sshmr",)):
    import click

    for name, cmd in group.commands.items():
        yield (*path, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*path, name))


def test_command_summaries_are_whole_sentences():
    from sshmr.cli import main

    listed = dict(_commands(main))
    assert {"run", "status", "hosts", "gc", "replay"} <= {p[1] for p in listed}
    for path, cmd in listed.items():
        summary = cmd.get_short_help_str(limit=45)
        assert cmd.short_help and summary == cmd.short_help, path  # never cut by click
        assert summary.endswith(".") and "..." not in summary, path
        assert len(path[-1]) + len(summary) <= 70, path  # one line in 80 columns


@pytest.mark.parametrize("args", [[], ["hosts"]])
def test_help_lists_commands_without_ellipsis(tmp_path, monkeypatch, args):
    monkeypatch.setenv("COLUMNS", "80")
    out = sshmr_cli(*args, "--help", cwd=tmp_path).stdout
    commands = out.split("Commands:\n", 1)[1].splitlines()
    assert commands and all("..." not in line and len(line) <= 80 for line in commands), out
    assert all(line.startswith("  ") and len(line.split(None, 1)) == 2 for line in commands)
