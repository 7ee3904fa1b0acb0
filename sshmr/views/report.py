"""The HTML run report: a run's journal (read-only) -> a data model -> one self-contained
HTML file rendered by jinja2 from ``templates/report.html.j2`` (autoescaped).

Entry points: :func:`write_report` (``sshmr report``, ``sshmr run --report``,
``RunResult.report``) and :func:`build_model` / :func:`render` for tests. The SVG
geometry lives in :mod:`sshmr.report_charts`. The page holds no script and no external
resource; a Content-Security-Policy forbids both.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import jinja2

from ..errors import ConfigError
from ..record.journal import Journal
from ..record.results import decode_input
from ..record.runs import run_state
from . import charts as charts
from .changes import fleet_changes, timeout_changes
from .progress import host_state, last_activity
from .show import setup_what

TEMPLATE = "report.html.j2"
MAX_FAILED_SHOWN = 200  # failed/unknown jobs detailed in full; the rest are counted
MAX_TEXT = 8192  # characters kept of one payload, error or traceback
STRAGGLER_FACTOR = 2.0  # without --speculate: slower than this many medians is a straggler
_EXIT = {"done": 0, "halted": 1, "cancelled": 130, "no_hosts": 3}  # as cli.EXIT


def template_dir() -> Path:
    """``sshmr/templates`` in an installed wheel, else the checkout's top-level
    ``templates/`` (source tree and editable installs)."""
    here = Path(__file__).resolve().parent.parent  # sshmr/
    for candidate in (here / "templates", here.parent / "templates"):
        if (candidate / TEMPLATE).is_file():
            return candidate
    raise FileNotFoundError(f"{TEMPLATE} is in neither {here / 'templates'} nor "
                            f"{here.parent / 'templates'}; reinstall sshmr")


def check_output_path(path: str | os.PathLike) -> None:
    """Refuse a report path that cannot be written, before any work is done."""
    target = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(target)
    if os.path.isdir(target):
        raise ConfigError(f"report path {os.fspath(path)!r} is a directory; give a file name"
                          " such as report.html")
    if not os.path.isdir(parent):
        raise ConfigError(f"report path {os.fspath(path)!r}: directory {parent!r} does not"
                          " exist; create it or choose another path")
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"report path {os.fspath(path)!r}: directory {parent!r} is not"
                          " writable; choose another path")


def write_report(run_dir: str | os.PathLike, path: str | os.PathLike) -> str:
    """Write the HTML report of the run in ``run_dir`` to ``path``; return ``path``."""
    check_output_path(path)
    journal = Journal(os.fspath(run_dir), readonly=True)
    try:
        model = build_model(journal, os.fspath(run_dir))
    finally:
        journal.close()
    html = render(model)
    tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(html)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise ConfigError(f"cannot write the report to {os.fspath(path)!r}: {exc.strerror};"
                          " choose another path") from None
    return os.fspath(path)


def render(model: dict[str, Any]) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(template_dir()), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters["dur"] = charts.fmt_seconds
    return env.get_template(TEMPLATE).render(**model)


def build_model(journal: Journal, run_dir: str, now: float | None = None) -> dict[str, Any]:
    """Everything the template shows, read from the journal."""
    now = time.time() if now is None else now
    meta = journal.meta()
    counts = journal.counts()
    attempts = journal.attempts()
    host_rows = [dict(h) for h in journal.hosts()]
    host_names = [h["name"] for h in host_rows]
    state = run_state(run_dir, meta.get("state"))
    created = float(meta.get("created") or now)
    final = state not in ("running", "interrupted")
    elapsed = float(meta.get("elapsed_s") or 0.0) if final else now - created
    if state == "interrupted":  # its master died: it ended with the journal's last word
        elapsed = (last_activity(journal) or created) - created
    config = meta.get("config") or {}
    total = sum(counts.values())
    durations = sorted(a["duration"] for a in attempts
                       if a["state"] == "SUCCEEDED" and a["duration"] is not None)
    median = statistics.median(durations) if durations else None
    factor = config.get("speculate") or STRAGGLER_FACTOR
    straggler_at = median * factor if median else None
    fleet = fleet_changes(journal, created)
    return {
        "run_id": meta.get("run_id", os.path.basename(run_dir)),
        "target": meta.get("target", ""),
        "state": state,
        "badge": _badge(state, counts),
        "message": meta.get("message", ""),
        "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created)),
        "generated": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)),
        "elapsed": elapsed,
        "exit_code": _exit_code(state, counts, total) if final else None,
        "total": total,
        "counts": counts,
        "attempt_count": len(attempts),
        "policies": _policies(config, meta),
        "hosts": _hosts(host_rows, attempts, meta.get("fleet") or {}),
        "timeline": charts.timeline(attempts, host_names, now,
                                    [m for m in fleet if m["host"]]),
        "fleet": fleet,
        "timeouts": timeout_changes(journal, created),
        "histogram": charts.histogram(durations, straggler_at),
        "straggler": {"factor": factor, "at": straggler_at, "median": median,
                      "count": sum(1 for d in durations if straggler_at and d > straggler_at),
                      "slowest": _slowest(attempts, straggler_at)},
        "failed": _failed(journal, attempts),
        "setup_failures": [dict(f, what=setup_what(f["error"], meta.get("target", "")),
                                error=_clip(f["error"], MAX_TEXT),
                                traceback=_clip(f["traceback"], MAX_TEXT))
                           for f in journal.setup_failures()],
        "mapreduce": _mapreduce(journal),
        "spark": (dict(meta.get("spark") or {},
                       steps=len((meta.get("mapreduce") or {}).get("steps") or ()))
                  if meta.get("engine") == "spark" else None),
    }


def _badge(state: str, counts: dict[str, int]) -> dict[str, str]:
    """The run's state badge: a run that ended with failed or unknown jobs is not green."""
    if state == "done" and (counts.get("FAILED") or counts.get("UNKNOWN")):
        return {"css": "done_failures", "label": "done with failures"}
    return {"css": state, "label": state}


