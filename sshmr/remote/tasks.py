"""Task runners the remote side owns (stdlib only).

Some executors do not do their own work in ``execute``: a ``MapReduce`` job's tasks are run
by ``mrtask.run_task``, which reads the task's input, calls the job's functions and writes
its segment file. Such an executor names its runner (``sshmr_runner = "mapreduce"``) and
the worker binds that runner to it before its first job (``bind_runner``); the job's
``execute`` then calls it (``run_bound_task``). So the user's class never imports the
host-side runner, and the runner never imports the user's class.
"""

from __future__ import annotations

from typing import Any, Callable, Dict

BOUND = "_sshmr_run_task"  # the instance attribute the bound runner lives in


def _mapreduce() -> Callable[[Any, Any], Any]:
    from .mrtask import run_task

    return run_task


RUNNERS: Dict[str, Callable[[], Callable[[Any, Any], Any]]] = {"mapreduce": _mapreduce}


def bind_runner(executor: Any) -> None:
    """Give ``executor`` the runner it names (nothing for a plain ``JobExecutor``)."""
    kind = getattr(executor, "sshmr_runner", None)
    if kind is None:
        return
    if kind not in RUNNERS:
        raise TypeError("%s names an unknown task runner %r (known: %s)"
                        % (type(executor).__name__, kind, ", ".join(sorted(RUNNERS))))
    executor.__dict__[BOUND] = RUNNERS[kind]()


def run_bound_task(executor: Any, payload: Any) -> Any:
    """Run one task of ``executor`` with the runner the worker bound to it."""
    run = executor.__dict__.get(BOUND)
    if run is None:
        raise RuntimeError("%s.execute runs one task on a sshmr worker; run the job with"
                           " sshmr.run(...) or 'sshmr run'" % type(executor).__name__)
    return run(executor, payload)
