"""One sshmr map or reduce task inside a Spark Python worker (standard library only).

Spark moves the data; sshmr's own task runner (``sshmr.remote.mrtask`` through the job's
``execute``, as on a host) does the work, so the records, their encoding, the partitioner,
the sort, the combiner and the counters are the engine's, byte for byte:

* a map task writes its Spark partition (text lines, or a previous step's record chunks)
  to a local file, runs the job's map task on it and yields each reducer's sorted run in
  chunks cut at line boundaries, keyed ``(reducer, (map task, chunk))``;
* a reduce task writes the chunks Spark shuffled to it, orders them by map task (the
  order sshmr's shuffle gives) into one segment file, runs the job's reduce task on it and
  yields its sorted output in chunks.

This module ships to Spark's workers inside the code bundle (``runner`` adds it).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

from ..remote.mrfiles import read_trailer, write_trailer
from ..remote.tasks import bind_runner
from ..remote.workers import load_executor

CHUNK = 8 << 20  # bytes of records per Spark element (cut at a line end)
WRITE_BATCH = 4096

_EXECUTORS: dict[str, Any] = {}  # bundle digest -> the job, set up once per worker process


class TaskTimeout(Exception):
    """A task ran longer than the run's timeout."""


class TaskError(Exception):
    """A task failed; the message names the task and its input (the driver reads it)."""


def executor_for(job: dict[str, Any]) -> Any:
    """The job of bundle ``job["digest"]``, imported from the shipped code, ``setup()`` run."""
    executor = _EXECUTORS.get(job["digest"])
    if executor is None:
        target = dict(job["target"], path=os.path.join(job["root"], "user"))
        top = target["module"].split(".")[0]
        stale = [m for m in sys.modules if top != "sshmr" and (m == top or m.startswith(top + "."))]
        for name in stale:
            if not os.path.abspath(getattr(sys.modules[name], "__file__", None) or "").startswith(
                    target["path"]):  # another run's code, in a reused worker
                del sys.modules[name]
        executor = load_executor(target)
        bind_runner(executor)
        try:
            executor.setup()
        except Exception as exc:
            raise RuntimeError(f"setup() of {target['class']} failed: {type(exc).__name__}:"
                               f" {exc}") from exc
        _EXECUTORS[job["digest"]] = executor
    return executor


