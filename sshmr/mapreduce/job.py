"""The user's side of MapReduce: ``MapReduce`` and ``MRStep`` (standard library only).

The names and semantics are mrjob's (``MRJob``/``MRStep``): a job defines ``mapper``,
optionally ``combiner`` and ``reducer`` and their ``*_init``/``*_final`` hooks, or a list
of steps from ``steps()``; each step's output feeds the next. ``increment_counter``
counts things; counters are summed over the tasks whose result was committed.

A ``MapReduce`` is a ``JobExecutor``: each map or reduce *task* is one engine job, so
timeouts, retries, max_living, quarantine, cancel, resume and the journal apply to it
unchanged. On a host, ``execute`` runs one task with the runner the worker binds to the job
(``sshmr.remote.tasks``; the runner is ``sshmr.remote.mrtask``, which this module does not
import). This module is shipped to hosts and runs on Python 3.8+.
"""

from __future__ import annotations

import zlib
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from ..executor import JobExecutor
from ..remote.tasks import run_bound_task

_HOOKS = ("mapper", "combiner", "reducer", "mapper_init", "mapper_final", "combiner_init",
          "combiner_final", "reducer_init", "reducer_final")

Pair = Tuple[Any, Any]


class MRStep:
    """One map -> (combine) -> shuffle -> reduce step; any of the functions may be omitted
    except that a step needs a mapper or a reducer. Like ``mrjob.step.MRStep``."""

    def __init__(self, **functions: Optional[Callable[..., Any]]) -> None:
        unknown = sorted(set(functions) - set(_HOOKS))
        if unknown:
            raise TypeError("MRStep() got unexpected argument(s) %s; known: %s"
                            % (", ".join(unknown), ", ".join(_HOOKS)))
        self.functions: Dict[str, Callable[..., Any]] = {
            name: fn for name, fn in functions.items() if fn is not None}
        if "mapper" not in self.functions and "reducer" not in self.functions:
            raise TypeError("an MRStep needs a mapper or a reducer")

    def get(self, name: str) -> Optional[Callable[..., Any]]:
        return self.functions.get(name)

    @property
    def has_reducer(self) -> bool:
        return "reducer" in self.functions

    def describe(self) -> Dict[str, bool]:
        return {name: name in self.functions for name in ("mapper", "combiner", "reducer")}

    def __repr__(self) -> str:
        return "MRStep(%s)" % ", ".join("%s=%s" % (k, getattr(v, "__name__", v))
                                        for k, v in self.functions.items())


class MapReduce(JobExecutor):
    """Subclass and define ``mapper(key, value)`` and/or ``reducer(key, values)`` (and
    optionally ``combiner``), each yielding ``(key, value)`` pairs; or ``steps()``.

    Keys and values must be JSON-serialisable. For text input the mapper gets
    ``(None, line)`` (the line without its newline); a later step's mapper gets the
    previous step's ``(key, value)`` pairs. ``reducer``/``combiner`` get a key and an
    iterator over all of its values, which is streamed: it need not fit in memory.

    Map output goes to reducer ``partition(key, n)``: a stable hash of the key's JSON
    encoding (the same on every host and in every run); override it to group differently.
    """

    #: Optional hook: ``input_records(path, source)`` yields the first step's mapper input
    #: ``(key, value)`` pairs from one input file (its path on the host and its description,
    #: e.g. ``big.txt bytes 0-1048600``). None: ``(None, line)`` per UTF-8 text line.
    input_records: Optional[Callable[[str, str], Iterable[Pair]]] = None

    #: True: every final record is a line: ``(key, rest)``, ``key`` the hex of the line's
    #: bytes before its first tab, ``rest`` None or the text after it, one character per
    #: byte (latin-1); the output parts then hold these lines as they are, not
    #: ``json(key)<TAB>json(value)`` (the mrjob adapter).
    output_lines = False

    def steps(self) -> List[MRStep]:
        """The job's steps; by default one step made of the methods this class defines."""
        functions = {name: getattr(self, name) for name in _HOOKS
                     if getattr(type(self), name, None) is not getattr(MapReduce, name, None)}
        return [MRStep(**functions)]

    def partition(self, key_json: str, n: int) -> int:
        """The reducer (0 .. n-1) of a key, given the key's compact JSON encoding."""
        return zlib.crc32(key_json.encode("utf-8")) % n

    partition.crc32_of_key = True  # type: ignore[attr-defined]  # inlined by the task runner

    def increment_counter(self, group: str, name: str, n: int = 1) -> None:
        """Add ``n`` to counter ``group``/``name`` (summed over committed tasks)."""
        counters = self.__dict__.setdefault("_sshmr_counters", {})
        bucket = counters.setdefault(str(group), {})
        bucket[str(name)] = bucket.get(str(name), 0) + n

    #: The host-side runner of this job's tasks (``sshmr.remote.tasks``).
    sshmr_runner = "mapreduce"

    def execute(self, payload: Any) -> Any:
        """Run one map or reduce task (called by the engine's worker, not by users)."""
        return run_bound_task(self, payload)

    # Placeholders so ``steps()`` can tell which hooks a subclass defines.
    def mapper(self, key: Any, value: Any) -> Iterable[Pair]:  # pragma: no cover
        raise NotImplementedError

    def reducer(self, key: Any, values: Iterator[Any]) -> Iterable[Pair]:  # pragma: no cover
        raise NotImplementedError

    combiner = reducer
    mapper_init = mapper_final = combiner_init = combiner_final = None  # type: ignore
    reducer_init = reducer_final = None  # type: ignore


def step_functions(job: MapReduce) -> List[MRStep]:
    """``job.steps()``, checked: a non-empty list of MRStep."""
    steps = job.steps()
    if not isinstance(steps, (list, tuple)) or not steps:
        raise TypeError("%s.steps() must return a non-empty list of MRStep"
                        % type(job).__name__)
    for i, step in enumerate(steps):
        if not isinstance(step, MRStep):
            raise TypeError("%s.steps()[%d] is %r, not an MRStep" % (type(job).__name__, i, step))
    return list(steps)
