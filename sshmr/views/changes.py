"""What changed during a run, for the report: hosts drained, undrained and added (and
inventory edits ignored), marked on the timeline and listed; and the adaptive timeout's
value over time. Read from the journal's events (see ``engine.master.commands`` and the
scheduler's ``TimeoutChanged``)."""

from __future__ import annotations

from typing import Any

from ..record.journal import Journal

FLEET_KINDS = {"drain": "drained", "undrain": "undrained", "host_added": "joined",
               "inventory_ignored": "inventory edit ignored"}


def fleet_changes(journal: Journal, created: float) -> list[dict[str, Any]]:
    """Each host change: when (seconds into the run and Unix time), what, which host, why."""
    rows = journal.db.execute(
        "SELECT ts, kind, host, message FROM events WHERE kind IN (?, ?, ?, ?) ORDER BY id",
        tuple(FLEET_KINDS)).fetchall()
    return [{"at": ts - created, "ts": ts, "what": FLEET_KINDS[kind], "kind": kind,
             "host": host or "", "why": message or ""} for ts, kind, host, message in rows]


def timeout_changes(journal: Journal, created: float) -> list[dict[str, Any]]:
    """The adaptive timeout over time: its first value (the ceiling) and each change the
    master journaled. Empty for a fixed timeout or none."""
    rows = journal.db.execute(
        "SELECT ts, message FROM events WHERE kind = 'timeout' ORDER BY id").fetchall()
    out = []
    for ts, message in rows:
        value, _, rest = (message or "").partition("s")
        try:
            seconds = float(value)
        except ValueError:
            continue
        out.append({"at": ts - created, "ts": ts, "seconds": seconds,
                    "why": rest.strip(" ()")})
    return out