def _exit_code(state: str, counts: dict[str, int], total: int) -> int:
    """The exit code ``sshmr run`` gives this run (see cli._report)."""
    code = _EXIT.get(state, 1)
    if code == 0 and counts.get("SUCCEEDED", 0) != total:
        code = 1
    return code


SPARK_POLICIES = ("engine", "timeout", "max_retries", "speculation")


def _policies(config: dict[str, Any], meta: dict[str, Any]) -> list[tuple[str, str]]:
    halt = config.get("halt_on_failures")
    if isinstance(halt, float):
        halt = f"{halt * 100:g}% of jobs"
    speculate = config.get("speculate")
    max_retries = config.get("max_retries")
    timeout = config.get("timeout")
    if isinstance(timeout, str):
        timeout = f"{timeout} (adaptive: PCT% of the median runtime[:FLOOR[:CEILING]])"
    elif timeout:
        timeout = charts.fmt_seconds(timeout)
    spark = meta.get("spark") or {}
    engine = (f"Spark {spark.get('version', '')} on {spark.get('master', '?')} (application"
              f" {spark.get('app_id', '?')}; tasks are not in sshmr's journal)"
              if meta.get("engine") == "spark" else "sshmr")
    rows = [
        ("engine", engine),
        ("timeout", timeout or "none"),
        ("max_retries", f"{max_retries}" + (" (at most once)" if max_retries == 0 else "")),
        ("max_living", charts.fmt_seconds(config.get("max_living"))),
        ("halt on failures", str(halt) if halt is not None else "off"),
        ("speculation", f"{speculate:g} × median" if speculate else "off"),
        ("slots per host", str(config.get("slots") or "inventory / CPU count")),
        ("inventory", meta.get("inventory") or "local (this machine)"),
    ]
    if meta.get("engine") == "spark":  # sshmr's fleet policies do not apply there
        rows = [r for r in rows if r[0] in SPARK_POLICIES]
    return rows


