"""What a run looks like right now, read from its journal: counts, rate, ETA, hosts, failures.

``read_snapshot`` runs a few short read-only queries (one scan of ``jobs``, one of
``attempts``); ``figures`` is a pure function from that snapshot to what the live view,
``sshmr status`` and ``status --json`` show. Nothing here writes to the journal.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import RunError
from ..record import totals
from ..record.journal import Journal
from ..record.runs import RunLock

RATE_WINDOW = 30.0  # jobs/s is measured over the last 30 s of a running run
LATEST_FAILURES = 5
QUIET_REASONS = ("cancelled", "speculation")  # attempts stopped on purpose, not failures


@dataclass(frozen=True)
class Snapshot:
    """Raw rows from the journal, taken at ``taken_at`` (Unix time)."""

    taken_at: float
    meta: dict[str, Any]
    counts: dict[str, int]  # job state -> jobs
    recent_done: int  # jobs that reached a final state within RATE_WINDOW of taken_at
    first_dispatch: float | None
    attempts: int
    hosts: list[dict[str, Any]]  # rows of the hosts table
    per_host: dict[str, tuple[int, int, int, float | None]]  # busy, done, failed, mean duration
    host_last_error: dict[str, str]  # latest failed attempt's error per host
    failures: list[dict[str, Any]]  # the latest failed attempts (up to 200), newest first
    held: bool = True  # a master holds the run (False: it ended or its master died)
    mapreduce: dict[str, Any] | None = None  # phase_counts() of a MapReduce run
    started_jobs: int | None = None  # jobs with a started attempt (None: count RUNNING jobs)
    per_host_queued: dict[str, int] = field(default_factory=dict)  # dispatched, not started
    last_activity: float | None = None  # the journal's latest event or attempt time


@dataclass(frozen=True)
class HostFigures:
    name: str
    state: str  # up, down, failed, quarantined, draining, drained, joining, joined
    slots: int | None
    busy: int
    done: int
    failed: int
    mean_s: float | None
    error: str | None
    queued: int = 0  # attempts sent to the host (prefetched) that have not started yet


@dataclass(frozen=True)
class Figures:
    run_id: str
    state: str  # running, done, cancelled, halted, no_hosts, interrupted
    target: str
    total: int
    succeeded: int
    running: int  # jobs with a started attempt (not those only queued on a host)
    failed: int
    queued: int  # jobs waiting: in the master's queue or prefetched by a host
    unknown: int
    cancelled: int
    attempts: int
    elapsed_s: float
    jobs_per_s: float
    eta_s: float | None  # None while nothing has finished yet
    hosts: list[HostFigures] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""
    mapreduce: dict[str, Any] | None = None  # steps, current phase, per-phase task counts

    @property
    def done(self) -> int:
        return self.succeeded + self.failed + self.unknown + self.cancelled

    @property
    def ended(self) -> int:
        """Jobs that ran to an end (cancelled ones did not): what the progress bar fills."""
        return self.succeeded + self.failed + self.unknown

    @property
    def finished(self) -> bool:
        return self.state != "running"

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["done"] = self.done
        out["jobs_per_s"] = round(self.jobs_per_s, 3)
        out["elapsed_s"] = round(self.elapsed_s, 3)
        out["eta_s"] = None if self.eta_s is None else round(self.eta_s, 1)
        return out


def read_snapshot(journal: Journal, held: bool = True, now: float | None = None) -> Snapshot:
    """The journal's current content, in one read transaction (a consistent picture)."""
    now = time.time() if now is None else now
    db = journal.db
    db.execute("BEGIN")
    try:
        meta = journal.meta()
        counts = {s: 0 for s in ("PENDING", "RUNNING", "SUCCEEDED", "FAILED", "UNKNOWN",
                                 "CANCELLED")}
        counts.update(totals.job_counts(db, journal.kept))
        recent = db.execute(
            "SELECT COUNT(*) FROM jobs WHERE ended >= ? AND state NOT IN ('PENDING', 'RUNNING')",
            (now - RATE_WINDOW,)).fetchone()[0]
        per_host: dict[str, tuple[int, int, int, float | None]] = {}
        attempts = 0
        queued: dict[str, int] = {}
        for host, entry in totals.host_counts(db, journal.kept).items():
            n = entry["n"]
            mean = entry["dur_sum"] / entry["dur_n"] if entry["dur_n"] else None
            per_host[host] = (n.get("RUNNING", 0), n.get("SUCCEEDED", 0), n.get("FAILED", 0),
                              mean)
            queued[host] = n.get("DISPATCHED", 0)
            attempts += sum(n.values())
        first = db.execute("SELECT MIN(dispatched) FROM (SELECT dispatched FROM attempts"
                           " ORDER BY id LIMIT 64)").fetchone()[0]
        cur = db.execute(
            "SELECT a.job, a.number, a.host, a.slot, a.reason, a.error, a.ended, j.state"
            " FROM attempts a JOIN jobs j ON j.id = a.job WHERE a.state = 'FAILED'"
            " AND COALESCE(a.reason, '') NOT IN (?, ?) ORDER BY a.id DESC LIMIT 200",
            QUIET_REASONS)
        cols = [c[0] for c in cur.description]
        recent_failures = [dict(zip(cols, row, strict=True)) for row in cur]
        hosts = [dict(h) for h in journal.hosts()]
        mapreduce = phase_counts(journal, meta)
        started_jobs = db.execute("SELECT COUNT(DISTINCT job) FROM attempts"
                                  " WHERE state = 'RUNNING'").fetchone()[0]
        last = last_activity(journal)
    finally:
        db.execute("COMMIT")
    last_error: dict[str, str] = {}
    for f in recent_failures:
        last_error.setdefault(f["host"], _one_line(f["error"] or f["reason"]))
    return Snapshot(now, meta, counts, recent, first, attempts, hosts, per_host, last_error,
                    recent_failures, held, mapreduce, started_jobs, queued, last)


