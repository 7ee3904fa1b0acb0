"""The live view of a run on a terminal (rich): drawing ``progress.Figures``, and the two
loops that redraw it from the journal, read-only.

* ``LiveDisplay``: a daemon thread in the ``sshmr run`` process. It finds the run this
  process started (the journal's ``pid``), reads the journal at most ``FPS`` times a
  second, and prints the lines the master reports (host changes, failures) above the view.
  The master's loop does not know it exists; it costs the master the GIL time of a redraw.
* ``watch``: ``sshmr status --watch`` from another terminal, until the run ends.

A snapshot that takes long (a huge journal) stretches the pause before the next one, so
reading never takes more than about a tenth of a core.
"""

from __future__ import annotations

import collections
import contextlib
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ..errors import RunError
from ..record.journal import Journal
from .progress import Figures, current

FPS = 2  # frames a second at most; one frame with 4 hosts takes 3-6 ms of CPU
BAR_WIDTH = 40
MAX_HOST_ROWS = 16
MAX_LINES_PER_FRAME = 20
STATE_STYLE = {"up": "green", "down": "yellow", "failed": "red", "quarantined": "magenta",
               "running": "cyan", "done": "green", "halted": "red", "cancelled": "yellow",
               "no_hosts": "red", "interrupted": "red", "draining": "yellow", "drained": "dim",
               "joining": "cyan", "joined": "green"}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def render(fig: Figures) -> RenderableType:
    """The whole view: header, bar, counts, one row per host, the latest failures."""
    style = STATE_STYLE.get(fig.state, "")
    head = Text.assemble(("sshmr ", "bold"), (fig.run_id, "bold"), "  ", (fig.state, style),
                         f"  {_duration(fig.elapsed_s)} elapsed  ", (fig.target, "dim"))
    eta = "" if fig.finished else f"  ETA {_duration(fig.eta_s)}"
    bar = Table.grid(padding=(0, 1))
    bar.add_column(width=BAR_WIDTH)
    bar.add_column(no_wrap=True)
    # Cancelled jobs never ran: a cancelled or halted run shows how much of it was done.
    bar.add_row(ProgressBar(total=max(fig.total, 1), completed=fig.ended, width=BAR_WIDTH),
                f"{fig.ended}/{fig.total} jobs"
                + (f" {100 * fig.ended // fig.total}%" if fig.total else "")
                + f"  {fig.jobs_per_s:.1f} jobs/s{eta}")
    parts: list[RenderableType] = [head, bar, counts_line(fig)]
    if fig.mapreduce:
        parts.append(_phases(fig.mapreduce))
    if fig.hosts:
        parts.append(_hosts_table(fig))
    if fig.failures:
        parts.append(Text("latest failures", style="bold"))
        for f in fig.failures:
            fate = "retried" if f["retried"] else "gave up"
            why = fate if f["error"] == f["reason"] else f"{f['reason']}, {fate}"
            parts.append(Text.assemble(
                f"  job {f['job']} attempt {f['number']} on {f['host']}: ", (f["error"], "red"),
                (f" ({why})", "dim"), no_wrap=True, overflow="ellipsis"))
    if fig.message and fig.finished:
        parts.append(Text(fig.message, style="dim"))
    return Group(*parts)


def counts_line(fig: Figures) -> Text:
    """``succeeded 52  running 6  failed 3  queued 99  attempts 66``: running and queued
    while the run runs, unknown and cancelled when there are some, so that it fits 80
    columns."""
    parts: list[tuple[str, int, str]] = [("succeeded", fig.succeeded, "green")]
    if not fig.finished or fig.running:
        parts.append(("running", fig.running, "cyan"))
    parts.append(("failed", fig.failed, "red" if fig.failed else ""))
    if not fig.finished or fig.queued:
        parts.append(("queued", fig.queued, ""))
    if fig.unknown:
        parts.append(("unknown", fig.unknown, "red"))
    if fig.cancelled:
        parts.append(("cancelled", fig.cancelled, ""))
    parts.append(("attempts", fig.attempts, ""))
    line = Text()
    for i, (label, n, style) in enumerate(parts):
        line.append(("  " if i else "") + label + " ", style="dim")
        line.append(str(n), style=style)
    return line


