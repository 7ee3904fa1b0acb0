"""``sshmr show``: one job whole, from the journal: payload, state, result and every attempt
(host, slot, start, duration, reason, exit code, error, traceback, output tails); or, for
``sshmr show [RUN_ID] setup``, each host's failed ``setup()`` with its traceback."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ..errors import JobNotFound
from ..record.journal import Journal
from ..record.results import iter_job_results

RESULT_PREVIEW = 2000  # characters of a result shown in text mode


def job_detail(journal: Journal, run_dir: str, job: int) -> dict[str, Any]:
    """Everything the journal holds about ``job``, as JSON-able data."""
    total = journal.db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
    if not 1 <= job <= total:
        run = os.path.basename(run_dir)
        raise JobNotFound(f"run {run} has no job {job} (its jobs are 1..{total}); "
                          f"'sshmr results {run}' lists them")
    found = next(r for r in iter_job_results(journal, run_dir, job))
    row = journal.db.execute("SELECT reason FROM jobs WHERE id = ?", (job,)).fetchone()
    out = found.as_json()
    out["run_id"] = os.path.basename(run_dir)
    out["reason"] = row[0]
    out["error"] = found.error
    out["setup_failures"] = journal.setup_failures()
    out["attempt_list"] = [
        {"attempt": a["number"], "id": a["id"], "host": a["host"], "slot": a["slot"],
         "state": a["state"], "reason": a["reason"], "dispatched": a["dispatched"],
         "started": a["started"], "ended": a["ended"], "duration_s": a["duration"],
         "exit_code": a["exit_code"], "error": a["error"], "traceback": a["traceback"],
         "stdout_tail": a["stdout_tail"], "stderr_tail": a["stderr_tail"]}
        for a in journal.attempts(job)]
    return out


def format_job(d: dict[str, Any]) -> str:
    """The text ``sshmr show`` prints."""
    lines = [f"job {d['job']} of run {d['run_id']}: {d['state']}, "
             f"{d['attempts']} attempt{'s' if d['attempts'] != 1 else ''}"]
    lines.append(f"  payload: {_text(d['input'])}")
    if d["state"] == "SUCCEEDED":
        lines.append(f"  result:  {_text(d['result'])} (from {d['host']})")
    elif d.get("error") or d.get("reason"):
        lines.append(f"  error:   {d.get('error') or d.get('reason')}")
        if d.get("reason"):
            lines.append(f"  reason:  {d['reason']}")
    for f in d.get("setup_failures", []):
        lines.append(f"  {setup_what(f['error'])} failed on {f['host']}: {f['error']} "
                     f"(its traceback: sshmr show {d['run_id']} setup)")
    for a in d["attempt_list"]:
        start = a["started"] or a["dispatched"]
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(start)) if start else "-"
        dur = "-" if a["duration_s"] is None else f"{a['duration_s']:.3f}s"
        lines.append(f"  attempt {a['attempt']} (id {a['id']}): {a['state']} on {a['host']} "
                     f"slot {a['slot']}, started {when}, ran {dur}"
                     + (f", reason {a['reason']}" if a["reason"] else "")
                     + ("" if a["exit_code"] is None else f", exit code {a['exit_code']}"))
        if a["error"]:
            lines.append(f"    error: {a['error']}")
        for key, title in (("traceback", "traceback"), ("stdout_tail", "stdout (tail)"),
                           ("stderr_tail", "stderr (tail)")):
            if a[key]:
                lines.append(f"    {title}:")
                lines.extend("      " + x for x in a[key].rstrip("\n").splitlines())
    return "\n".join(lines)


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    if len(text) > RESULT_PREVIEW:
        return text[:RESULT_PREVIEW] + f"... ({len(text)} characters; sshmr show --json)"
    return text


def setup_what(error: str, target: str = "") -> str:
    """What failed: the job code's import, or its ``setup()``."""
    if error.startswith("cannot load the job code"):
        return "loading the job code"
    cls = target.rpartition(":")[2]
    return f"setup() of {cls}" if cls else "setup()"


def setup_detail(journal: Journal, run_dir: str) -> dict[str, Any]:
    """``sshmr show RUN setup``: each host's first failed setup(), as JSON-able data."""
    return {"run_id": os.path.basename(run_dir), "target": journal.meta().get("target", ""),
            "setup_failures": journal.setup_failures()}


def format_setup(d: dict[str, Any]) -> str:
    """The text ``sshmr show RUN setup`` prints."""
    failures = d["setup_failures"]
    if not failures:
        return f"run {d['run_id']}: no setup() failed"
    lines = []
    for f in failures:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(f["ts"]))
        lines.append(f"{setup_what(f['error'], d['target'])} failed on {f['host']} at {when}:"
                     f" {f['error']}")
        lines.extend("    " + x for x in f["traceback"].splitlines())
    return "\n".join(lines)
