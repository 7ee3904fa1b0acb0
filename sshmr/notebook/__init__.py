"""``sshmr.notebook``: map a function written in a Jupyter notebook over the fleet.

::

    from sshmr.notebook import Cluster

    c = Cluster("inventory.yaml")            # or Cluster(): this machine; defaults as keywords
    c = Cluster("hosts.ini", hosts="web")    # an Ansible inventory, only its group 'web'
    results = c.map(f, range(1000), timeout=60, max_retries=2)   # a list, in item order
    c.run(MyExecutor(), inputs)              # a JobExecutor instance, like sshmr.run
    c.mapreduce(WordCount(), paths, output="out")
    c.hosts()                                # the preflight table
    c.last                                   # the RunResult of the latest call

Each call runs ``sshmr.run`` on the calling thread, the kernel's main thread, so the
kernel's interrupt (SIGINT) reaches the master, which cancels the run the way Ctrl-C does:
attempts killed on every host, remote run directories removed, nothing left running. The
call then raises :class:`sshmr.Cancelled`; ``c.last`` holds what had finished. While a call
runs, :mod:`.view` shows its progress; a job that failed raises :class:`sshmr.JobFailed`
once the whole run has finished (``errors="return"`` puts the exceptions in place).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from typing import Any

from ..engine.config import RunConfig
from ..errors import Cancelled, ConfigError, JobFailed, NoHostsAvailable, RemoteTraceback
from ..inventory import Inventory, resolve_inventory
from ..jobs import JobState
from ..record.journal import Journal
from ..record.results import UnreadResult
from ..result import RunResult
from ..views.notebook_html import HostTable
from .shipping import encode_item, ship_function
from .view import RunView

__all__ = ["Cluster", "HostTable"]


class Cluster:
    """A fleet (an inventory, or this machine) and the defaults of the calls made on it.

    ``hosts`` (a pattern, as ``sshmr run --hosts``) keeps only those hosts of the inventory;
    without an inventory it picks ``Host`` aliases of ``~/.ssh/config``.
    ``defaults`` are ``sshmr.run`` options (``timeout``, ``max_retries``, ``slots``, ...);
    a call's own keywords override them. ``progress``: None shows a widget in a kernel and
    a text bar on stderr elsewhere; False shows nothing.
    """

    def __init__(self, inventory: str | os.PathLike | None = None, *,
                 hosts: str | None = None, runs_dir: str = "sshmr-runs",
                 progress: bool | None = None, **defaults: Any) -> None:
        self.inventory: Inventory | None = resolve_inventory(inventory, hosts)
        RunConfig.build(None, **defaults)  # a bad default fails now, with its name
        self.defaults = defaults
        self.runs_dir = runs_dir
        self.progress = progress
        self.last: RunResult | None = None

    def __repr__(self) -> str:
        where = self.inventory.path if self.inventory is not None else "local"
        return f"<sshmr.notebook.Cluster {where}>"

    # ------------------------------------------------------------------ calls

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], *, errors: str = "raise",
            **options: Any) -> list[Any]:
        """``[fn(item) for item in items]``, computed on the fleet; results in item order.

        A job that failed raises :class:`sshmr.JobFailed` (naming the item and the host, the
        remote traceback as its cause) after the rest of the run has finished; with
        ``errors="return"`` its place in the list holds that exception instead.
        """
        if errors not in ("raise", "return"):
            raise ConfigError(f"errors={errors!r}: expected 'raise' or 'return'")
        items = list(items)
        executor, code = ship_function(fn)
        payloads = [encode_item(item) for item in items]
        if not payloads:
            return []
        result = self._call(executor, f"map {executor.name} over {len(items)} items", payloads,
                            code=code, **options)
        return _outcomes(result, items, errors)

    def run(self, executor: Any, inputs: Iterable[Any] | None = None,
            **options: Any) -> RunResult:
        """``sshmr.run(executor, inputs, ...)`` on this cluster, with the live view."""
        name = executor.__name__ if isinstance(executor, type) else type(executor).__name__
        return self._call(executor, f"run {name}", inputs, **options)

    def mapreduce(self, job: Any, inputs: Iterable[Any], *, output: str,
                  **options: Any) -> RunResult:
        """``sshmr.run(job, inputs, output=output, ...)`` for a ``sshmr.MapReduce`` job."""
        return self._call(job, f"mapreduce {type(job).__name__}", inputs, output=output,
                          **options)

    def hosts(self) -> HostTable:
        """Reach every host and check it can run workers (``sshmr hosts``), as a table."""
        if self.inventory is None:
            cpus = os.cpu_count() or 1
            return HostTable([{"host": "local", "ok": True, "python": platform.python_version(),
                               "cpus": cpus, "slots": self.defaults.get("slots") or cpus}])
        from ..engine.preflight import check_hosts

        return HostTable(check_hosts(self.inventory,
                                     bool(self.defaults.get("accept_new_hosts"))))

    def _call(self, executor: Any, label: str, items: Any, **options: Any) -> RunResult:
        from ..api import run

        options = {**self.defaults, **options}
        view: Any = nullcontext()
        if self.progress is not False:
            view = RunView(self.runs_dir, label)
        with view:
            result = run(executor, items, inventory=self.inventory, runs_dir=self.runs_dir,
                         progress=getattr(view, "post", None), **options)
        self.last = result
        if result.state == "cancelled":
            raise Cancelled(f"run {result.run_id} was cancelled: {result.succeeded} of"
                            f" {len(result)} jobs had succeeded; c.last holds their results")
        if result.state == "no_hosts":
            raise NoHostsAvailable(result.message or "no host usable; check c.hosts()")
        return result


def _outcomes(result: RunResult, items: list[Any], errors: str) -> list[Any]:
    """Each job's result, or a JobFailed in its place; raise the first unless ``return``."""
    if all(j.state is JobState.SUCCEEDED and not isinstance(j.result, UnreadResult)
           for j in result.jobs):
        return result.results
    details = _last_attempts(result.run_dir)
    out: list[Any] = []
    failures: list[JobFailed] = []
    for job, item in zip(result.jobs, items, strict=True):
        if job.state is JobState.SUCCEEDED and not isinstance(job.result, UnreadResult):
            out.append(job.result)
            continue
        host, error, tb = details.get(job.job, (job.host, job.error, None))
        if job.state is JobState.SUCCEEDED:  # refused by safe_pickle: never loaded
            host, error, tb = job.host, repr(job.result), None
        exc = JobFailed(job.job, item, host, _last_line(error or job.error or job.state.value),
                        tb or "", job.attempts)
        if tb:
            exc.__cause__ = RemoteTraceback(tb)
        out.append(exc)
        failures.append(exc)
    if errors == "return":
        return out
    first = failures[0]
    if len(failures) > 1:
        first.args = (f"{first.args[0]} (and {len(failures) - 1} more failed jobs: c.last"
                      " lists them; map(..., errors='return') returns every outcome)",)
    raise first from first.__cause__


def _last_attempts(run_dir: str) -> dict[int, tuple[str, str | None, str | None]]:
    """job -> (host, error, traceback) of its last attempt."""
    journal = Journal(run_dir, readonly=True)
    try:
        rows = journal.db.execute(
            "SELECT job, host, COALESCE(error, reason), traceback FROM attempts WHERE id IN"
            " (SELECT MAX(id) FROM attempts GROUP BY job)").fetchall()
    finally:
        journal.close()
    return {job: (host, error, tb) for job, host, error, tb in rows}


def _last_line(text: str) -> str:
    lines = [x.strip() for x in text.splitlines() if x.strip()]
    return lines[-1] if lines else text
