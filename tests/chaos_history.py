"""The chaos run's end: the history check over every run's journal and over the hosts.

For every run of every lane (``tests/chaos.py``):

* the run ended (its journal's state is final) and its masters exited as a CLI should
  (0, 1 or 3; a killed one was resumed; never a traceback);
* ``checks.assert_nothing_lost``: every job has exactly one final state; at most one
  committed result per job, the SUCCEEDED job's; no attempt left open; launches per job
  <= 1 + max_retries, from the journal and from the jobs' own side-effect files, so no
  ``max_retries 0`` job started twice;
* the journal holds exactly the run's inputs, in order, and every SUCCEEDED job's result
  equals ``jobs_chaos.expected(payload)``; a job that always raises never succeeded;
* a run whose master was killed before it created the run launched nothing.

Then for the cluster: no process is left on any host ``MASTER_GRACE`` + 3 s after the last
master ended, and after ``sshmr gc`` (one per lane's runs dir) no run directory is left
on any host. ``check`` returns a :class:`Report`: the failures (each names its check),
the counts the bench prints, and the schedule, for ``explain()``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos import MASTER_GRACE, Chaos, LaneRun
from helpers import JOBS

for _p in (JOBS, JOBS.parent / "faults"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from checks import assert_nothing_lost, attempts_of, journal, key_of, launches  # noqa: E402
from jobs_chaos import expected  # noqa: E402

from sshmr.result import load_run_result  # noqa: E402

FINAL_STATES = ("SUCCEEDED", "FAILED", "UNKNOWN", "CANCELLED")
NO_OP = ("unavailable", "no worker", "no master running", "host down", "nothing to resume")


@dataclass
class Report:
    seed: int
    seconds: float
    ok: bool
    failures: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    schedule: list[str] = field(default_factory=list)

    def explain(self) -> str:
        lines = [f"chaos seed {self.seed} FAILED ({len(self.failures)} checks); replay it with"
                 f" `python bench/bench_chaos.py --seed {self.seed} --minutes"
                 f" {self.seconds / 60:g}`:"]
        lines += [f"  {f}" for f in self.failures[:200]]
        lines.append("schedule (planned fault, then what was done):")
        lines += [f"  {s}" for s in self.schedule]
        return "\n".join(lines)


def check(chaos: Chaos) -> Report:
    failures: list[str] = []
    runs = [run for lane in chaos.lanes for run in lane.runs]
    totals: Counter = Counter()
    for run in runs:
        failures += [f"run {run.lane}-{run.number}: {p}" for p in run.problems]
        try:
            _check_run(run, totals)
        except AssertionError as exc:
            failures.append(f"run {run.lane}-{run.number} ({run.run_dir}): {exc}")
            failures += [f"  evidence: {line}" for line in _evidence(run)]
    failures += _check_hosts(chaos)
    failures += [f"fault {r.fault.describe()} ({r.action}): {r.outcome}"
                 for r in chaos.records if r.outcome.startswith("ERROR")]
    return Report(chaos.seed, chaos.seconds, not failures, failures,
                  _stats(chaos, runs, totals), _schedule(chaos))


def _check_run(run: LaneRun, totals: Counter) -> None:
    if run.never_created:
        assert not launches(run.effects), "its master died before the run existed, yet jobs ran"
        return
    assert run.run_dir is not None, "no run directory was created"
    result = load_run_result(str(run.run_dir))
    assert result.state != "running", f"the run never ended (masters exited {run.exits})"
    by_job = assert_nothing_lost(result, run.max_retries, run.effects)
    assert len(result.jobs) == len(run.items), (
        f"{len(result.jobs)} jobs in the journal for {len(run.items)} inputs")
    for job, item in zip(result.jobs, run.items, strict=True):
        assert key_of(job.input) == item["k"], f"job {job.job} is {job.input}, not {item['k']}"
        if job.state.value == "SUCCEEDED":
            assert not item.get("fail"), f"job {job.job} ({item['k']}) always raises, yet succeeded"
            assert job.result == expected(item), (
                f"job {job.job} ({item['k']}): result {str(job.result)[:120]} is not the expected"
                f" {str(expected(item))[:120]}")
    rows = [a for attempts in by_job.values() for a in attempts]
    totals["runs"] += 1
    totals["jobs"] += len(result.jobs)
    totals["attempts"] += len(rows)
    totals["relaunches"] += sum(max(0, len(a) - 1) for a in by_job.values())
    totals["discarded_duplicates"] += sum(1 for a in rows if a["state"] == "DISCARDED")
    totals["side_effect_launches"] += sum(len(v) for v in launches(run.effects).values())
    for job in result.jobs:
        totals[f"jobs_{job.state.value.lower()}"] += 1
    totals[f"runs_{result.state}"] += 1
    reasons = Counter(a["reason"] for a in attempts_of(run.run_dir) if a["reason"])
    for reason, n in reasons.items():
        totals[f"attempts_{reason}"] += n


def _evidence(run: LaneRun) -> list[str]:
    """The journal's and the side-effect files' account of each job they disagree on, or
    that did not end: every attempt (id, number, host, state, reason, times) and launch."""
    if run.run_dir is None or not (run.run_dir / "journal.sqlite").exists():
        return []
    counted = launches(run.effects)
    lines = []
    db = journal(run.run_dir)
    try:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        lines.append(f"run state {meta.get('state')}, masters exited {run.exits}")
        for job in db.execute("SELECT * FROM jobs ORDER BY id").fetchall():
            key = key_of(json.loads(job["payload"]))
            rows = db.execute("SELECT * FROM attempts WHERE job = ? ORDER BY id",
                              (job["id"],)).fetchall()
            if len(counted.get(key or "", [])) == len(rows) and job["state"] in FINAL_STATES:
                continue
            lines.append(f"job {job['id']} {key} {job['state']} launches {job['launches']};"
                         f" side effects {counted.get(key or '', [])}")
            lines += [f"    attempt {a['id']} #{a['number']} {a['host']} slot {a['slot']}"
                      f" {a['state']} {a['reason']} dispatched {a['dispatched']} started"
                      f" {a['started']} ended {a['ended']}" for a in rows]
            lines += [f"    job event {e['ts']:.3f} {e['kind']} host {e['host']} attempt"
                      f" {e['attempt']}: {(e['message'] or '')[:160]}"
                      for e in db.execute("SELECT * FROM events WHERE job = ? ORDER BY id",
                                          (job["id"],))]
        lines += [f"    event {e['ts']:.3f} {e['kind']} host {e['host']} job {e['job']}"
                  f" attempt {e['attempt']}: {(e['message'] or '')[:160]}"
                  for e in db.execute("SELECT * FROM events WHERE kind IN ('resumed',"
                                      " 'host_down', 'host_up', 'collected') ORDER BY id")]
    finally:
        db.close()
    return lines[:80]


def _check_hosts(chaos: Chaos) -> list[str]:
    failures = []
    deadline = time.monotonic() + MASTER_GRACE + 3.0
    while chaos.cluster.descendants() and time.monotonic() < deadline:
        time.sleep(0.1)
    for host, pid, cmd in chaos.cluster.reap_leftovers(timeout=0):  # recorded, then killed
        failures.append(f"no process left on any host: {host} pid {pid} still runs {cmd[:200]}")
    for lane in chaos.lanes:
        gc = subprocess.run([sys.executable, "-m", "sshmr", "gc", "-i", str(chaos.inventory),
                             "--runs-dir", str(lane.runs_dir)], cwd=chaos.root, env=chaos.env,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
        if gc.returncode != 0:
            failures.append(f"sshmr gc --runs-dir {lane.runs_dir} exited {gc.returncode}:"
                            f" {gc.stderr.strip()[-300:]}")
    for h in chaos.cluster.hosts:
        runs = Path(h.workdir, "runs")
        left = sorted(p.name for p in runs.iterdir()) if runs.is_dir() else []
        if left:
            failures.append(f"no run directory left after sshmr gc: {h.name} has {left}")
    return failures


def _stats(chaos: Chaos, runs: list[LaneRun], totals: Counter) -> dict[str, Any]:
    kinds: dict[str, Counter] = {}
    for r in chaos.records:
        if r.action != "do":
            continue
        c = kinds.setdefault(r.fault.kind, Counter())
        c["planned"] += 1
        c["injected" if not r.outcome.startswith(NO_OP) and not r.outcome.startswith("ERROR")
          else "not_applicable"] += 1
    stats: dict[str, Any] = {"seed": chaos.seed, "seconds": chaos.seconds,
                             "wall_s": round(chaos.wall, 1)}
    stats["faults"] = {k: dict(v) for k, v in sorted(kinds.items())}
    stats["faults_injected"] = sum(v["injected"] for v in kinds.values())
    stats["master_kills"] = sum(r.kills for r in runs)
    stats["resumes"] = sum(r.resumes for r in runs)
    stats.update(sorted(totals.items()))
    return stats


def _schedule(chaos: Chaos) -> list[str]:
    return [f"{r.fault.describe()} | {r.action} at {r.at:6.2f}s: {r.outcome}"
            for r in chaos.records]
