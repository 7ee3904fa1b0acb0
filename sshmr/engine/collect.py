"""Resume's first step: settle every attempt a crashed master left open.

For each attempt still DISPATCHED or RUNNING in the journal (and each UNKNOWN job's last
attempt), read its commit marker and result from its host. A verified result is
committed; a reported error is a failed attempt; no marker (the host is gone, or the job
never finished) means the outcome is unknown: a ``max_retries=0`` job ends UNKNOWN and is
never launched again, any other job is re-queued if it has launches left. An attempt
whose job cannot be launched again and whose agent still lives on the host (it lets
running jobs finish, within their timeout and ``max_living``, then exits) is waited for:
resume reads its result once the agent has gone, rather than calling it unknown while it
is still running (at most ``wait_limit`` seconds). Unless the
attempt never started: the host never acknowledged it (no start time in the journal), no
``job`` file is in its directory, and no agent of the run is left on the host to start it
(the run's ``agent.lock`` is free); that was no launch, so its job goes back to the
queue, whatever ``max_retries``. An acknowledged attempt is always a launch: a missing
``job`` file (its directory removed, or half removed) never makes it "not started".

An attempt the journal never recorded (its dispatch was in the crashed master's last,
unflushed transaction) but which started on a host (its ``job`` file names the job) is
adopted: journaled as that job's next launch and settled the same way, so a launch is
never lost from the count and its result is not wasted. Only when its ``job`` file carries
the master's signature of that (attempt, job) pair (``wire.job_mark``): a host cannot claim
a job it was not sent. Everything read from a host is bounded and checked (``wire``).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import HostError
from ..jobs import AttemptState, JobState, Reason
from ..record.journal import Journal
from ..remote import protocol
from ..transport.base import Transport
from .wire import MAX_LINE, check_done, host_key, job_mark

MAX_MARKER = MAX_LINE  # bytes of a commit marker (done.json) read: what one done message holds

# exit 0: no agent holds the lock; 3: no lock file; 5: held (an agent of the run lives);
# anything else (an error): cannot tell
_LOCK_FREE = ("import fcntl,os,sys\ntry:\n fd = os.open(sys.argv[1], os.O_RDONLY)\n"
              "except FileNotFoundError:\n sys.exit(3)\n"
              "try:\n fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
              "except BlockingIOError:\n sys.exit(5)")
WAIT_POLL = 0.25  # seconds between looks at attempts still running under a live agent
# ("ok" | "error" | "corrupt" | "missing" | "not_started", meta, result)
Outcome = tuple[str, dict[str, Any], bytes]


def collect_open_attempts(journal: Journal, transports: list[tuple[Transport, str, str, Any]],
                          run_id: str, max_retries: int, max_result_size: int,
                          progress: Callable[[str], None] | None = None,
                          wait_limit: float = 0.0) -> None:
    rows = journal.open_attempts() + journal.db.execute(
        "SELECT a.* FROM attempts a JOIN jobs j ON j.id = a.job WHERE j.state = 'UNKNOWN'"
        " AND a.id = (SELECT MAX(id) FROM attempts b WHERE b.job = j.id)").fetchall()
    by_host: dict[str, list[int]] = defaultdict(list)
    job_of: dict[int, int] = {}
    acked: set[int] = set()  # the host said it handed these to a worker: launches
    last_chance: set[int] = set()  # their job cannot be launched again: worth waiting for
    for row in rows:  # attempts columns: id, job, number, host, slot, state, reason,
        attempt, job, host = row[0], row[1], row[3]  # dispatched, started, ...
        by_host[host].append(attempt)
        job_of[attempt] = job
        if row[8] is not None:
            acked.add(attempt)
        launches = journal.db.execute("SELECT launches FROM jobs WHERE id = ?",
                                      (job,)).fetchone()[0]
        if max_retries == 0 or launches > max_retries:
            last_chance.add(attempt)
    where = {t.name: (t, workdir, python) for t, python, workdir, _ in transports}
    known = {row[0] for row in journal.db.execute("SELECT id FROM attempts")}
    dispatch_key = bytes.fromhex(journal.meta().get("dispatch_key", ""))
    lost: dict[int, tuple[str, int, Outcome]] = {}  # attempt -> (host, job, outcome)

    def visit(host: str) -> dict[int, Outcome]:
        transport, workdir, python = where[host]
        try:
            transport.connect()
            run_dir = f"{transport.expand_user(workdir)}/runs/{run_id}"
            found = {a: read_attempt(transport, protocol.attempt_dir(run_dir, a),
                                     max_result_size) for a in by_host[host]}
            unjournaled = _lost_attempts(transport, run_dir, known, dispatch_key,
                                         max_result_size)
            everything = found | {a: o for a, (_, _, o) in unjournaled.items()}
            waiting = [a for a in found if a in last_chance] + (
                list(unjournaled) if max_retries == 0 else [])
            gone = _wait_for_agent(transport, python, run_dir, everything, waiting,
                                   max_result_size, wait_limit, progress)
            found = {a: everything[a] for a in found}
            lost.update({a: (h, j, everything[a]) for a, (h, j, _) in unjournaled.items()})
            missing = [a for a, outcome in found.items()
                       if outcome[0] == "missing" and a not in acked]
            if missing and (gone if gone is not None
                            else agents_gone(transport, python, run_dir)):
                for a in missing:  # no job file and no agent left to start it: never will
                    if not transport.exists(f"{protocol.attempt_dir(run_dir, a)}/"
                                            f"{protocol.JOB_FILE}"):
                        found[a] = ("not_started", {}, b"")
            return found
        except (HostError, OSError) as exc:
            if progress:
                progress(f"resume: cannot reach {host}: {exc}")
            return {}
        finally:
            transport.close()

    outcomes: dict[int, Outcome] = {}
    if where:
        with ThreadPoolExecutor(max_workers=min(32, len(where))) as pool:
            for found in pool.map(visit, list(where)):
                outcomes.update(found)
    for attempt, job in sorted(job_of.items()):
        _settle(journal, attempt, job, outcomes.get(attempt, ("missing", {}, b"")), max_retries)
    jobs = {row[0] for row in journal.db.execute("SELECT id FROM jobs")}
    for attempt, (host, job, outcome) in sorted(lost.items()):
        if job in jobs:  # ran, but its dispatch was lost with the master's last transaction
            journal.adopt_attempt(attempt, job, host)
            journal.event("adopted", "an attempt the journal lost, found on its host",
                          host=host, job=job, attempt=attempt)
            _settle(journal, attempt, job, outcome, max_retries)
    _requeue_stranded(journal, max_retries)
    journal.flush()


def _requeue_stranded(journal: Journal, max_retries: int) -> None:
    """A job RUNNING with no open attempt was being re-queued when its master stopped
    (journals of sshmr before the master wrote that down): back in the queue if it has
    launches left, else ended by its last attempt's outcome, like a live run does."""
    stranded = journal.db.execute(
        "SELECT j.id, j.launches, (SELECT reason FROM attempts b WHERE b.job = j.id"
        " ORDER BY b.id DESC LIMIT 1) FROM jobs j WHERE j.state = 'RUNNING' AND NOT EXISTS"
        " (SELECT 1 FROM attempts a WHERE a.job = j.id AND a.state IN ('DISPATCHED',"
        " 'RUNNING'))").fetchall()
    for job, launches, reason in stranded:
        if launches <= max_retries:
            journal.requeue(job)
            journal.event("retry", reason or "", job=job)
        elif max_retries == 0 and reason in (None, Reason.WORKER_DIED.value,
                                             Reason.HOST_LOST.value):
            journal.give_up(job, JobState.UNKNOWN, "dispatched before the master stopped; "
                            "never relaunched (max_retries=0)")
        else:
            journal.give_up(job, JobState.FAILED, f"{launches} attempt(s), last: {reason}")


