"""``RunResult`` and ``JobResult``: a finished (or running) run read back from its journal."""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .jobs import JobState
from .journal import Journal
from .remote.protocol import is_plain_json

INPUT_FILE_KEY = "$sshmr_input_file"


@dataclass(frozen=True)
class JobResult:
    job: int
    input: Any  # the payload the partitioner gave (an input file's local path for files)
    state: JobState
    result: Any  # decoded JSON, or bytes; None unless SUCCEEDED
    host: str | None  # where the result came from (or the last attempt ran)
    attempts: int
    error: str | None = None  # why the job did not succeed (its last attempt's error)

    def as_json(self) -> dict[str, Any]:
        result = self.result
        if isinstance(result, bytes):
            result = {"bytes": len(result)}
        elif not is_plain_json(result):  # a function run's pickled result
            result = {"repr": repr(result)[:1000]}
        out = {"job": self.job, "input": self.input, "state": self.state.value,
               "result": result, "host": self.host, "attempts": self.attempts}
        if self.state in (JobState.FAILED, JobState.UNKNOWN, JobState.CANCELLED):
            out["error"] = self.error  # the last attempt's error, or why it was given up
        return out


@dataclass
class RunResult:
    run_id: str
    run_dir: str
    state: str  # done, cancelled, halted, no_hosts, running
    message: str
    elapsed_s: float
    attempts: int
    jobs: list[JobResult] = field(default_factory=list)
    output: str | None = None  # a MapReduce run's output directory
    counters: dict[str, dict[str, int]] = field(default_factory=dict)  # MapReduce counters

    def __iter__(self) -> Iterator[JobResult]:
        return iter(self.jobs)

    def __len__(self) -> int:
        return len(self.jobs)

    def count(self, state: JobState) -> int:
        return sum(1 for j in self.jobs if j.state is state)

    @property
    def succeeded(self) -> int:
        return self.count(JobState.SUCCEEDED)

    @property
    def failed(self) -> int:
        return self.count(JobState.FAILED)

    @property
    def unknown(self) -> int:
        return self.count(JobState.UNKNOWN)

    @property
    def ok(self) -> bool:
        return self.state == "done" and self.succeeded == len(self.jobs)

    @property
    def results(self) -> list[Any]:
        """Every job's result in job order (None where a job did not succeed)."""
        return [j.result for j in self.jobs]

    def report(self, path: str | os.PathLike) -> str:
        """Write this run's HTML report (one self-contained file) to ``path``."""
        from .report import write_report

        return write_report(self.run_dir, path)

    def summary(self) -> dict[str, Any]:
        out = {"run_id": self.run_id, "run_dir": self.run_dir, "state": self.state,
               "jobs": len(self.jobs), "succeeded": self.succeeded, "failed": self.failed,
               "unknown": self.unknown, "attempts": self.attempts,
               "elapsed_s": round(self.elapsed_s, 3)}
        if self.output is not None:
            out.update(output=self.output, counters=self.counters)
        return out

    def _repr_html_(self) -> str:
        from .notebook.html import run_result_html

        return run_result_html(self)

    def __repr__(self) -> str:
        return (f"<RunResult {self.run_id} {self.state}: {self.succeeded}/{len(self.jobs)}"
                f" succeeded, {self.failed} failed, {self.unknown} unknown>")


def _decode(kind: str, data: bytes) -> Any:
    """A committed result. ``pickle`` only ever reaches the journal after the master checked
    the worker's HMAC with the run's key (function runs): the journal is the user's own."""
    if kind == "bytes":
        return data
    if kind == "pickle":
        return pickle.loads(data)
    return json.loads(data)


def decode_input(payload: str) -> Any:
    value = json.loads(payload)
    if isinstance(value, dict) and list(value) == [INPUT_FILE_KEY]:
        return value[INPUT_FILE_KEY]
    return value


def iter_job_results(journal: Journal, run_dir: str,
                     only: int | None = None) -> Iterator[JobResult]:
    """Every job's result (or just job ``only``'s), in job order."""
    errors = dict(journal.db.execute(
        "SELECT job, COALESCE(error, reason) FROM attempts a WHERE (? IS NULL OR job = ?)"
        " AND id = (SELECT MAX(id) FROM attempts b WHERE b.job = a.job)", (only, only)))
    tasks = "mapreduce" in journal.meta()  # MapReduce task results: the output dir holds them
    for row in journal.jobs(only):
        state = JobState(row["state"])
        result: Any = None
        if state is JobState.SUCCEEDED and not tasks:
            if row["result_file"]:
                with open(os.path.join(run_dir, row["result_file"]), "rb") as f:
                    data = f.read()
                result = _decode(row["result_kind"], data)
            else:
                result = json.loads(row["result"])
        error = None
        if state is not JobState.SUCCEEDED and state.final:
            error = errors.get(row["id"]) or row["reason"]
        yield JobResult(row["id"], decode_input(row["payload"]), state, result, row["host"],
                        row["attempts"], error)


def load_run_result(run_dir: str) -> RunResult:
    journal = Journal(run_dir, readonly=True)
    try:
        meta = journal.meta()
        jobs = list(iter_job_results(journal, run_dir))
        return RunResult(
            run_id=meta.get("run_id", os.path.basename(run_dir)), run_dir=run_dir,
            state=meta.get("state", "running"), message=meta.get("message", ""),
            elapsed_s=float(meta.get("elapsed_s", 0.0)), attempts=journal.attempt_count(),
            jobs=jobs, output=(meta.get("mapreduce") or {}).get("output"),
            counters=(meta.get("mapreduce") or {}).get("counters") or {})
    finally:
        journal.close()
