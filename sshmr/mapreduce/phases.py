"""The journal's record of a MapReduce run's phases (master): the run's context, each
phase's tasks (a range of job ids) added and opened, its outcome and the counters of the
tasks that committed. ``driver`` runs the phases; ``meta["mapreduce"]`` holds the record.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..engine.bundle import Bundle
from ..engine.config import RunConfig
from ..inventory import Inventory
from ..record.journal import Journal
from ..remote.mrfiles import read_trailer


@dataclass
class Ctx:
    """What every phase of one MapReduce run needs."""

    journal: Journal
    run_dir: str
    run_id: str
    runs_dir: str
    inv: Inventory | None
    config: RunConfig
    bundle: Bundle
    progress: Callable[[str], None] | None

    @property
    def mr(self) -> dict[str, Any]:
        return self.journal.meta()["mapreduce"]

    def save(self, **changes: Any) -> None:
        self.journal.set_meta(mapreduce=dict(self.mr, **changes))

    def say(self, line: str) -> None:
        if self.progress:
            self.progress(line)


def phase_of(ctx: Ctx, step: int, kind: str) -> dict[str, Any] | None:
    for phase in ctx.mr["phases"]:
        if phase["step"] == step and phase["phase"] == kind:
            return phase
    return None


def add_phase(ctx: Ctx, step: int, kind: str, payloads: list[str]) -> None:
    """Add a phase's tasks as jobs and record the phase, in one journal transaction."""
    first = ctx.journal.db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM jobs").fetchone()[0]
    ctx.journal.add_jobs((first + i, p) for i, p in enumerate(payloads))
    phase = {"step": step, "phase": kind, "first": first, "last": first + len(payloads) - 1}
    ctx.save(phases=ctx.mr["phases"] + [phase])
    ctx.journal.flush()


def open_tasks(ctx: Ctx, phase: dict[str, Any]) -> list[tuple[int, int]]:
    """A phase becomes the current one: (id, launches) of its tasks still to run."""
    ctx.save(current={"step": phase["step"], "phase": phase["phase"]})
    rows = ctx.journal.db.execute(
        "SELECT id, launches FROM jobs WHERE id BETWEEN ? AND ? AND state IN"
        " ('PENDING', 'RUNNING')", (phase["first"], phase["last"])).fetchall()
    total = phase["last"] - phase["first"] + 1
    if rows and len(rows) < total:  # resumed: part of the phase is done
        ctx.say(f"{phase_name(ctx, phase)}: {len(rows)} of {total} tasks left to run")
    ctx.journal.flush()
    return rows


def phase_failure(ctx: Ctx, phase: dict[str, Any]) -> tuple[str, str] | None:
    """Once a phase ran: its counters summed; ("failed", message) if a task of it did not
    succeed."""
    failed = ctx.journal.db.execute(
        "SELECT j.id, j.state, j.payload, COALESCE((SELECT error FROM attempts a WHERE a.job ="
        " j.id ORDER BY a.id DESC LIMIT 1), j.reason) FROM jobs j WHERE j.id BETWEEN ? AND ?"
        " AND j.state != 'SUCCEEDED' ORDER BY j.id", (phase["first"], phase["last"])).fetchall()
    sum_counters(ctx)
    if not failed:
        return None
    job, state, payload, error = failed[0]
    more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
    mr = json.loads(payload)["mr"]
    return "failed", (f"{phase['phase']} task {mr['task']} of step {phase['step'] + 1}"
                      f" ({mr['source']}) {state}: {last_line(error)}{more}; see 'sshmr"
                      f" show {ctx.run_id} {job}'")


def phase_name(ctx: Ctx, phase: dict[str, Any]) -> str:
    return f"step {phase['step'] + 1}/{len(ctx.mr['steps'])} {phase['phase']}"


def result_files(ctx: Ctx, phase: dict[str, Any]) -> list[str]:
    rows = ctx.journal.db.execute(
        "SELECT result_file FROM jobs WHERE id BETWEEN ? AND ? ORDER BY id",
        (phase["first"], phase["last"])).fetchall()
    return [r[0] for r in rows]


def sum_counters(ctx: Ctx) -> None:
    """Counters of every committed task (a failed or discarded attempt counts nothing)."""
    totals: dict[str, dict[str, int]] = {}
    for phase in ctx.mr["phases"]:
        for f in result_files(ctx, phase):
            path = os.path.join(ctx.run_dir, f) if f else None
            if not path or not os.path.exists(path):
                continue
            trailer = read_trailer(path)
            counters = dict(trailer.get("counters") or {})
            out = f"{phase['phase']} output records"
            counters["sshmr"] = dict(counters.get("sshmr") or {}, **{out: trailer["records"]})
            for group, names in counters.items():
                bucket = totals.setdefault(group, {})
                for name, n in names.items():
                    bucket[name] = bucket.get(name, 0) + n
    ctx.save(counters=totals)


def last_line(error: str | None) -> str:
    lines = (error or "").strip().splitlines()
    return lines[-1] if lines else "no error recorded"
