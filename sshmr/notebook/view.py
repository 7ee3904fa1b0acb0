"""The live view of a Cluster call: an ipywidgets bar and per-host lines in a kernel, else a
plain text bar on stderr.

On a terminal the text bar is redrawn in place (``\\r``, the line cleared first so that a
shorter bar leaves nothing of a longer one). When the stream is not a terminal (a pipe, a
log file) nothing is redrawn: a plain progress line every ``PLAIN_EVERY_S`` seconds and
one at the end, and the master's lines as they come, with no ``\\r`` and no escapes.

A daemon thread finds the run this process starts (a new run directory whose journal holds
our pid), reads the journal read-only (``progress.read_snapshot``; the master flushes it
every 50 ms) and redraws at most ``FPS`` times a second; a slow read stretches the pause,
so it never takes more than a few percent of a core. The master's loop does not know it
exists; lines the master reports (``post``: host changes, failures) are shown too.
"""

from __future__ import annotations

import collections
import html
import os
import sys
import threading
import time
from typing import Any, TextIO

from ..record.journal import Journal
from ..views.progress import Figures, figures, read_snapshot

FPS = 3
BAR_WIDTH = 30
MAX_LINES = 8
PLAIN_EVERY_S = 10.0  # not a terminal: one progress line this often, and one at the end
CLEAR_LINE = "\r\x1b[K"  # to the line's start, then erase to its end


def in_kernel() -> bool:
    """True inside a Jupyter kernel (JupyterLab, Notebook, VS Code)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None  # type: ignore[attr-defined]
    return shell is not None and hasattr(shell, "kernel")


class RunView:
    """Shows the run that this process starts in ``runs_dir`` while the ``with`` block runs."""

    def __init__(self, runs_dir: str, label: str, *, widget: bool | None = None,
                 stream: TextIO | None = None) -> None:
        self.runs_dir = runs_dir
        self.label = label
        self.stream = stream or sys.stderr
        self.lines: collections.deque[str] = collections.deque(maxlen=MAX_LINES)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._before: set[str] = set()
        self._drawn_text = False
        self._tty = _isatty(self.stream)
        self._plain_at: float | None = None  # when the last plain progress line was printed
        self._widgets: Any = None
        if widget is None:
            widget = in_kernel()
        if widget:
            try:
                self._widgets = _Widgets(label)
            except ImportError:
                self._widgets = None

    def post(self, line: str) -> None:
        """A line from the master (host up/down, a failed job): shown under the bar."""
        self.lines.append(line)

    def __enter__(self) -> RunView:
        self._before = set(os.listdir(self.runs_dir)) if os.path.isdir(self.runs_dir) else set()
        self._thread = threading.Thread(target=self._main, daemon=True, name="sshmr-view")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    # ------------------------------------------------------------------ thread

    def _main(self) -> None:
        journal = None
        try:
            while journal is None:
                stopping = self._stop.is_set()
                run_dir = self._find()
                if run_dir is not None:
                    journal = Journal(run_dir, readonly=True)
                elif stopping:
                    break
                else:
                    self._stop.wait(0.05)
            while journal is not None:
                started = time.monotonic()
                stopping = self._stop.is_set()  # read before the snapshot: the last is final
                self._draw(figures(read_snapshot(journal)), final=stopping)
                if stopping:
                    break
                cost = time.monotonic() - started
                self._stop.wait(max(1.0 / FPS, 20 * cost))
        finally:
            if journal is not None:
                journal.close()
            if self._drawn_text:
                self.stream.write("\n")
                self.stream.flush()

    def _find(self) -> str | None:
        if not os.path.isdir(self.runs_dir):
            return None
        for name in sorted(set(os.listdir(self.runs_dir)) - self._before, reverse=True):
            path = os.path.join(self.runs_dir, name)
            if not os.path.exists(os.path.join(path, Journal.FILE)):
                continue
            try:
                journal = Journal(path, readonly=True)
                try:
                    pid = journal.meta().get("pid")
                finally:
                    journal.close()
            except Exception:  # noqa: BLE001 - a journal being created: try again later
                continue
            if pid == os.getpid():
                return path
            if pid is not None:
                self._before.add(name)  # another process's run
        return None

    def _draw(self, fig: Figures, final: bool = False) -> None:
        if self._widgets is not None:
            self._widgets.update(fig, list(self.lines))
            return
        lines = list(self.lines)
        self.lines.clear()
        if self._tty:
            out = "".join(f"{CLEAR_LINE}{line}\n" for line in lines) + CLEAR_LINE + text_bar(fig)
            self._drawn_text = True
        else:
            out = "".join(f"{line}\n" for line in lines)
            now = time.monotonic()
            if final or (self._plain_at is not None and now - self._plain_at >= PLAIN_EVERY_S):
                out += text_bar(fig) + "\n"
                self._plain_at = now
            elif self._plain_at is None:
                self._plain_at = now  # the first line PLAIN_EVERY_S in, not one at 0 jobs
        if out:
            self.stream.write(out)
            self.stream.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def text_bar(fig: Figures) -> str:
    """``[#########.....] 512/1000 jobs  3 failed  16 running  120 jobs/s  4.2 s``."""
    total = max(fig.total, 1)
    filled = int(BAR_WIDTH * fig.ended / total)  # cancelled jobs never ran: not filled
    parts = [f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {fig.ended}/{fig.total} jobs"]
    if fig.failed:
        parts.append(f"{fig.failed} failed")
    if fig.running:
        parts.append(f"{fig.running} running")
    parts.append(f"{fig.jobs_per_s:.0f} jobs/s")
    parts.append(f"{fig.elapsed_s:.1f} s")
    if fig.finished:
        parts.append(fig.state)
    return "  ".join(parts)


def _host_line(h: Any) -> str:
    text = f"{h.name}: {h.state}, {h.busy} busy, {h.done} done"
    if h.queued:
        text += f", {h.queued} queued"
    if h.failed:
        text += f", {h.failed} failed"
    if h.mean_s is not None:
        text += f", {h.mean_s * 1000:.0f} ms/job"
    if h.error and h.state != "up":
        text += f" ({h.error})"
    return text


class _Widgets:
    """An ipywidgets bar, a status line and one line per host, displayed once."""

    STYLE = {"done": "success", "cancelled": "warning", "halted": "danger",
             "no_hosts": "danger", "interrupted": "danger"}

    def __init__(self, label: str) -> None:
        import ipywidgets as w
        from IPython.display import display

        self.bar = w.IntProgress(value=0, min=0, max=1, description="sshmr",
                                 bar_style="info")
        self.status = w.HTML(value=html.escape(label))
        self.hosts = w.HTML(value="")
        display(w.VBox([w.HBox([self.bar, self.status]), self.hosts]))

    def update(self, fig: Figures, lines: list[str]) -> None:
        self.bar.max = max(fig.total, 1)
        self.bar.value = fig.ended
        if fig.finished:
            style = self.STYLE.get(fig.state, "warning")
            self.bar.bar_style = "danger" if style == "success" and fig.failed else style
        elif fig.failed:
            self.bar.bar_style = "warning"
        status = text_bar(fig).split("] ", 1)[-1]
        self.status.value = f"<code>{html.escape(status)}</code>"
        rows = [_host_line(h) for h in fig.hosts] + lines
        self.hosts.value = "<br>".join(f"<code>{html.escape(r)}</code>" for r in rows)
