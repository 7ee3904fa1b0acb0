"""``RunResult``: a finished (or running) run read back from its journal, with its job
results (``JobResult``, re-exported from ``sshmr.record.results``) and its report."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .jobs import JobState
from .record.journal import Journal
from .record.results import JobResult, iter_job_results

__all__ = ["JobResult", "RunResult", "load_run_result"]


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
        from .views.report import write_report

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
        from .views.notebook_html import run_result_html

        return run_result_html(self)

    def __repr__(self) -> str:
        return (f"<RunResult {self.run_id} {self.state}: {self.succeeded}/{len(self.jobs)}"
                f" succeeded, {self.failed} failed, {self.unknown} unknown>")


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
