"""External sort for MapReduce: group records by key in bounded memory, spill sorted runs
to disk, merge them back (standard library only; shipped to hosts).

``SortBuffer`` holds records grouped by their key's JSON encoding, partitioned by a
function of that encoding. When its estimate of the memory it holds passes the bound, it
writes every partition's records, sorted by key (values in arrival order, optionally
through a combiner) to a spill file in the segment format of ``sshmr.remote.mrfiles``. ``finish``
merges the spills into one segment file with one segment per partition. ``SortedRun``
takes rows that come in key order already (a reducer's rows for its own key) straight to
a file; ``finish_after`` puts them first. ``merge_runs`` is the k-way merge the reducer
uses, in several passes when there are many runs.
"""

from __future__ import annotations

import heapq
import json
import os
from typing import Any, BinaryIO, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from .mrfiles import iter_records, read_trailer, write_trailer

KEY_COST = 120  # bytes a new key costs in the buffer beyond its encoding (dict + list)
VALUE_COST = 40  # bytes a small value costs
MERGE_FAN_IN = 128  # runs merged at once (open files); more runs take several passes
WRITE_BATCH = 4096
RECORD_COST = 100  # bytes a record read into memory costs beyond its text (line, key, value)

encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False,
                               allow_nan=False).encode

Combine = Callable[[str, List[Any]], Iterable[Tuple[str, str]]]
Run = Tuple[str, int, int]  # (segment file, offset, length)


def record_key(line: bytes) -> bytes:
    return line[:line.index(b"\t")]


class SortBuffer:
    """Grouped, partitioned records with spills. ``groups`` maps a key's JSON to its values
    (Python objects); callers add to it directly and call ``charge`` with the bytes used."""

    def __init__(self, parts: int, memory: int, scratch: str, partition: Callable[[str], int],
                 combine: Optional[Combine] = None) -> None:
        self.parts = parts
        self.memory = max(1, memory)
        self.scratch = scratch
        self.partition = partition
        self.combine = combine
        self.groups: Dict[str, List[Any]] = {}
        self.used = 0
        self.spills: List[str] = []
        self.records_out = 0

    def add(self, key_json: str, value: Any) -> None:
        values = self.groups.get(key_json)
        if values is None:
            self.groups[key_json] = [value]
            self.used += len(key_json) + KEY_COST
        else:
            values.append(value)
            self.used += VALUE_COST
        if self.used > self.memory:
            self.spill()

    def spill(self) -> None:
        if not self.groups:
            return
        path = os.path.join(self.scratch, "spill-%05d" % len(self.spills))
        self._write(path, {})
        self.spills.append(path)

    def finish(self, dest: str, info: Dict[str, Any]) -> None:
        """Write every record, merged and sorted, to the segment file ``dest``."""
        if not self.spills:
            self._write(dest, info)
            return
        self.spill()
        trailers = [read_trailer(p) for p in self.spills]
        tmp = dest + ".tmp"
        parts = []
        with open(tmp, "wb") as out:
            for p in range(self.parts):
                start = out.tell()
                runs = [(path, *t["parts"][p]) for path, t in zip(self.spills, trailers)]
                merge_runs(runs, out, self.scratch)
                parts.append([start, out.tell() - start])
            write_trailer(out, dict(info, parts=parts, records=self.records_out))
        os.replace(tmp, dest)
        for path in self.spills:
            os.unlink(path)
        self.spills = []

    def finish_after(self, run: SortedRun, dest: str, info: Dict[str, Any]) -> None:
        """``finish``, with ``run``'s records first: they came before any added here."""
        if not self.groups and not self.spills:
            run.close(info)
            os.replace(run.path, dest)
            return
        run.close({})
        self.spills.insert(0, run.path)  # the merge keeps run order for equal keys
        self.records_out += run.records
        self.finish(dest, info)

    def _write(self, path: str, info: Dict[str, Any]) -> None:
        """Each partition's records sorted by key, a key's values in arrival order: with a
        combiner one (key, value JSON) row per record it yields; without, one (key, values)
        row per key, its values encoded only as they are written. Keys are taken in sorted
        order, so the rows come out sorted unless a combiner yields another key."""
        by_part: List[List[Tuple[str, Any]]] = [[] for _ in range(self.parts)]
        unsorted = [False] * self.parts
        partition, combine, one = self.partition, self.combine, self.parts == 1
        groups = self.groups
        for key_json in sorted(groups):
            values = groups[key_json]
            if combine is None:
                by_part[0 if one else partition(key_json)].append((key_json, values))
            elif len(values) == 1:  # the combiner may run zero times: a lone value as it is
                v = values[0]
                by_part[0 if one else partition(key_json)].append(
                    (key_json, int.__repr__(v) if v.__class__ is int
                     else encode_values(key_json, values)[0]))
            else:
                for k2, v2 in combine(key_json, values):
                    p = 0 if one else partition(k2)
                    by_part[p].append((k2, v2))
                    if k2 != key_json:
                        unsorted[p] = True
        self.groups = {}
        self.used = 0
        tmp = path + ".tmp"
        parts = []
        with open(tmp, "wb", buffering=1 << 20) as out:
            for p, rows in enumerate(by_part):
                if unsorted[p]:
                    rows.sort(key=_first)  # stable: a combiner's rows of a key keep their order
                start = out.tell()
                if combine is not None:
                    self.records_out += len(rows)
                    for i in range(0, len(rows), WRITE_BATCH):
                        out.write(("\n".join(map("\t".join, rows[i:i + WRITE_BATCH])) + "\n")
                                  .encode("utf-8"))
                else:  # lines gathered across keys, written WRITE_BATCH at a time
                    lines: List[str] = []
                    for key_json, values in rows:
                        self.records_out += len(values)
                        head = key_json + "\t"
                        if len(values) == 1 and values[0].__class__ is int:
                            lines.append(head + int.__repr__(values[0]))
                        else:
                            for i in range(0, len(values), WRITE_BATCH):
                                lines += [head + v for v in encode_values(
                                    key_json, values[i:i + WRITE_BATCH])]
                                if len(lines) >= WRITE_BATCH:
                                    _write_lines(out, lines)
                        if len(lines) >= WRITE_BATCH:
                            _write_lines(out, lines)
                    _write_lines(out, lines)
                parts.append([start, out.tell() - start])
            write_trailer(out, dict(info, parts=parts, records=self.records_out))
        os.replace(tmp, path)