def _hosts(rows: list[dict[str, Any]], attempts: list[Any],
           fleet: dict[str, Any]) -> list[dict[str, Any]]:
    per: dict[str, list[Any]] = defaultdict(list)
    for a in attempts:
        per[a["host"]].append(a)
    known = {r["name"]: r for r in rows}
    out = []
    for name in list(known) + sorted(set(per) - set(known)):
        mine = per.get(name, [])
        ok = sorted(a["duration"] for a in mine
                    if a["state"] == "SUCCEEDED" and a["duration"] is not None)
        failed = [a for a in mine if a["state"] == "FAILED"]
        last = max(failed, key=lambda a: a["id"], default=None)
        row = known.get(name, {})
        busy = sum(1 for a in mine if a["state"] in ("DISPATCHED", "RUNNING"))
        out.append({
            "name": name, "state": host_state(name, row.get("state", "?"), busy, fleet),
            "slots": row.get("slots"),
            "attempts": len(mine), "succeeded": len(ok), "failed": len(failed),
            "mean": statistics.fmean(ok) if ok else None, "p50": charts.percentile(ok, 50),
            "p95": charts.percentile(ok, 95),
            "last_error": _clip((last["error"] or last["reason"]) if last else row.get("error"),
                                300),
        })
    return out


def _slowest(attempts: list[Any], straggler_at: float | None) -> list[dict[str, Any]]:
    if straggler_at is None:
        return []
    slow = [a for a in attempts if a["state"] == "SUCCEEDED" and a["duration"] is not None
            and a["duration"] > straggler_at]
    slow.sort(key=lambda a: a["duration"], reverse=True)
    return [{"job": a["job"], "number": a["number"], "host": a["host"], "slot": a["slot"],
             "duration": a["duration"], "state": a["state"]} for a in slow[:10]]


def _failed(journal: Journal, attempts: list[Any]) -> dict[str, Any]:
    rows = journal.db.execute(
        "SELECT id, state, reason, payload FROM jobs WHERE state IN ('FAILED', 'UNKNOWN')"
        " ORDER BY id").fetchall()
    by_job: dict[int, list[Any]] = defaultdict(list)
    wanted = {r[0] for r in rows[:MAX_FAILED_SHOWN]}
    for a in attempts:
        if a["job"] in wanted:
            by_job[a["job"]].append(a)
    jobs = []
    for job_id, state, reason, payload in rows[:MAX_FAILED_SHOWN]:
        tries = by_job.get(job_id, [])
        last = tries[-1] if tries else None
        jobs.append({
            "job": job_id, "state": state, "reason": reason,
            "summary": _clip((last["error"] or last["reason"]) if last else reason, 200),
            "payload": _clip(repr(decode_input(payload)), MAX_TEXT),
            "attempts": [{
                "number": a["number"], "host": a["host"], "slot": a["slot"],
                "state": a["state"], "reason": a["reason"], "exit_code": a["exit_code"],
                "duration": a["duration"], "error": _clip(a["error"], MAX_TEXT),
                "traceback": _clip(a["traceback"], MAX_TEXT),
                "stderr": _clip(a["stderr_tail"], MAX_TEXT),
                "stdout": _clip(a["stdout_tail"], MAX_TEXT),
            } for a in tries],
        })
    return {"jobs": jobs, "total": len(rows), "hidden": max(0, len(rows) - MAX_FAILED_SHOWN)}


def _mapreduce(journal: Journal) -> dict[str, Any] | None:
    """The MapReduce block of the report: None unless the run recorded ``meta["mapreduce"]``
    (``phases``: [{step, phase, total, succeeded, failed, running}], ``counters``:
    {group: {name: value}}, ``output``, ``reducers``)."""
    from .progress import phase_counts

    mr = phase_counts(journal)
    if mr is None:
        return None
    return {"steps": mr["phases"], "counters": mr["counters"], "output": mr["output"],
            "reducers": mr["reducers"], "shuffle_mb": round(mr["shuffle_bytes"] / 2**20, 1)}


def _clip(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f"\n[... {len(text) - limit} more characters]"