def _phases(mr: dict) -> Text:
    """A MapReduce run, one line: ``step 1 map 5/5 reduce 2/8 · step 2 ...``, the current
    phase in bold (a shuffle or the output being written is named where it happens)."""
    now = mr.get("current") or {}
    line = Text("", no_wrap=True, overflow="ellipsis")
    for step in range(1, mr["steps"] + 1):
        phases = [p for p in mr["phases"] if p["step"] == step]
        if not phases and now.get("step") != step:
            continue
        line.append((" · " if line else "") + f"step {step}", style="dim")
        for p in phases:
            if p["phase"] == "reduce" and now == {"step": step, "phase": "shuffle"}:
                break
            done = p["succeeded"] + p["failed"]
            bold = (p["step"], p["phase"]) == (now.get("step"), now.get("phase"))
            line.append(f" {p['phase']} {done}/{p['total']}",
                        style="bold" if bold else ("red" if p["failed"] else ""))
        if now.get("step") == step and now.get("phase") in ("shuffle", "output"):
            line.append(f" {now['phase']}…", style="bold")
    return line


def _hosts_table(fig: Figures) -> Table:
    rows = [[h.name, h.state, str(h.slots or "-"), str(h.busy), str(h.queued), str(h.done),
             str(h.failed), "-" if h.mean_s is None else f"{h.mean_s:.2f}s", h.error or ""]
            for h in fig.hosts[:MAX_HOST_ROWS]]
    if len(fig.hosts) > MAX_HOST_ROWS:
        rest = fig.hosts[MAX_HOST_ROWS:]
        rows.append([f"+{len(rest)} more", "", str(sum(h.slots or 0 for h in rest)),
                     str(sum(h.busy for h in rest)), str(sum(h.queued for h in rest)),
                     str(sum(h.done for h in rest)), str(sum(h.failed for h in rest)), "", ""])
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), collapse_padding=True, pad_edge=False,
                  show_edge=False)
    # Widths given (not measured by rich): a frame costs half as much CPU.
    for i, name in enumerate(("host", "state", "slots", "busy", "queued", "done", "failed",
                              "mean")):
        width = max(len(name), *(len(r[i]) for r in rows))
        table.add_column(name, justify="left" if i < 2 else "right", no_wrap=True,
                         width=min(width, 24), overflow="ellipsis")
    table.add_column("last error")  # wrappable: the first to give way when columns are few
    for r in rows:
        failed = int(r[6])
        table.add_row(*r[:1], Text(r[1], STATE_STYLE.get(r[1], "")), *r[2:6],
                      Text(r[6], "red" if failed else ""), r[7],
                      Text(r[8], "dim", no_wrap=True, overflow="ellipsis"))
    return table


def _pause(started: float) -> float:
    """Sleep until the next frame: at most FPS a second, and ~10x the time reading took."""
    took = time.monotonic() - started
    return max(1.0 / FPS - took, 9 * took)


