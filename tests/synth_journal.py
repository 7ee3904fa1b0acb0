"""A synthetic, realistic run journal of any size, written in a second or two: for the
report's scale test and ``bench/bench_report.py``, where running 10,000 real jobs would
only measure the engine again.

The run is simulated on HOSTS x SLOTS lanes: log-normal runtimes with a few 5x stragglers,
3 % of attempts that raise (with a traceback and stderr), 0.5 % that time out, 1 % of jobs
that always raise (they end FAILED after ``max_retries`` + 1 attempts) and a host that is
lost once. Rows go in through the journal's schema with explicit times.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import math
import random
import time
from pathlib import Path
from typing import Any

from sshmr.engine.config import RunConfig
from sshmr.record.journal import Journal


def make_journal(run_dir: Path, jobs: int = 10_000, hosts: int = 4, slots: int = 4,
                 seed: int = 7, max_retries: int = 2, timeout: float = 10.0,
                 mapreduce: dict[str, Any] | None = None) -> Path:
    rnd = random.Random(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    journal = Journal(str(run_dir), create=True)
    config = RunConfig(timeout=timeout, max_retries=max_retries)
    created = time.time() - 3600
    names = [f"node{i + 1}.example.net" for i in range(hosts)]
    lanes = [(created + 0.3 + 0.01 * i, names[i // slots], i % slots)
             for i in range(hosts * slots)]
    heapq.heapify(lanes)
    bad = set(rnd.sample(range(1, jobs + 1), max(1, jobs // 100)))
    attempts, job_rows = [], []
    attempt_id = 0
    for job in range(1, jobs + 1):
        state = "FAILED"
        for number in range(1, max_retries + 2):
            t, host, slot = heapq.heappop(lanes)
            attempt_id += 1
            dur = rnd.lognormvariate(math.log(0.4), 0.35) * (5 if rnd.random() < 0.01 else 1)
            outcome = "ok"
            if job in bad or rnd.random() < 0.03:
                outcome, dur = "error", dur * 0.3
            elif rnd.random() < 0.005:
                outcome, dur = "timeout", timeout
            started = t + 0.002
            ended = started + dur + 0.003
            attempts.append(_attempt(attempt_id, job, number, host, slot, outcome, t, started,
                                     ended, dur))
            heapq.heappush(lanes, (ended + 0.001, host, slot))
            if outcome == "ok":
                state = "SUCCEEDED"
                break
        job_rows.append((state, json.dumps({"n": job}) if state == "SUCCEEDED" else None,
                         "json" if state == "SUCCEEDED" else None,
                         attempt_id if state == "SUCCEEDED" else None,
                         None if state == "SUCCEEDED" else "error", ended, job))
    journal.add_jobs((j, json.dumps(f"record-{j:06d}")) for j in range(1, jobs + 1))
    journal.db.executemany(
        "INSERT INTO attempts (id, job, number, host, slot, state, reason, dispatched, started,"
        " ended, duration, exit_code, error, traceback, stdout_tail, stderr_tail)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", attempts)
    journal.db.executemany(
        "UPDATE jobs SET state = ?, result = ?, result_kind = ?, result_attempt = ?,"
        " reason = ?, ended = ?, launches = launches + 1 WHERE id = ?", job_rows)
    for name in names:
        journal.host(name, "up", slots=slots, workdir="~/.sshmr")
    end = max(a[9] for a in attempts)
    meta: dict[str, Any] = dict(
        run_id="20250101-120000-synth1", created=created, state="done", pid=0,
        target="etl.py:Transform", config=dataclasses.asdict(config), inventory="fleet.yaml",
        message="", elapsed_s=end - created)
    if mapreduce is not None:
        meta["mapreduce"] = mapreduce
    journal.set_meta(**meta)
    journal.dirty = True
    journal.close()
    return run_dir


def _attempt(aid: int, job: int, number: int, host: str, slot: int, outcome: str,
             dispatched: float, started: float, ended: float, dur: float) -> tuple:
    if outcome == "ok":
        return (aid, job, number, host, slot, "SUCCEEDED", None, dispatched, started, ended,
                dur, 0, None, None, f"processed record {job}\n", "")
    if outcome == "timeout":
        return (aid, job, number, host, slot, "FAILED", "timeout", dispatched, started, ended,
                None, -15, f"timed out after {dur:g}s", None, "", "")
    tb = ("Traceback (most recent call last):\n  File \"etl.py\", line 42, in execute\n"
          f"    row = parse(payload)\n  File \"etl.py\", line 17, in parse\n"
          f"    raise ValueError(f\"bad record {{payload}}\")\nValueError: bad record {job}\n")
    return (aid, job, number, host, slot, "FAILED", "error", dispatched, started, ended, dur,
            1, f"ValueError: bad record {job}", tb, f"parsing record {job}\n",
            f"warning: record {job} has 3 empty fields\n")
