"""The notebook's text bar outside a kernel: redrawn in place on a terminal (a shorter bar
leaves nothing of a longer one), plain lines with no ``\\r`` and no escapes into a pipe."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from pathlib import Path

from sshmr.notebook.view import RunView, text_bar
from sshmr.views.progress import Figures

REPO = Path(__file__).resolve().parents[2]


def _fig(**changes: object) -> Figures:
    base = dict(run_id="r1", state="running", target="t", total=1000, succeeded=500,
                running=16, failed=3, queued=481, unknown=0, cancelled=0, attempts=520,
                elapsed_s=4.2, jobs_per_s=120.0, eta_s=4.0)
    base.update(changes)
    return Figures(**base)  # type: ignore[arg-type]


def _screen(raw: str) -> list[str]:
    """What a terminal shows for ``raw``: ``\\r``, ``\\n`` and erase-to-end-of-line."""
    lines: list[str] = []
    line: list[str] = []
    col = 0
    i = 0
    while i < len(raw):
        if raw.startswith("\x1b[K", i):
            del line[col:]
            i += 3
            continue
        ch = raw[i]
        i += 1
        if ch == "\r":
            col = 0
        elif ch == "\n":
            lines.append("".join(line))
            line, col = [], 0
        else:
            if col < len(line):
                line[col] = ch
            else:
                line.append(ch)
            col += 1
    return lines + ["".join(line)]


def _read_all(fd: int) -> str:
    chunks = []
    while select.select([fd], [], [], 0.2)[0]:
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks).decode()


def test_on_a_terminal_a_shorter_bar_leaves_no_stale_text(tmp_path):
    master, slave = pty.openpty()
    stream = os.fdopen(slave, "w")
    try:
        view = RunView(str(tmp_path), "map f", widget=False, stream=stream)
        long_fig = _fig(running=1600, failed=300, jobs_per_s=12000.0, elapsed_s=1234.5)
        short_fig = _fig(state="done", succeeded=1000, running=0, failed=0, queued=0,
                         jobs_per_s=9.0, elapsed_s=5.0)
        assert len(text_bar(short_fig)) < len(text_bar(long_fig))
        view._draw(long_fig)
        view.post("host h1 down: connection refused")
        view._draw(short_fig, final=True)
        raw = _read_all(master)
    finally:
        stream.close()
        os.close(master)
    raw = raw.replace("\r\n", "\n")  # the pty's output processing turns \n into \r\n
    assert "\r" in raw  # redrawn in place
    assert _screen(raw) == ["host h1 down: connection refused", text_bar(short_fig)]


SCRIPT = '''
import sys, time
import sshmr.notebook.view as view
view.PLAIN_EVERY_S = {every}
from sshmr.notebook import Cluster

def slow(x):
    import time
    time.sleep(0.15)
    return x

print(len(Cluster(slots=2).map(slow, range(20))))
'''


def test_into_a_pipe_plain_lines_now_and_then(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(every=0.5)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "20"
    assert "\r" not in proc.stderr and "\x1b" not in proc.stderr, repr(proc.stderr)
    bars = [line for line in proc.stderr.splitlines() if " jobs " in line]
    # 20 jobs of 0.15 s on 2 slots take 1.5 s at least: a line 0.5 s in, and the last one
    assert len(bars) >= 2, proc.stderr
    assert bars[-1].startswith("[" + "#" * 30 + "] 20/20 jobs") and bars[-1].endswith("done")


def test_into_a_pipe_a_short_run_prints_only_its_last_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(every=3600)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    bars = [line for line in proc.stderr.splitlines() if " jobs " in line]
    assert len(bars) == 1 and "20/20 jobs" in bars[0], proc.stderr
    assert "\r" not in proc.stderr and "\x1b" not in proc.stderr