def last_activity(journal: Journal) -> float | None:
    """When the journal last recorded anything: an event, or an attempt's dispatch, start
    or end. A run whose master was killed ended about then."""
    events = journal.db.execute("SELECT MAX(ts) FROM events").fetchone()[0]
    attempts = totals.last_activity(journal.db, journal.kept)
    return max((t for t in (events, attempts) if t is not None), default=None)


def figures(snap: Snapshot) -> Figures:
    """Counts, jobs/s, ETA, per-host figures and the latest failures of one snapshot."""
    meta, c = snap.meta, snap.counts
    state = meta.get("state") or "running"
    if state == "running" and not snap.held:
        state = "interrupted"
    done = c["SUCCEEDED"] + c["FAILED"] + c["UNKNOWN"] + c["CANCELLED"]
    left = c["PENDING"] + c["RUNNING"]
    running = c["RUNNING"] if snap.started_jobs is None else min(snap.started_jobs,
                                                                 c["RUNNING"])
    if state == "running":
        elapsed = snap.taken_at - float(meta.get("created") or snap.taken_at)
        since = snap.taken_at - (snap.first_dispatch or snap.taken_at)
        window = min(RATE_WINDOW, since)
        rate = snap.recent_done / window if window > 0.5 else 0.0
        eta = left / rate if rate > 0 else (0.0 if left == 0 else None)
    elif state == "interrupted":  # its master died: it ended with the journal's last word
        created = float(meta.get("created") or snap.taken_at)
        elapsed = (snap.last_activity or created) - created
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = None
    else:
        elapsed = float(meta.get("elapsed_s") or 0.0)
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = None if left else 0.0
    hosts = []
    fleet = meta.get("fleet") or {}
    for row in snap.hosts:
        busy, ok, failed, mean = snap.per_host.get(row["name"], (0, 0, 0, None))
        waiting = snap.per_host_queued.get(row["name"], 0)
        row = dict(row, state=host_state(row["name"], row["state"], (busy or 0) + waiting,
                                         fleet))
        error = row.get("error") or snap.host_last_error.get(row["name"])
        if error and error.startswith(f"{row['name']}: "):
            error = error[len(row["name"]) + 2:]  # the row already names the host
        hosts.append(HostFigures(row["name"], row["state"], row.get("slots"), busy or 0, ok or 0,
                                 failed or 0, mean, _one_line(error) if error else None,
                                 waiting))
    failures: list[dict[str, Any]] = []
    for f in snap.failures:  # newest first: each job's latest failed attempt
        if len(failures) < LATEST_FAILURES and all(x["job"] != f["job"] for x in failures):
            failures.append(dict(f, error=_one_line(f["error"] or f["reason"]),
                                 retried=f["state"] not in ("FAILED", "UNKNOWN")))
    return Figures(
        run_id=str(meta.get("run_id", "")), state=state, target=str(meta.get("target", "")),
        total=sum(c.values()), succeeded=c["SUCCEEDED"], running=running,
        failed=c["FAILED"], queued=c["PENDING"] + c["RUNNING"] - running,
        unknown=c["UNKNOWN"], cancelled=c["CANCELLED"],
        attempts=snap.attempts, elapsed_s=max(elapsed, 0.0), jobs_per_s=rate, eta_s=eta,
        hosts=hosts, failures=failures, message=str(meta.get("message") or ""),
        mapreduce=snap.mapreduce)


