"""One MapReduce task on a worker: read its input, run the user's functions, write a
segment file (standard library only; shipped to hosts).

A task's payload (built by ``sshmr.mrdriver``) is ``{"file": <pushed input>, "mr": {...}}``
with ``phase`` (map or reduce), ``step``, ``task``, ``parts`` (segments to write),
``text`` (input is text lines, not records), ``memory`` (the sort bound, bytes) and
``source`` (what the input is, for error messages).

* map: input lines (``(None, line)``; gzip read transparently) or a previous step's
  records -> ``mapper`` -> ``SortBuffer`` (combiner, spills) -> one segment per reducer.
* reduce: the runs of every map task for this partition -> k-way merge -> ``reducer``
  (each key's values streamed) -> one sorted segment.

The output is returned as a ``ResultFile``: the engine commits, fetches and checksums it
like any result. Counters ride in the segment trailer.
"""

from __future__ import annotations

import gc
import gzip
import heapq
import json
import os
import zlib
from json.encoder import encode_basestring as encode_str
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from .mrfiles import TextError, iter_records, read_trailer, text_blocks
from .resultfile import ResultFile
from .sortmerge import (
    KEY_COST,
    MERGE_FAN_IN,
    VALUE_COST,
    WRITE_BATCH,
    SortBuffer,
    SortedRun,
    encode_json,
    encode_values,
    grouped,
    load_groups,
    merge_runs,
    record_key,
)

GZIP_MAGIC = b"\x1f\x8b"
GC_THRESHOLD = 10_000  # allocations between young collections during a task (default 700)


class TaskError(Exception):
    """A map or reduce task failed; the message names the task and its input."""


def run_task(job: Any, payload: Dict[str, Any]) -> ResultFile:
    """Run one task of ``job`` (a ``sshmr.MapReduce``, duck-typed: this runner does not
    import it; the master checked its steps)."""
    mr = payload["mr"]
    work = os.path.dirname(payload["file"])
    scratch = os.path.join(work, "mr-scratch")
    os.makedirs(scratch, mode=0o700, exist_ok=True)
    out = os.path.join(work, "mr-out")
    step = list(job.steps())[mr["step"]]
    job.__dict__["_sshmr_counters"] = {}
    where = "%s task %d of step %d (%s)" % (mr["phase"], mr["task"], mr["step"] + 1,
                                           mr.get("source", "?"))
    task = _MapTask if mr["phase"] == "map" else _ReduceTask
    runner = task(job, step, mr, scratch)
    # A task makes a container per key (and a tuple per pair): with the default threshold
    # the collector walks the growing buffer again and again for cycles it rarely finds.
    threshold = gc.get_threshold()
    gc.set_threshold(max(threshold[0], GC_THRESHOLD), *threshold[1:])
    try:
        runner.run(payload["file"], out)
    except TaskError:
        raise
    except Exception as exc:  # noqa: BLE001 - named, with the original chained
        raise TaskError("%s%s: %s: %s" % (where, runner.position(), type(exc).__name__,
                                          exc)) from exc
    finally:
        gc.set_threshold(*threshold)
    return ResultFile(out)


