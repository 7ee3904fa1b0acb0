"""MapReduce internals without hosts: stable partitioning, external sort, merge, grouping."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import zlib

from sshmr import MapReduce, MRStep
from sshmr.mapreduce.job import step_functions
from sshmr.remote.mrfiles import concat_segments, iter_records, read_trailer
from sshmr.remote.sortmerge import SortBuffer, encode_json, grouped, merge_runs


def _partition_of(n):
    return lambda key_json: zlib.crc32(key_json.encode()) % n


def test_partition_is_stable_across_processes_with_different_hash_seeds():
    keys = ["apple", "b", "ünïcode", "12", "[1,2]", "null"]
    code = ("import json, sys; from sshmr import MapReduce; m = MapReduce();"
            f"print(json.dumps([m.partition(json.dumps(k), 8) for k in {keys!r}]),"
            " hash('apple'))")
    outs = []
    for seed in ("0", "1", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True).stdout.split()
        outs.append(out)
    assert len({o[-1] for o in outs}) == 3  # Python's own hash() differs between them ...
    assert len({" ".join(o[:-1]) for o in outs}) == 1  # ... the partition does not
    assert json.loads(" ".join(outs[0][:-1])) == [
        zlib.crc32(json.dumps(k).encode()) % 8 for k in keys]


def _read_parts(path):
    trailer = read_trailer(path)
    return [[line.decode() for line in iter_records(path, off, length)]
            for off, length in trailer["parts"]]


def test_tiny_memory_forces_many_spills_and_the_merge_is_sorted_and_complete(tmp_path):
    rng = random.Random(7)
    pairs = [(rng.choice("abcdefghij") * rng.randint(1, 3), rng.randint(0, 99))
             for _ in range(5000)]
    buf = SortBuffer(3, 2000, str(tmp_path), _partition_of(3))
    for k, v in pairs:
        buf.add(encode_json(k), v)
    assert len(buf.spills) > 50
    out = tmp_path / "out"
    buf.finish(str(out), {"counters": {}})
    assert not [p for p in os.listdir(tmp_path) if p.startswith("spill")]
    parts = _read_parts(str(out))
    seen = []
    for p, lines in enumerate(parts):
        keys = [line.split("\t")[0] for line in lines]
        assert keys == sorted(keys, key=str.encode)
        assert all(_partition_of(3)(k) == p for k in keys)
        seen += [(json.loads(k), json.loads(v)) for k, v in (x.rstrip("\n").split("\t")
                                                             for x in lines)]
    assert sorted(seen) == sorted(pairs)
    # values keep their arrival order within a key, across spills
    for key in {k for k, _ in pairs}:
        assert [v for k, v in seen if k == key] == [v for k, v in pairs if k == key]
    assert read_trailer(str(out))["records"] == len(pairs)


def test_combiner_runs_per_spill(tmp_path):
    def combine(kj, values):
        yield kj, encode_json(sum(values))

    buf = SortBuffer(1, 500, str(tmp_path), _partition_of(1), combine)
    for i in range(3000):
        buf.add(encode_json(f"w{i % 4}"), 1)
    buf.finish(str(tmp_path / "out"), {})
    lines = _read_parts(str(tmp_path / "out"))[0]
    totals = {}
    for line in lines:
        k, v = line.rstrip("\n").split("\t")
        totals[json.loads(k)] = totals.get(json.loads(k), 0) + json.loads(v)
    assert totals == {"w0": 750, "w1": 750, "w2": 750, "w3": 750}
    assert len(lines) < 3000  # combined: far fewer records than were added


def test_a_lone_value_skips_the_combiner_and_other_keys_stay_sorted(tmp_path):
    """The combiner may run zero times: a key with one value is written as it came. A
    combiner that yields other keys than it was given still leaves each segment sorted."""
    calls = []

    def combine(kj, values):
        calls.append(json.loads(kj))
        yield kj, encode_json(sum(values))
        yield encode_json("0-" + json.loads(kj)), encode_json(len(values))  # sorts first

    buf = SortBuffer(2, 1 << 20, str(tmp_path), _partition_of(2), combine)
    for k, v in [("z", 1), ("b", 2), ("b", 3), ("a", 4), ("y", {"x": [1]}), ("z", 5)]:
        buf.add(encode_json(k), v)
    buf.finish(str(tmp_path / "out"), {})
    assert sorted(calls) == ["b", "z"]  # "a" and "y" had one value each
    rows = []
    for lines in _read_parts(str(tmp_path / "out")):
        keys = [line.split("\t")[0] for line in lines]
        assert keys == sorted(keys, key=str.encode)
        rows += [tuple(json.loads(x) for x in line.rstrip("\n").split("\t")) for line in lines]
    assert sorted(rows, key=str) == sorted([("0-b", 2), ("0-z", 2), ("a", 4), ("b", 5),
                                            ("y", {"x": [1]}), ("z", 6)], key=str)


def test_merge_of_more_runs_than_the_fan_in_takes_several_passes(tmp_path):
    rng = random.Random(1)
    sources = []
    expected = []
    for i in range(300):  # > MERGE_FAN_IN
        run = sorted(f"{rng.randint(0, 999):05d}\t{i}\n".encode() for _ in range(5))
        path = tmp_path / f"run{i}"
        path.write_bytes(b"".join(run))
        sources.append((str(path), 0, path.stat().st_size))
        expected += run
    with open(tmp_path / "merged", "wb") as out:
        merge_runs(sources, out, str(tmp_path))
    merged = (tmp_path / "merged").read_bytes().splitlines(keepends=True)
    assert merged == sorted(expected, key=lambda line: line.split(b"\t")[0])
    assert not [p for p in os.listdir(tmp_path) if p.startswith("merge-")]


def test_concat_segments_keeps_order_and_drops_empty_runs(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b'"x"\t1\n"y"\t2\n')
    b.write_bytes(b'"x"\t3\n')
    concat_segments([(str(a), 0, 6), (str(b), 0, 0), (str(a), 6, 6), (str(b), 0, 6)],
                    str(tmp_path / "c"), {"n": 1})
    assert _read_parts(str(tmp_path / "c")) == [['"x"\t1\n'], ['"y"\t2\n'], ['"x"\t3\n']]
    assert read_trailer(str(tmp_path / "c"))["n"] == 1


def test_grouping_streams_values_and_skips_what_the_caller_did_not_read():
    lines = [b'"a"\t1\n', b'"a"\t2\n', b'"b"\t3\n', b'"c"\t4\n', b'"c"\t5\n']
    seen = []
    for key, values in grouped(iter(lines)):
        if key == b'"a"':
            seen.append((key, next(values)))  # reads one value of two
        else:
            seen.append((key, list(values)))
    assert seen == [(b'"a"', b"1"), (b'"b"', [b"3"]), (b'"c"', [b"4", b"5"])]


def test_a_key_with_millions_of_values_is_reduced_in_bounded_memory():
    """3 million values of one key through ``grouped`` in a fresh process: its peak RSS
    stays near an empty interpreter's (holding the values would take > 100 MB)."""
    code = """
import resource
from sshmr.remote.sortmerge import grouped
n = 3_000_000
def lines():
    for i in range(n):
        yield b'"hot"\\t%d\\n' % i
    yield b'"z"\\t0\\n'
total = count = 0
for key, values in grouped(lines()):
    for v in values:
        total += int(v)
        count += 1
assert count == n + 1 and total == n * (n - 1) // 2, (count, total)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
    def peak_mb(source: str) -> float:
        out = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return int(out.stdout) / 1024

    idle = peak_mb(code.replace("n = 3_000_000", "n = 0").replace(
        "count == n + 1", "count == 1"))
    busy = peak_mb(code)
    assert busy - idle < 30, f"peak RSS {busy:.0f} MB, {idle:.0f} MB without the values"


def test_steps_default_to_the_methods_a_class_defines():
    class OnlyReducer(MapReduce):
        def reducer(self, key, values):
            yield key, sum(values)

    (step,) = step_functions(OnlyReducer())
    assert step.describe() == {"mapper": False, "combiner": False, "reducer": True}

    class Two(MapReduce):
        def steps(self):
            return [MRStep(mapper=self.m), MRStep(reducer=self.r)]

        def m(self, k, v):
            yield k, v

        def r(self, k, vs):
            yield k, list(vs)

    assert [s.describe() for s in step_functions(Two())] == [
        {"mapper": True, "combiner": False, "reducer": False},
        {"mapper": False, "combiner": False, "reducer": True}]
