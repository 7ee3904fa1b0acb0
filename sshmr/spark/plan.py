"""The RDD plan of a ``--engine spark`` run: text input, one map and one reduce stage per
step, the output collected part by part (see ``sshmr.spark.runner``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ..engine.config import RunConfig
from ..mapreduce.job import MapReduce
from ..record.journal import Journal
from ..remote.mrfiles import copy_data, copy_lines, write_trailer

SUCCESS = "_SUCCESS"
DELIMITER = "textinputformat.record.delimiter"
TASK_FILES = ("spark/__init__.py", "spark/tasks.py")


def run_plan(sc: Any, job: MapReduce, journal: Journal, run_dir: str, bundle: Any,
             uris: list[str], inputs: list[str], reducers: int, config: RunConfig,
             out_dir: str, progress: Callable[[str], None] | None
             ) -> tuple[dict[str, dict[str, int]], int]:
    """Run every step on ``sc``; write the output. Returns (counters, output parts)."""
    from pyspark import StorageLevel, cloudpickle

    from . import entry

    cloudpickle.register_pickle_by_value(entry)  # workers need no sshmr installed
    name = ship_bundle(sc, run_dir, bundle)
    ref = {"bundle": name, "digest": bundle.digest,
           "target": {"module": bundle.module, "class": bundle.cls_name, "state": bundle.state}}
    counters = sc.accumulator({}, entry.DictSum())
    mr = journal.meta()["mapreduce"]
    data, sources = _read_text(sc, uris, inputs)
    steps = mr["steps"]
    for i, desc in enumerate(steps):
        maps = data.getNumPartitions()
        spec = {"step": i, "text": i == 0, "keyed": bool(desc["reducer"]),
                "parts": reducers if desc["reducer"] else 1, "memory": mr["sort_memory"],
                "sources": sources, "timeout": config.fixed_timeout, "maps": maps}
        data = data.mapPartitionsWithIndex(entry.mapper(ref, spec, counters))
        if desc["reducer"]:
            data = data.partitionBy(reducers, entry.same).mapPartitionsWithIndex(
                entry.reducer(ref, spec, counters))
        sources = [f"step {i + 1} output {j}" for j in range(data.getNumPartitions())]
        if progress:
            progress(f"step {i + 1}/{len(steps)}: {maps} map tasks"
                     + (f", {reducers} reduce tasks" if desc["reducer"] else ""))
    final = data.mapPartitionsWithIndex(entry.numbered)
    parts = final.getNumPartitions()
    final.persist(StorageLevel.DISK_ONLY)  # every part computed at once, then read in order
    try:
        final.count()
        write_parts(final.toLocalIterator(), parts, out_dir, bool(mr.get("output_lines")))
    finally:
        final.unpersist()
    return counters.value, parts


def _read_text(sc: Any, uris: list[str], inputs: list[str]) -> tuple[Any, list[str]]:
    """The input lines, only ``\\n`` ending a line (a ``\\r`` before it is stripped by the
    map task, as sshmr does); the source name of each partition, for error messages."""
    hconf = sc._jsc.hadoopConfiguration()
    old = hconf.get(DELIMITER)
    hconf.set(DELIMITER, "\n")
    try:
        rdds = [sc.textFile(uri, minPartitions=sc.defaultParallelism, use_unicode=False)
                for uri in uris]  # lines as UTF-8 bytes: the map task decodes them once
        counts = [rdd.getNumPartitions() for rdd in rdds]  # the splits, cut with "\n"
    finally:
        if old is None:
            hconf.unset(DELIMITER)
        else:
            hconf.set(DELIMITER, old)
    sources = [name for path, rdd, n in zip(inputs, rdds, counts, strict=True)
               for name in _split_names(path, rdd, n)]
    return (rdds[0] if len(rdds) == 1 else sc.union(rdds)), sources


def _split_names(path: str, rdd: Any, count: int) -> list[str]:
    """``PATH bytes START-END`` per input split (sshmr's own form, which mrjob's
    ``mapreduce.map.input.file`` reads), or ``PATH split J of N`` where Spark hides it."""
    try:
        names = []
        for partition in rdd._jrdd.rdd().partitions():
            split = partition.inputSplit().value()
            start, length = split.getStart(), split.getLength()
            names.append(f"{path} bytes {start}-{start + length}")
        if len(names) == count:
            return names
    except Exception:  # noqa: BLE001 - not a Hadoop file split: a plainer name
        pass
    return [f"{path} split {j + 1} of {count}" for j in range(count)]


def ship_bundle(sc: Any, run_dir: str, bundle: Any) -> str:
    """Write the code bundle (sshmr's runtime, its Spark task module, the user's code) and
    add it to the SparkContext once; the name under which tasks find it (``SparkFiles``)."""
    name = f"sshmr-bundle-{bundle.digest}"
    shipped = sc.__dict__.setdefault("_sshmr_bundles", set())
    if name in shipped:
        return name
    root = os.path.abspath(os.path.join(run_dir, "spark", name))  # the JVM has its own cwd
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    files = dict(bundle.files)
    for rel in TASK_FILES:
        with open(os.path.join(package, rel), "rb") as f:
            files[f"sshmr/{rel}"] = f.read()
    for rel, data in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    sc.addFile(root, recursive=True)
    shipped.add(name)
    return name


def write_parts(chunks: Any, parts: int, out_dir: str, lines: bool) -> None:
    """``(part, records)`` chunks, in part order, to ``DIR/part-NNNNN`` (every part, empty
    ones too) through the engine's writer, then ``_SUCCESS``."""
    copy = copy_lines if lines else copy_data

    def seg(part: int) -> str:
        return os.path.join(out_dir, f".part-{part:05d}.seg")

    def finish(part: int, f: Any) -> None:
        if f is None:
            f = open(seg(part), "wb")  # noqa: SIM115 - closed just below
        write_trailer(f, {"parts": [[0, f.tell()]]})
        f.close()
        copy(seg(part), os.path.join(out_dir, f"part-{part:05d}"))
        os.unlink(seg(part))

    current, f = 0, None
    for part, chunk in chunks:
        while current < part:
            finish(current, f)
            current, f = current + 1, None
        if f is None:
            f = open(seg(current), "wb")  # noqa: SIM115 - finish() closes it
        f.write(chunk)
    while current < parts:
        finish(current, f)
        current, f = current + 1, None
    with open(os.path.join(out_dir, SUCCESS), "wb") as done:
        os.fsync(done.fileno())