class SortedRun:
    """Records written straight to a one-part run file, for rows that come in key order
    already (a reducer yielding the key it was given): no buffer, no sort. Callers append
    ``key TAB value`` lines to ``lines`` and call ``flush`` once it holds ``WRITE_BATCH``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.file = open(path, "wb", buffering=1 << 20)
        self.lines: List[str] = []
        self.records = 0

    def flush(self) -> None:
        self.records += len(self.lines)
        _write_lines(self.file, self.lines)

    def close(self, info: Dict[str, Any]) -> None:
        self.flush()
        size = self.file.tell()
        write_trailer(self.file, dict(info, parts=[[0, size]], records=self.records))
        self.file.close()


def _write_lines(out: BinaryIO, lines: List[str]) -> None:
    """Write ``lines`` (each without its newline) and empty the list."""
    if lines:
        out.write(("\n".join(lines) + "\n").encode("utf-8"))
        lines.clear()


def _first(row: Tuple[str, Any]) -> str:
    return row[0]


def encode_values(key_json: str, values: List[Any]) -> List[str]:
    try:
        return [int.__repr__(v) if v.__class__ is int else encode_json(v) for v in values]
    except (TypeError, ValueError) as exc:
        raise ValueError("a value of key %s is not JSON-serialisable (%s: %s); yield JSON"
                         " values (dict, list, str, int, float, bool, None)"
                         % (key_json[:80], type(exc).__name__, exc)) from None


def load_groups(runs: List[Run], memory: int
                ) -> Optional[Tuple[Dict[bytes, List[bytes]], int]]:
    """The records of sorted runs grouped in memory: key JSON -> value JSONs in run order
    (the order ``merge_runs`` gives equal keys), and the number of records; None (nothing
    kept) as soon as they would take more than ``memory`` bytes."""
    runs = [r for r in runs if r[2] > 0]
    used = 2 * sum(r[2] for r in runs)
    if used > memory:
        return None
    table: Dict[bytes, List[bytes]] = {}
    records = 0
    for path, offset, length in runs:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(length)
        if len(data) != length:
            raise ValueError("%s is shorter than its trailer says" % path)
        count = data.count(b"\n")
        records += count
        used += RECORD_COST * count
        if used > memory:
            return None
        lines = data.split(b"\n")
        del data
        if lines.pop():
            raise ValueError("%s ends inside a segment" % path)
        for line in lines:
            tab = line.index(b"\t")
            key = line[:tab]
            values = table.get(key)
            if values is None:
                table[key] = [line[tab + 1:]]
            else:
                values.append(line[tab + 1:])
    return table, records


def merge_runs(runs: List[Run], out: BinaryIO, scratch: str) -> None:
    """Merge sorted runs (by key; equal keys keep run order) and append them to ``out``."""
    runs = [r for r in runs if r[2] > 0]
    level = 0
    while len(runs) > MERGE_FAN_IN:  # pre-merge groups into temp files: bounded open files
        merged = []
        for i in range(0, len(runs), MERGE_FAN_IN):
            path = os.path.join(scratch, "merge-%d-%05d" % (level, i))
            with open(path, "wb", buffering=1 << 20) as tmp:
                _merge_into(runs[i:i + MERGE_FAN_IN], tmp)
                size = tmp.tell()
            merged.append((path, 0, size))
        for path, _, _ in runs:
            if os.path.basename(path).startswith("merge-"):
                os.unlink(path)
        runs = merged
        level += 1
    _merge_into(runs, out)
    if level:
        for path, _, _ in runs:
            os.unlink(path)


def _merge_into(runs: List[Run], out: BinaryIO) -> None:
    if len(runs) == 1:
        out.writelines(iter_records(*runs[0]))
        return
    out.writelines(heapq.merge(*[iter_records(*r) for r in runs], key=record_key))


def grouped(lines: Iterator[bytes]) -> Iterator[Tuple[bytes, Iterator[bytes]]]:
    """(key JSON, iterator of value JSON) per key of sorted record lines, streamed: a key's
    values are never held in memory together."""
    it = iter(lines)
    line = next(it, None)
    while line is not None:
        tab = line.index(b"\t")
        key = line[:tab]
        state = [line]

        def values(key: bytes = key, state: List[Optional[bytes]] = state) -> Iterator[bytes]:
            while True:
                cur = state[0]
                if cur is None:
                    return
                t = cur.index(b"\t")
                if cur[:t] != key:
                    return
                yield cur[t + 1:-1]
                state[0] = next(it, None)

        group = values()
        yield key, group
        for _ in group:  # the caller may not have consumed every value
            pass
        line = state[0]
