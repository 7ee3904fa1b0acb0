"""What every Spark task of a sshmr run is given, pickled by value (pyspark, no sshmr).

A Spark worker may have no sshmr installed: the functions here are pickled whole
(``cloudpickle.register_pickle_by_value``), put the run's code bundle (sshmr's runtime and
the user's code, shipped with ``SparkContext.addFile``) first on ``sys.path`` and only then
import ``sshmr.spark.tasks`` from it. ``DictSum`` sums the counters in a Spark accumulator.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pyspark.accumulators import AccumulatorParam

Counters = dict[str, dict[str, int]]


class DictSum(AccumulatorParam):
    """Counters ``{group: {name: n}}`` summed name by name."""

    def zero(self, value: Counters) -> Counters:
        return {}

    def addInPlace(self, a: Counters, b: Counters) -> Counters:  # noqa: N802 - pyspark's name
        for group, names in b.items():
            bucket = a.setdefault(group, {})
            for name, n in names.items():
                bucket[name] = bucket.get(name, 0) + n
        return a


def _tasks(job: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    from pyspark import SparkFiles

    root = SparkFiles.get(job["bundle"])
    if root not in sys.path:
        sys.path.insert(0, root)
    from sshmr.spark import tasks

    return tasks, dict(job, root=root)


def mapper(job: dict[str, Any], spec: dict[str, Any],
           counters: Any) -> Callable[[int, Iterable[Any]], Iterator[Any]]:
    def run(index: int, items: Iterable[Any]) -> Iterator[Any]:
        tasks, where = _tasks(job)
        return tasks.map_partition(where, spec, index, items, counters)
    return run


def reducer(job: dict[str, Any], spec: dict[str, Any],
            counters: Any) -> Callable[[int, Iterable[Any]], Iterator[Any]]:
    def run(index: int, items: Iterable[Any]) -> Iterator[Any]:
        tasks, where = _tasks(job)
        return tasks.reduce_partition(where, spec, index, items, counters)
    return run


def numbered(index: int, items: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """Each output chunk with the number of its part."""
    for chunk in items:
        yield index, chunk


def same(reducer_index: int) -> int:
    """The partitioner of the shuffle: the key already is the reducer."""
    return reducer_index
