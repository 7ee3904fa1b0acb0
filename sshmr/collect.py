"""Resume's first step: settle every attempt a crashed master left open.

For each attempt still DISPATCHED or RUNNING in the journal (and each UNKNOWN job's last
attempt), read its commit marker and result from its host. A verified result is
committed; a reported error is a failed attempt; no marker (the host is gone, or the job
never finished) means the outcome is unknown: a ``max_retries=0`` job ends UNKNOWN and is
never launched again, any other job is re-queued if it has launches left.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .errors import HostError
from .jobs import AttemptState, JobState, Reason
from .journal import Journal
from .remote import protocol
from .transport.base import Transport

Outcome = tuple[str, dict[str, Any], bytes]  # ("ok" | "error" | "corrupt" | "missing", ...)


def collect_open_attempts(journal: Journal, transports: list[tuple[Transport, str, str, Any]],
                          run_id: str, max_retries: int, inline_limit: int,
                          progress: Callable[[str], None] | None = None) -> None:
    rows = journal.open_attempts() + journal.db.execute(
        "SELECT a.* FROM attempts a JOIN jobs j ON j.id = a.job WHERE j.state = 'UNKNOWN'"
        " AND a.id = (SELECT MAX(id) FROM attempts b WHERE b.job = j.id)").fetchall()
    by_host: dict[str, list[int]] = defaultdict(list)
    job_of: dict[int, int] = {}
    for row in rows:  # attempts columns: id, job, number, host, ...
        attempt, job, host = row[0], row[1], row[3]
        by_host[host].append(attempt)
        job_of[attempt] = job
    where = {t.name: (t, workdir) for t, _, workdir, _ in transports}

    def visit(host: str) -> dict[int, Outcome]:
        if host not in where:
            return {}
        transport, workdir = where[host]
        try:
            transport.connect()
            run_dir = f"{transport.expand_user(workdir)}/runs/{run_id}"
            return {a: _read(transport, protocol.attempt_dir(run_dir, a)) for a in by_host[host]}
        except (HostError, OSError) as exc:
            if progress:
                progress(f"resume: cannot reach {host}: {exc}")
            return {}
        finally:
            transport.close()

    outcomes: dict[int, Outcome] = {}
    if by_host:
        with ThreadPoolExecutor(max_workers=min(32, len(by_host))) as pool:
            for found in pool.map(visit, list(by_host)):
                outcomes.update(found)
    for attempt, job in sorted(job_of.items()):
        _settle(journal, attempt, job, outcomes.get(attempt, ("missing", {}, b"")), max_retries)
    journal.flush()


def _read(transport: Transport, adir: str) -> Outcome:
    try:
        meta = json.loads(transport.get_bytes(f"{adir}/{protocol.DONE_FILE}"))
    except FileNotFoundError:
        return ("missing", {}, b"")
    except (OSError, ValueError) as exc:
        return ("corrupt", {"error": f"unreadable commit marker: {exc}"}, b"")
    if meta.get("status") != "ok":
        return ("error", meta, b"")
    try:
        data = transport.get_bytes(f"{adir}/{protocol.RESULT_FILE}")
    except OSError as exc:
        return ("corrupt", {"error": f"result missing: {exc}"}, b"")
    problem = protocol.check_result(meta, data)
    if problem:
        return ("corrupt", {"error": f"corrupt result: {problem}"}, b"")
    return ("ok", meta, data)


def _settle(journal: Journal, attempt: int, job: int, outcome: Outcome, max_retries: int) -> None:
    kind, meta, data = outcome
    state, launches = journal.db.execute(
        "SELECT state, launches FROM jobs WHERE id = ?", (job,)).fetchone()
    if kind == "ok":
        if state == JobState.SUCCEEDED.value:
            journal.end_attempt(attempt, AttemptState.DISCARDED, "duplicate", meta)
            return
        journal.commit_result(job, attempt, meta["kind"], data)
        journal.end_attempt(attempt, AttemptState.SUCCEEDED, None, meta)
        journal.event("collected", "result collected by resume", job=job, attempt=attempt)
        return
    if state == JobState.UNKNOWN.value:
        return  # still nothing to collect: it stays UNKNOWN
    reason = {"error": Reason.ERROR, "corrupt": Reason.CORRUPT}.get(kind, Reason.HOST_LOST)
    if kind == "error" and meta.get("status") == "system":
        reason = Reason.SYSTEM
    details = dict(meta)
    if kind == "missing":
        details["error"] = "the master stopped while this attempt ran; its outcome is unknown"
    journal.end_attempt(attempt, AttemptState.FAILED, reason.value, details)
    if max_retries == 0 and kind == "missing":
        journal.give_up(job, JobState.UNKNOWN, "dispatched before the master stopped; never"
                        " relaunched (max_retries=0)")
    elif max_retries > 0 and launches <= max_retries:
        journal.requeue(job)
        journal.event("retry", reason.value, job=job, attempt=attempt)
    else:
        journal.give_up(job, JobState.FAILED, f"{launches} attempt(s), last: {reason.value}")
