"""``Cluster`` without a kernel (plain ``python``): map prints a text bar on stderr; ``run``
and ``mapreduce`` go through ``sshmr.run``; bad arguments are one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SCRIPT = '''
import sys
sys.path.insert(0, {examples!r})
from sshmr.notebook import Cluster
from squares import Square

c = Cluster(slots=2)
scale = 3
print(c.map(lambda x: x * scale, range(300))[-3:])
print(c.run(Square(), ["4", "5"]).results)
print(repr(c.last))
'''


def test_plain_python_text_bar_run_and_map(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(examples=str(REPO / "examples"))],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[:2] == ["[891, 894, 897]",
                                            "[{'n': 4, 'square': 16}, {'n': 5, 'square': 25}]"]
    assert "done" in proc.stdout.splitlines()[2]
    assert "300/300 jobs" in proc.stderr and "2/2 jobs" in proc.stderr  # the text bars
    assert "#" * 30 in proc.stderr


def test_mapreduce_through_the_cluster(tmp_path):
    import sshmr
    from sshmr.notebook import Cluster

    sys.path.insert(0, str(REPO / "examples"))
    from wordcount import WordCount

    text = tmp_path / "in.txt"
    text.write_text("a b a\nc a b\n")
    c = Cluster(runs_dir=str(tmp_path / "runs"), progress=False)
    result = c.mapreduce(WordCount(), [str(text)], output=str(tmp_path / "out"), reducers=2)
    assert isinstance(result, sshmr.RunResult) and c.last is result
    lines = sorted(line for p in (tmp_path / "out").iterdir() if p.is_file()
                   for line in p.read_text().splitlines())
    assert lines == ['"a"\t3', '"b"\t2', '"c"\t1']


def test_bad_arguments_are_one_line_errors(tmp_path):
    import sshmr
    from sshmr.notebook import Cluster

    with pytest.raises(sshmr.ConfigError, match="max_retries must be >= 0"):
        Cluster(max_retries=-1)
    with pytest.raises(sshmr.InventoryError):
        Cluster(tmp_path / "missing.yaml")
    c = Cluster(runs_dir=str(tmp_path / "runs"), progress=False)
    with pytest.raises(sshmr.ConfigError, match="errors='ignore'"):
        c.map(abs, [1], errors="ignore")
    with pytest.raises(sshmr.TargetError, match="is not callable"):
        c.map(42, [1])
    import threading

    lock = threading.Lock()
    with pytest.raises(sshmr.TargetError, match="cannot ship"):
        c.map(lambda x: lock, [1])