def _wait_for_agent(transport: Transport, python: str, run_dir: str,
                    found: dict[int, Outcome], waiting: list[int], max_result_size: int,
                    limit: float, progress: Callable[[str], None] | None) -> bool | None:
    """While an attempt of ``waiting`` has no outcome on the host and an agent of the run
    lives there (it is finishing its running jobs), look again every ``WAIT_POLL`` seconds,
    for at most ``limit`` seconds; ``found`` is updated. Returns whether the agents are gone
    (None: not looked, as nothing was missing)."""
    deadline = time.monotonic() + limit
    told = False
    while True:
        pending = [a for a in waiting if found[a][0] == "missing"]
        if not pending:
            return None
        state = _agent_state(transport, python, run_dir)
        for a in pending:  # read after the look at the lock: what it committed is seen
            found[a] = read_attempt(transport, protocol.attempt_dir(run_dir, a),
                                    max_result_size)
        if state != "alive" or time.monotonic() >= deadline:
            return state == "gone"
        if not told and progress:
            told = True
            span = (f"{limit:.0f} s" if limit < 120 else f"{limit / 60:.0f} min"
                    if limit < 7200 else f"{limit / 3600:.1f} h")
            progress(f"resume: waiting for {len(pending)} job(s) still running on "
                     f"{transport.name} under the old agent (at most {span}: their timeout"
                     f" or max_living); Ctrl-C stops, and a later 'sshmr resume' waits again")
        time.sleep(WAIT_POLL)


def _agent_state(transport: Transport, python: str, run_dir: str) -> str:
    """"gone" (the run's lock is free), "alive" (held) or "unknown" (no lock file, or the
    host cannot tell)."""
    try:
        status, _, _ = transport.run([python, "-c", _LOCK_FREE, f"{run_dir}/{protocol.AGENT_LOCK}"],
                                     timeout=15)
    except Exception:  # noqa: BLE001 - cannot tell
        return "unknown"
    return {0: "gone", 5: "alive"}.get(status, "unknown")


