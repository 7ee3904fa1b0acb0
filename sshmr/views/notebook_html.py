"""Rich display in a notebook: ``RunResult._repr_html_`` and the ``Cluster.hosts()`` table.

Everything shown is escaped. The run's figures come from its journal (read-only), like
``sshmr status``; when the HTML report (``sshmr.report``) is available, the summary links
to it (written next to the journal, once, the first time the summary is displayed).
"""

from __future__ import annotations

import html
import os
from typing import Any

from ..jobs import JobState
from ..record.journal import Journal
from .progress import Figures, figures, read_snapshot

MAX_FAILED_SHOWN = 20
STATE_COLOR = {"done": "#2e7d32", "cancelled": "#ef6c00", "halted": "#c62828",
               "no_hosts": "#c62828", "interrupted": "#c62828", "running": "#1565c0"}


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th style='text-align:left'>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{_e(c)}</td>" for c in row)
                   + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def run_result_html(result: Any) -> str:
    """The summary of a finished run: counts, elapsed, per-host table, failed jobs, report."""
    fig = _figures(result.run_dir)
    color = STATE_COLOR.get(result.state, "#555")
    parts = [f"<div><b>sshmr run {_e(result.run_id)}</b> "
             f"<span style='color:{color}'><b>{_e(result.state)}</b></span>"
             f"{' — ' + _e(result.message) if result.message else ''}</div>"]
    counts = [[len(result.jobs), result.succeeded, result.failed, result.unknown,
               result.count(JobState.CANCELLED),
               result.attempts, f"{result.elapsed_s:.2f} s"]]
    parts.append(_table(["jobs", "succeeded", "failed", "unknown", "cancelled", "attempts",
                         "elapsed"], counts))
    if fig is not None and fig.hosts:
        rows = [[h.name, h.state, h.slots, h.done, h.failed,
                 "" if h.mean_s is None else f"{h.mean_s * 1000:.1f} ms", h.error or ""]
                for h in fig.hosts]
        parts.append("<details open><summary>hosts</summary>" + _table(
            ["host", "state", "slots", "jobs done", "failed attempts", "mean job", "last error"],
            rows) + "</details>")
    failed = [j for j in result.jobs if j.state.value in ("FAILED", "UNKNOWN")]
    if failed:
        rows = [[j.job, _short(repr(j.input)), j.state.value, j.host, j.attempts,
                 _last_line(j.error)] for j in failed[:MAX_FAILED_SHOWN]]
        more = (f"<div>… and {len(failed) - MAX_FAILED_SHOWN} more</div>"
                if len(failed) > MAX_FAILED_SHOWN else "")
        parts.append("<details open><summary>failed jobs</summary>" + _table(
            ["job", "item", "state", "host", "attempts", "error"], rows) + more + "</details>")
    link = _report_link(result.run_dir)
    if link:
        parts.append(link)
    return "<div class='sshmr-run'>" + "".join(parts) + "</div>"


def _figures(run_dir: str) -> Figures | None:
    try:
        journal = Journal(run_dir, readonly=True)
    except Exception:  # noqa: BLE001 - a deleted run dir: show what the result holds
        return None
    try:
        return figures(read_snapshot(journal, held=False))
    finally:
        journal.close()


def _report_link(run_dir: str) -> str:
    path = os.path.join(run_dir, "report.html")
    if not os.path.exists(path):
        try:
            from .report import write_report
        except ImportError:
            return ""
        try:
            write_report(run_dir, path)
        except Exception:  # noqa: BLE001 - the summary is shown without the link
            return ""
    href = os.path.relpath(path) if not os.path.isabs(run_dir) else path
    return (f"<div>report: <a href='{_e(href)}' target='_blank'>{_e(href)}</a></div>")


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _last_line(text: str | None) -> str:
    lines = [x for x in (text or "").splitlines() if x.strip()]
    return _short(lines[-1].strip(), 120) if lines else ""


class HostTable:
    """The preflight of every host (``sshmr hosts``) as a table: ``rows`` are dicts."""

    COLUMNS = ("host", "ok", "python", "cpus", "slots", "latency_ms", "disk_free_mb", "error")

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    @property
    def ok(self) -> bool:
        return all(r.get("ok") for r in self.rows)

    def _cells(self) -> list[list[Any]]:
        return [["" if r.get(c) is None else r.get(c) for c in self.COLUMNS] for r in self.rows]

    def _repr_html_(self) -> str:
        return _table(list(self.COLUMNS), self._cells())

    def __repr__(self) -> str:
        cells = [list(self.COLUMNS)] + [[str(c) for c in row] for row in self._cells()]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.COLUMNS))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                         for row in cells)
