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