def host_state(name: str, state: str, busy: int, fleet: dict[str, Any]) -> str:
    """A host's state as shown: ``draining`` (drained, still running jobs), ``drained``,
    ``joined`` (added mid-run, up) or ``joining``; else the journal's (up, down, ...)."""
    if name in (fleet.get("drained") or ()) and state not in ("failed", "quarantined"):
        return "draining" if busy else "drained"
    if name in (fleet.get("added") or {}) and state == "up":
        return "joined"
    return state


def status_info(fig: Figures, hosts: list[dict[str, Any]]) -> dict[str, Any]:
    """``sshmr status --json``: the run's figures; ``hosts`` (rows of the hosts table) gain
    each host's busy slots, jobs done, failed attempts and mean runtime."""
    per_host = {h.name: h for h in fig.hosts}
    for h in hosts:
        f = per_host[h["name"]]
        h.update(busy=f.busy, queued=f.queued, done=f.done, failed=f.failed,
                 mean_runtime_s=None if f.mean_s is None else round(f.mean_s, 4))
    counts = {"PENDING": fig.queued, "RUNNING": fig.running, "SUCCEEDED": fig.succeeded,
              "FAILED": fig.failed, "UNKNOWN": fig.unknown, "CANCELLED": fig.cancelled}
    j = fig.as_json()
    return {"run_id": fig.run_id, "state": fig.state, "jobs": fig.total, "counts": counts,
            "done": fig.done, "attempts": fig.attempts, "elapsed_s": j["elapsed_s"],
            "jobs_per_s": j["jobs_per_s"], "eta_s": j["eta_s"], "hosts": hosts,
            "latest_failures": fig.failures, "message": fig.message,
            **({"mapreduce": fig.mapreduce} if fig.mapreduce else {})}


def _one_line(text: str | None) -> str:
    """The last non-empty line of an error (a traceback's last line is its exception)."""
    lines = [x.strip() for x in (text or "").splitlines() if x.strip()]
    return lines[-1] if lines else ""

def phase_counts(journal: Journal, meta: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """A MapReduce run's progress for ``status`` and the report: its current phase and,
    per phase so far, the task counts by state. None for a plain run."""
    mr = (journal.meta() if meta is None else meta).get("mapreduce")
    if not mr:
        return None
    phases = []
    for p in mr["phases"]:
        counts = dict(journal.db.execute(
            "SELECT state, COUNT(*) FROM jobs WHERE id BETWEEN ? AND ? GROUP BY state",
            (p["first"], p["last"])).fetchall())
        phases.append({"step": p["step"] + 1, "phase": p["phase"],
                       "total": p["last"] - p["first"] + 1,
                       "succeeded": counts.get("SUCCEEDED", 0),
                       "failed": counts.get("FAILED", 0) + counts.get("UNKNOWN", 0),
                       "running": counts.get("RUNNING", 0),
                       "pending": counts.get("PENDING", 0)})
    current = mr.get("current")
    return {"steps": len(mr["steps"]), "reducers": mr["reducers"], "output": mr["output"],
            "current": dict(current, step=current["step"] + 1) if current else None,
            "phases": phases, "counters": mr.get("counters") or {},
            "shuffle_bytes": mr.get("shuffle_bytes", 0)}


def current(run_dir: str, journal: Journal) -> Figures:
    """The run's figures now. A journal the master is still creating is retried for a
    moment, then a one-line error."""
    for _ in range(50):
        try:
            return figures(read_snapshot(journal, held=RunLock.held(run_dir)))
        except sqlite3.OperationalError as exc:
            problem = exc
            if journal.db.in_transaction:
                journal.db.execute("ROLLBACK")
            time.sleep(0.1)
    raise RunError(f"run {os.path.basename(run_dir)}: its journal cannot be read ({problem});"
                   " try again in a moment")