class _Task:
    def __init__(self, job: Any, step: Any, mr: Dict[str, Any], scratch: str) -> None:
        self.job = job
        self.step = step
        self.mr = mr
        self.scratch = scratch
        self.counts: Dict[str, int] = {}
        self.read = 0
        self.stream: Optional[SortedRun] = None  # rows written in key order, unbuffered
        parts = int(mr["parts"])
        if getattr(type(job).partition, "crc32_of_key", False):  # not overridden
            def partition(key_json: str) -> int:
                return zlib.crc32(key_json.encode("utf-8")) % parts
        else:
            def partition(key_json: str) -> int:
                return int(job.partition(key_json, parts)) % parts
        self.buffer = SortBuffer(parts, int(mr["memory"]), scratch, partition, self._combiner())

    def _combiner(self) -> Optional[Callable[[str, list], Iterable[Tuple[str, str]]]]:
        return None

    def position(self) -> str:
        return ""

    def key_json(self, key: Any) -> str:
        if key.__class__ is str:
            return encode_str(key)  # what encode_json gives a str, without its Python layers
        try:
            return encode_json(key)
        except (TypeError, ValueError) as exc:
            raise TaskError("%s yielded a key that is not JSON-serialisable: %r (%s)"
                            % (self.name, key, exc)) from None

    def emit(self, pairs: Optional[Iterable[Tuple[Any, Any]]]) -> int:
        n = 0
        for key, value in pairs or ():
            self.buffer.add(self.key_json(key), value)
            n += 1
        return n

    def finish(self, out: str) -> None:
        counters = self.job.__dict__.get("_sshmr_counters") or {}
        builtin = counters.setdefault("sshmr", {})
        self.counts["%s input records" % self.mr["phase"]] = self.read
        for name, n in self.counts.items():
            builtin[name] = builtin.get(name, 0) + n
        if self.stream is not None:
            self.buffer.finish_after(self.stream, out, {"counters": counters})
        else:
            self.buffer.finish(out, {"counters": counters})


class _MapTask(_Task):
    name = "mapper"

    def position(self) -> str:
        return ", record %d" % self.read if self.read else ""

    def _combiner(self):
        combiner = self.step.get("combiner") if self.step.has_reducer else None
        if combiner is None:
            return None
        key_json, loads = self.key_json, json.loads

        def combine(kj: str, values: list) -> List[Tuple[str, str]]:
            key = decode_key(kj) if kj[0] == '"' else loads(kj)
            out = []
            for k2, v2 in combiner(key, iter(values)) or ():
                out.append((kj if k2 is key else key_json(k2),
                            int.__repr__(v2) if v2.__class__ is int else encode_json(v2)))
            return out
        return combine

    def run(self, path: str, out: str) -> None:
        step, buf = self.step, self.buffer
        mapper = step.get("mapper") or _identity
        init, final = step.get("mapper_init"), step.get("mapper_final")
        combining = buf.combine is not None
        if combining and step.get("combiner_init") is not None:
            self.emit(step.get("combiner_init")())
        if init is not None:
            self.emit(init())
        self._map_all(mapper, path)
        if final is not None:
            self.emit(final())
        if combining and step.get("combiner_final") is not None:
            self.emit(step.get("combiner_final")())
        self.finish(out)
        self.read = 0

    def _map_all(self, mapper: Callable[..., Any], path: str) -> None:
        """The hot loop: text input comes a block of lines at a time (no generator step per
        line), one dict lookup per str key (``lists`` maps a key straight to its values in
        the buffer), memory accounted locally, spills when over the bound."""
        buf, key_json = self.buffer, self.key_json
        groups, lists, used, limit = buf.groups, {}, buf.used, buf.memory
        n = self.read
        text = bool(self.mr.get("text")) and self.job.input_records is None
        try:
            for batch in self._input(path):
                for record in batch:
                    n += 1
                    for k, v in (mapper(None, record) if text
                                 else mapper(*record)) or ():
                        values = lists.get(k) if k.__class__ is str else None
                        if values is None:
                            kj = key_json(k)
                            values = groups.get(kj)
                            if values is None:
                                values = groups[kj] = []
                                used += len(kj) + KEY_COST
                            if k.__class__ is str:
                                lists[k] = values
                        values.append(v)
                        used += VALUE_COST
                        if used > limit:
                            buf.used = used
                            buf.spill()
                            groups, lists, used = buf.groups, {}, 0
        finally:
            self.read = n
        buf.used = used

    def _input(self, path: str) -> Iterator[Iterable[Any]]:
        """Batches of input records: lists of text lines (the mapper gets ``(None, line)``)
        or, with an ``input_records`` hook or a previous step's output, ``(key, value)``
        pairs."""
        source = self.mr.get("source", path)
        hook = self.job.input_records if self.mr.get("text") else None
        if hook is not None:
            yield ((key, value) for key, value in hook(path, source))  # pairs, checked
            return
        if not self.mr.get("text"):
            end = read_trailer(path)["data_end"]
            loads = json.loads
            yield ((loads(line[:line.index(b"\t")]), loads(line[line.index(b"\t") + 1:]))
                   for line in iter_records(path, 0, end))
            return
        with open(path, "rb") as raw:
            gz = raw.read(2) == GZIP_MAGIC
            raw.seek(0)
            stream = gzip.GzipFile(fileobj=raw) if gz else raw
            try:
                yield from text_blocks(stream)
            except TextError as exc:
                raise TaskError("input %s is not valid UTF-8 text at line %d (%s); convert it"
                                " to UTF-8" % (source, exc.line, exc.reason)) from None
            except (OSError, EOFError) as exc:
                raise TaskError("cannot read input %s: %s" % (source, exc)) from None


