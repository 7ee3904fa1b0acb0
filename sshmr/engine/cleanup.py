"""The end of a run on a host: its run directory is gone, or the master says it is not.

The agent removes the run's directory when the master tells it to exit. The master then
checks, and removes the directory itself once no agent of the run holds it (the run's
``agent.lock`` is free): over a slow link the agent's removal may not have happened yet.
What it cannot remove in a few seconds it names, for ``sshmr gc`` (as it names the hosts
lost during the run, whose cut-off agents exit without removing it).
"""

from __future__ import annotations

import time

from ..errors import HostError
from ..transport.base import Transport

CLEANUP_PATIENCE = 3.0  # how long the master tries to remove a run dir left on a host


def make_sure_removed(t: Transport, python: str, run_dir: str, until: float) -> str | None:
    """Until ``until``: ``run_dir`` is gone, or removed here once no agent holds it.
    None, or what to tell the user."""
    from .collect import agents_gone

    while True:
        try:
            if not t.exists(run_dir):
                return None
            if agents_gone(t, python, run_dir):
                t.rmtree(run_dir)
                continue
            problem = "an agent of the run still held it"
        except (OSError, HostError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= until:
            return (f"{t.name} kept the run's directory {run_dir} ({problem}); 'sshmr gc'"
                    " removes it")
        time.sleep(0.5)
