"""Job results read back from a run's journal: ``JobResult`` per job, and how a job's
input is stored there (``INPUT_FILE_KEY`` marks an input file's path)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..jobs import JobState
from ..remote.protocol import is_plain_json
from . import safe_pickle
from .journal import Journal

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


class UnreadResult:
    """A pickled result the master refused to load (see ``safe_pickle``): its job succeeded
    on its host, but what it returned names something a host may not make the master run."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"<result not loaded: {self.reason}>"


def _decode(kind: str, data: bytes, modules: set[str]) -> Any:
    """A committed result. ``pickle`` only ever reaches the journal after the master checked
    the worker's HMAC with its host's key (function runs), and is loaded by ``safe_pickle``:
    a compromised host can sign what it likes, but not make the master run it."""
    if kind == "bytes":
        return data
    if kind == "pickle":
        try:
            return safe_pickle.loads(data, modules)
        except safe_pickle.RefusedPickle as exc:
            return UnreadResult(str(exc))
    return json.loads(data)


def code_modules(run_dir: str) -> set[str]:
    """The top-level modules of the code the run shipped (its snapshot in the run dir)."""
    root = os.path.join(run_dir, "code")
    try:
        names = os.listdir(root)
    except OSError:
        return set()
    return {n[:-3] if n.endswith(".py") else n for n in names
            if (n.endswith(".py") or os.path.isdir(os.path.join(root, n)))
            and n not in ("cloudpickle", "cloudpickle.py")}


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
    modules = code_modules(run_dir)
    for row in journal.jobs(only):
        state = JobState(row["state"])
        result: Any = None
        if state is JobState.SUCCEEDED and not tasks:
            if row["result_file"]:
                with open(os.path.join(run_dir, row["result_file"]), "rb") as f:
                    data = f.read()
                result = _decode(row["result_kind"], data, modules)
            else:
                result = json.loads(row["result"])
        error = None
        if state is not JobState.SUCCEEDED and state.final:
            error = errors.get(row["id"]) or row["reason"]
        yield JobResult(row["id"], decode_input(row["payload"]), state, result, row["host"],
                        row["attempts"], error)