def agents_gone(transport: Transport, python: str, run_dir: str) -> bool:
    """True if no agent (or worker) of the run lives on the host: the lock is free. False
    if it is held, or cannot be told (no lock file: an agent of an older sshmr; assume it
    may still start something)."""
    return _agent_state(transport, python, run_dir) == "gone"


def _lost_attempts(transport: Transport, run_dir: str, known: set[int], dispatch_key: bytes,
                   max_result_size: int) -> dict[int, tuple[str, int, Outcome]]:
    """Attempts on the host that started (their job file exists, signed by this run's
    master for that job) but are not journaled."""
    try:
        names = transport.listdir(f"{run_dir}/a")
    except FileNotFoundError:
        return {}
    found = {}
    for name in names:
        if not name.isdigit() or len(name) > 18 or int(name) in known:
            continue
        attempt = int(name)
        adir = protocol.attempt_dir(run_dir, attempt)
        try:
            job_text, mark = transport.get_bytes(f"{adir}/{protocol.JOB_FILE}",
                                                 limit=100).decode().split()
            job = int(job_text)
        except (OSError, ValueError):
            continue  # never started (or not this version's): no launch
        if job_mark(dispatch_key, attempt, job) != mark:
            continue  # not sent by this run's master for that job: nothing to adopt
        found[attempt] = (transport.name, job, read_attempt(transport, adir, max_result_size))
    return found


def remove_run_dirs(transports: list[tuple[Transport, str, str, Any]], run_id: str) -> None:
    """Remove the run's directory from every host (best effort: ``sshmr gc`` does the rest).
    For a resume with nothing left to run, whose master ends before any host connects.
    A host where an agent of the run still lives keeps it: a job still running there (its
    job UNKNOWN) may yet commit a result that a later ``sshmr resume`` collects."""

    def remove(entry: tuple[Transport, str, str, Any]) -> None:
        transport, python, workdir, _ = entry
        try:
            transport.connect()
            run_dir = f"{transport.expand_user(workdir)}/runs/{run_id}"
            if transport.exists(f"{run_dir}/{protocol.AGENT_LOCK}") and not agents_gone(
                    transport, python, run_dir):
                return
            transport.rmtree(run_dir)
        except (HostError, OSError):
            pass
        finally:
            transport.close()

    if transports:
        with ThreadPoolExecutor(max_workers=min(32, len(transports))) as pool:
            list(pool.map(remove, transports))


def read_attempt(transport: Transport, adir: str, max_result_size: int,
                 run_key: bytes | None = None) -> Outcome:
    """What attempt directory ``adir`` on the host holds: its outcome, checked (``wire``) and
    verified (a pickled result only signed with this host's key, from the run's
    ``run_key``); a result over ``max_result_size`` is not read. Also used by the master
    for late results."""
    try:
        raw = transport.get_bytes(f"{adir}/{protocol.DONE_FILE}", limit=MAX_MARKER)
        meta = check_done(json.loads(raw))
    except FileNotFoundError:
        return ("missing", {}, b"")
    except (OSError, ValueError, RecursionError, AttributeError) as exc:
        return ("corrupt", {"error": f"unreadable commit marker: {exc}"}, b"")
    if meta["status"] != "ok":
        return ("error", meta, b"")
    if meta["size"] > max_result_size:
        return ("corrupt", {"error": f"the result is {protocol.human_bytes(meta['size'])},"
                            f" over max_result_size; not fetched"}, b"")
    try:
        data = protocol.inline_result(meta)  # a small result is in done.json itself
    except ValueError as exc:
        return ("corrupt", {"error": f"undecodable inline result: {exc}"}, b"")
    if data is None:
        try:
            data = transport.get_bytes(f"{adir}/{protocol.RESULT_FILE}", limit=meta["size"])
        except OSError as exc:
            return ("corrupt", {"error": f"result missing: {exc}"}, b"")
    key = host_key(run_key, transport.name) if run_key is not None else None
    problem = protocol.check_result(meta, data, key)
    if problem:
        return ("corrupt", {"error": f"corrupt result: {problem}"}, b"")
    return ("ok", meta, data)


def _settle(journal: Journal, attempt: int, job: int, outcome: Outcome, max_retries: int) -> None:
    kind, meta, data = outcome
    state, launches = journal.db.execute(
        "SELECT state, launches FROM jobs WHERE id = ?", (job,)).fetchone()
    if kind == "not_started":  # never started, and no agent is left to start it: no launch
        requeue = state in (JobState.RUNNING.value, JobState.UNKNOWN.value)
        journal.undispatch(attempt, requeue)
        if requeue:
            journal.event("requeued", "dispatched but never started before the master"
                          " stopped: not a launch", job=job, attempt=attempt)
        return
    if JobState(state).final and state != JobState.UNKNOWN.value and kind != "ok":
        journal.end_attempt(attempt, AttemptState.FAILED, Reason.HOST_LOST.value, meta)
        return  # an adopted attempt of a job that has ended meanwhile
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