class _ReduceTask(_Task):
    name = "reducer"

    key: Optional[bytes] = None

    def position(self) -> str:
        return ", key %s" % self.key[:80].decode("utf-8", "replace") if self.key else ""

    def run(self, path: str, out: str) -> None:
        step, buf = self.step, self.buffer
        reducer = step.get("reducer")
        init, final = step.get("reducer_init"), step.get("reducer_final")
        if init is not None:
            self.emit(init())
        key_json, loads = self.key_json, json.loads
        groups = 0
        runs = [(path, off, length) for off, length in read_trailer(path)["parts"]]
        loaded = load_groups(runs, self.buffer.memory // 2)
        if loaded is not None:  # fits in half the sort memory: grouped in a dict, no merge
            table, self.read = loaded
            pairs: Iterable[Tuple[bytes, Iterable[bytes]]] = (
                (kb, table.pop(kb)) for kb in sorted(table))
        else:  # streamed: a k-way merge, a key's values never held together
            pairs = grouped(self._merged(runs))
        # Rows of the key being reduced go straight to a sorted run while they come (no
        # buffer, no sort); from the first other key on, everything goes to the buffer.
        if buf.parts == 1 and init is None:
            self.stream = SortedRun(os.path.join(self.scratch, "reduced"))
        stream = self.stream
        for kb, values in pairs:
            self.key = kb
            groups += 1
            simple = kb[:1] == b'"' and b"\\" not in kb
            key = kb[1:-1].decode("utf-8") if simple else loads(kb)
            if loaded is not None:
                decoded = iter([int(v) if v.isdigit() else loads(v) for v in values])
            else:
                decoded = (int(v) if v.isdigit() else loads(v) for v in values)
            kbs = kb.decode("utf-8") if stream is not None else ""
            for k, v in reducer(key, decoded) or ():
                if stream is not None:
                    kj = kbs if k is key and simple else key_json(k)
                    if kj == kbs:
                        stream.lines.append(kj + "\t" + (int.__repr__(v) if v.__class__ is int
                                                         else encode_values(kj, [v])[0]))
                        if len(stream.lines) >= WRITE_BATCH:
                            stream.flush()
                        continue
                    stream = None  # the rest is buffered (and sorted) after it
                buf.add(key_json(k), v)
        self.key = None
        if final is not None:
            self.emit(final())
        self.counts["reduce groups"] = groups
        self.finish(out)

    def _merged(self, runs: List[Tuple[str, int, int]]) -> Iterator[bytes]:
        if len(runs) > MERGE_FAN_IN:
            merged = os.path.join(self.scratch, "merged")
            with open(merged, "wb") as f:
                merge_runs(runs, f, self.scratch)
                size = f.tell()
            runs = [(merged, 0, size)]
        sources = [iter_records(*r) for r in runs if r[2] > 0]
        if not sources:
            return
        lines = sources[0] if len(sources) == 1 else heapq.merge(*sources, key=record_key)
        for line in lines:
            self.read += 1
            yield line


def decode_key(kj: str) -> Any:
    """A key from its JSON: a string without escapes is its text between the quotes."""
    return kj[1:-1] if "\\" not in kj else json.loads(kj)


def _identity(key: Any, value: Any) -> Iterator[Tuple[Any, Any]]:
    yield key, value