def map_partition(job: dict[str, Any], spec: dict[str, Any], index: int,
                  items: Iterable[Any], counters: Any) -> Iterator[Any]:
    """Map task ``index`` of one step over a Spark partition (see the module docstring)."""
    executor = executor_for(job)
    scratch = tempfile.mkdtemp(prefix="sshmr-spark-")
    try:
        with _deadline(spec.get("timeout"), f"map task {index} of step {spec['step'] + 1}"):
            path = os.path.join(scratch, "input")
            with open(path, "wb", buffering=1 << 20) as f:
                if spec["text"]:
                    _write_lines(f, items)
                else:
                    for chunk in items:
                        f.write(chunk)
                    write_trailer(f, {"parts": [[0, f.tell()]]})
            sources = spec["sources"]
            source = sources[index] if index < len(sources) else f"split {index}"
            out = _execute(executor, spec, "map", index, path, spec["parts"], source, counters)
        if spec["parts"] == 1 and not spec["keyed"]:
            for chunk in _chunks(out, *read_trailer(out)["parts"][0]):
                yield chunk
            return
        for r, (offset, length) in enumerate(read_trailer(out)["parts"]):
            for c, chunk in enumerate(_chunks(out, offset, length)):
                yield r, (index, c, chunk)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def reduce_partition(job: dict[str, Any], spec: dict[str, Any], index: int,
                     items: Iterable[tuple[int, tuple[int, int, bytes]]],
                     counters: Any) -> Iterator[bytes]:
    """Reduce task ``index``: its runs from every map task, in map task order."""
    executor = executor_for(job)
    scratch = tempfile.mkdtemp(prefix="sshmr-spark-")
    try:
        with _deadline(spec.get("timeout"), f"reduce task {index} of step"
                       f" {spec['step'] + 1}"):
            arrived = os.path.join(scratch, "arrived")
            pieces: list[tuple[int, int, int, int]] = []  # (map task, chunk, offset, length)
            with open(arrived, "wb", buffering=1 << 20) as f:
                for _, (task, c, chunk) in items:
                    pieces.append((task, c, f.tell(), len(chunk)))
                    f.write(chunk)
            pieces.sort()
            path = os.path.join(scratch, "input")
            parts: list[list[int]] = []
            with open(arrived, "rb") as src, open(path, "wb", buffering=1 << 20) as f:
                last = None
                for task, _, offset, length in pieces:
                    if task != last:  # one sorted run per map task, as sshmr's shuffle
                        parts.append([f.tell(), 0])
                        last = task
                    src.seek(offset)
                    f.write(src.read(length))
                    parts[-1][1] += length
                write_trailer(f, {"parts": parts})
            os.unlink(arrived)
            source = f"partition {index} of {spec['maps']} map outputs"
            out = _execute(executor, spec, "reduce", index, path, 1, source, counters)
        for chunk in _chunks(out, *read_trailer(out)["parts"][0]):
            yield chunk
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _execute(executor: Any, spec: dict[str, Any], phase: str, index: int, path: str,
             parts: int, source: str, counters: Any) -> str:
    """Run the task through the job's ``execute`` (as a host's worker does); add its
    counters (and sshmr's own, as the engine sums them) to the accumulator."""
    mr = {"phase": phase, "step": spec["step"], "task": index, "parts": parts,
          "text": phase == "map" and spec["text"], "memory": spec["memory"], "source": source}
    try:
        result = executor.execute({"file": path, "mr": mr})
    except Exception as exc:
        where = f"{phase} task {index} of step {spec['step'] + 1} ({source})"
        if str(exc).startswith(where):
            raise
        raise TaskError(f"{where}: {type(exc).__name__}: {exc}") from exc
    out = result.path
    trailer = read_trailer(out)
    found = dict(trailer.get("counters") or {})
    found["sshmr"] = dict(found.get("sshmr") or {},
                          **{f"{phase} output records": trailer.get("records", 0)})
    counters.add(found)
    return out


def _write_lines(f: Any, lines: Iterable[bytes]) -> None:
    batch: list[bytes] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= WRITE_BATCH:
            f.write(b"\n".join(batch) + b"\n")
            batch = []
    if batch:
        f.write(b"\n".join(batch) + b"\n")


def _chunks(path: str, offset: int, length: int) -> Iterator[bytes]:
    """The ``length`` bytes at ``offset`` of ``path`` in pieces of about CHUNK bytes, each
    ending at a line end (so every piece is whole records)."""
    with open(path, "rb") as f:
        f.seek(offset)
        left, carry = length, b""
        while left > 0:
            data = carry + f.read(min(CHUNK, left))
            left -= len(data) - len(carry)
            cut = data.rfind(b"\n") + 1 if left > 0 else len(data)
            if cut == 0:  # one record longer than CHUNK: keep reading
                carry = data
                continue
            carry = data[cut:]
            yield data[:cut]
        if carry:
            yield carry


class _deadline:
    """The run's per-task timeout (seconds; None: none), as SIGALRM in this worker."""

    def __init__(self, seconds: Any, what: str) -> None:
        self.seconds = seconds
        self.what = what
        self.old: Any = None

    def _fire(self, signum: int, frame: Any) -> None:
        raise TaskTimeout(f"{self.what} timed out after {self.seconds:g}s (the run's timeout)")

    def __enter__(self) -> _deadline:
        if self.seconds:
            self.old = signal.signal(signal.SIGALRM, self._fire)
            signal.setitimer(signal.ITIMER_REAL, float(self.seconds))
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.seconds:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.old or signal.SIG_DFL)