class LiveDisplay:
    """Redraws the run that this process (``pid``) starts or resumes in ``runs_dir``.

    ``post`` is the progress callback to give the master: it only appends to a deque;
    the lines are printed above the view by this thread.
    """

    def __init__(self, runs_dir: str, console: Console | None = None, *,
                 run_dir: str | None = None, pid: int | None = None) -> None:
        self.runs_dir = runs_dir
        self.run_dir = run_dir
        self.pid = os.getpid() if pid is None else pid
        self.t0 = time.time()
        self.since = time.strftime("%Y%m%d-%H%M%S", time.localtime(self.t0 - 2))
        self.console = console or Console(stderr=True)
        self.lines: collections.deque[str] = collections.deque()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="sshmr-live", daemon=True)
        self._journal: Journal | None = None
        self.frames = 0
        self.cpu_s = 0.0  # CPU time this thread used (what the view costs the process)

    def post(self, line: str) -> None:
        self.lines.append(line)

    def __enter__(self) -> LiveDisplay:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _main(self) -> None:
        waiting = Text("sshmr: starting the run ...", style="dim")
        with Live(waiting, console=self.console, auto_refresh=False) as live:
            try:
                while True:
                    started = time.monotonic()
                    stopping = self._stop.is_set()
                    self._print_lines(live.console, everything=stopping)
                    view = self._frame()
                    if view is not None:
                        live.update(view, refresh=True)
                        self.frames += 1
                    self.cpu_s = time.thread_time()
                    if stopping:
                        if not self.frames:  # no run started (e.g. a bad inventory)
                            live.update(Group(), refresh=True)
                        break
                    self._stop.wait(_pause(started))
            finally:
                if self._journal is not None:
                    self._journal.close()

    def _print_lines(self, console: Console, everything: bool) -> None:
        shown = 0
        while self.lines and (everything or shown < MAX_LINES_PER_FRAME):
            console.print(Text("sshmr: " + self.lines.popleft()), soft_wrap=True)
            shown += 1
        if self.lines and not everything:
            skipped = len(self.lines)
            self.lines.clear()
            console.print(Text(f"sshmr: ... {skipped} more lines (sshmr results --failed)",
                               style="dim"))

    def _frame(self) -> RenderableType | None:
        try:
            if self._journal is None:
                self.run_dir = self.run_dir or self._find()
                if self.run_dir is None:
                    return None
                self._journal = Journal(self.run_dir, readonly=True)
            return render(current(self.run_dir, self._journal))
        except (sqlite3.Error, RunError):  # e.g. a journal being created: try next frame
            return None

    def _find(self) -> str | None:
        """This process's run: created since we started, and its journal has our pid."""
        try:
            names = sorted((n for n in os.listdir(self.runs_dir) if n >= self.since),
                           reverse=True)
        except FileNotFoundError:
            return None
        for name in names:
            path = os.path.join(self.runs_dir, name)
            if not os.path.exists(os.path.join(path, Journal.FILE)):
                continue
            try:
                journal = Journal(path, readonly=True)
            except sqlite3.Error:
                continue
            try:
                meta = journal.meta()
                if meta.get("pid") == self.pid and meta.get("created", 0) >= self.t0:
                    return path
            except sqlite3.Error:  # a journal being created: look again later
                pass
            finally:
                journal.close()
        return None


def watch(run_dir: str, console: Console | None = None,
          until: Callable[[Figures], bool] = lambda f: f.finished) -> Figures:
    """``sshmr status --watch``: redraw ``run_dir``'s view until the run ends (or Ctrl-C)."""
    console = console or Console()
    journal = Journal(run_dir, readonly=True)
    try:
        fig = current(run_dir, journal)
        pause = 1.0 / FPS
        with Live(render(fig), console=console, auto_refresh=False) as live:
            while not until(fig):
                time.sleep(pause)
                started = time.monotonic()
                fig = current(run_dir, journal)
                live.update(render(fig), refresh=True)
                pause = _pause(started)
        return fig
    finally:
        journal.close()


@contextlib.contextmanager
def run_output(runs_dir: str, *, quiet: bool, as_json: bool,
               run_dir: str | None = None) -> Iterator[Callable[[str], None] | None]:
    """The progress callback for ``sshmr run``/``resume``, and what shows it.

    On a terminal (stderr a TTY, not ``-q``, not ``--json``): the live view, the master's
    lines printed above it. Otherwise one ``sshmr: ...`` line per host change and per
    failed job, as they happen; ``-q``: nothing.
    """
    if quiet:
        yield None
        return
    if as_json or not sys.stderr.isatty():
        def echo(line: str) -> None:
            print(f"sshmr: {line}", file=sys.stderr, flush=True)

        yield echo
        return
    with LiveDisplay(runs_dir, run_dir=run_dir) as display:
        yield display.post
