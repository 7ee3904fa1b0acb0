"""The fast paths of a MapReduce task give the bytes the plain paths give: text read in
blocks, reduce input grouped in memory instead of merged, the combiner's shortcuts."""

from __future__ import annotations

import io
import json
import os
import random

import pytest

from sshmr import MapReduce
from sshmr.remote import mrfiles
from sshmr.remote.mrfiles import TextError, concat_segments, read_trailer, text_blocks
from sshmr.remote.mrtask import TaskError, run_task
from sshmr.remote.sortmerge import load_groups, merge_runs


def _lines_one_by_one(data: bytes) -> list[str]:
    """What the task read before: a line at a time, newline and a CR before it dropped."""
    out = []
    for line in io.BytesIO(data):
        if line[-1:] == b"\n":
            line = line[:-2] if line[-2:-1] == b"\r" else line[:-1]
        out.append(line.decode("utf-8"))
    return out


@pytest.mark.parametrize("block", [1, 3, 7, 64, 1 << 20])
def test_text_blocks_are_the_lines_of_the_file(monkeypatch, block):
    monkeypatch.setattr(mrfiles, "TEXT_BLOCK", block)
    rng = random.Random(block)
    pieces = ["", "a", "ünï", "€€", "\r", "x\ry", "\t", "word " * 30]
    for _ in range(30):
        lines = [rng.choice(pieces) for _ in range(rng.randint(0, 12))]
        data = "".join(line + rng.choice(["\n", "\r\n"]) for line in lines).encode()
        if rng.random() < 0.5:
            data += rng.choice(pieces).encode()  # a last line without a newline
        got = [line for block_ in text_blocks(io.BytesIO(data)) for line in block_]
        assert got == _lines_one_by_one(data), data


@pytest.mark.parametrize("block", [2, 5, 1 << 20])
def test_text_blocks_name_the_line_that_is_not_utf8(monkeypatch, block):
    monkeypatch.setattr(mrfiles, "TEXT_BLOCK", block)
    data = b"ok\nfine\n" + b"caf\xe9\n" + b"more\n"
    with pytest.raises(TextError) as err:
        for _ in text_blocks(io.BytesIO(data)):
            pass
    assert err.value.line == 3


def _runs(tmp_path, n_runs: int, seed: int) -> list[tuple[str, int, int]]:
    rng = random.Random(seed)
    runs = []
    for r in range(n_runs):
        records = sorted(((json.dumps(rng.choice(["a", "b", "ü", 'q"', "a\\b", 3, [1]])),
                           json.dumps(rng.randint(0, 9))) for _ in range(rng.randint(0, 30))),
                         key=lambda kv: kv[0].encode())
        path = tmp_path / f"run{r}"
        path.write_bytes(b"".join(b"%s\t%s\n" % (k.encode(), v.encode()) for k, v in records))
        runs.append((str(path), 0, path.stat().st_size))
    return runs


def test_load_groups_keeps_the_merge_order_and_gives_up_past_its_memory(tmp_path):
    runs = _runs(tmp_path, 6, 1)
    merged = io.BytesIO()
    merge_runs(runs, merged, str(tmp_path))
    expected: list[tuple[bytes, bytes]] = [tuple(line.split(b"\t", 1))  # type: ignore[misc]
                                           for line in merged.getvalue().splitlines()]
    table, records = load_groups(runs, 1 << 20)
    got = [(k, v) for k in sorted(table) for v in table[k]]
    assert got == expected and records == len(expected)
    assert load_groups(runs, 100) is None


class Words(MapReduce):
    def mapper(self, key, line):
        for word in line.split():
            yield word, 1
            yield [word[:1], len(word)], word  # a non-str key: decoded, not shortcut

    def combiner(self, key, values):
        values = list(values)
        if isinstance(key, str):
            yield key, sum(values)
            yield key + "!", len(values)  # another key than the one combined
        else:
            yield key, values

    def reducer(self, key, values):
        yield key, list(values)


def _task(job, tmp_path, name: str, phase: str, path: str, memory: int, parts: int = 1):
    work = tmp_path / name
    work.mkdir()
    (work / "in").write_bytes(open(path, "rb").read())
    mr = {"phase": phase, "step": 0, "task": 0, "parts": parts, "text": phase == "map",
          "memory": memory, "source": name}
    return run_task(job, {"file": str(work / "in"), "mr": mr}).path


def test_a_reduce_in_memory_and_a_streamed_one_write_the_same_bytes(tmp_path):
    text = tmp_path / "in.txt"
    rng = random.Random(3)
    words = ["a", "bb", "ü", 'q"x', "tab\\x", "zz", "€"]
    outs = []
    for m in range(4):
        text.write_text("\n".join(" ".join(rng.choice(words) for _ in range(9))
                                  for _ in range(200)) + "\n", encoding="utf-8")
        outs.append(_task(Words(), tmp_path, f"m{m}", "map", str(text), 1 << 20, parts=2))
    shuffled = str(tmp_path / "shuffled")
    concat_segments([(f, *read_trailer(f)["parts"][1]) for f in outs], shuffled, {})
    big = _task(Words(), tmp_path, "big", "reduce", shuffled, 64 << 20)
    small = _task(Words(), tmp_path, "small", "reduce", shuffled, 1000)  # streamed
    assert open(big, "rb").read() == open(small, "rb").read()
    assert os.path.getsize(big) > 1000


def test_a_map_task_reading_text_counts_and_names_records(tmp_path):
    class Fails(MapReduce):
        def mapper(self, key, line):
            if line == "boom":
                raise ValueError("no")
            yield line, 1

    text = tmp_path / "in.txt"
    text.write_text("a\nb\nboom\nc\n")
    with pytest.raises(TaskError, match="record 3: ValueError: no"):
        _task(Fails(), tmp_path, "m", "map", str(text), 1 << 20)


class Relabels(MapReduce):
    """A reducer that yields other keys too: a later one, then an earlier one."""

    def mapper(self, key, line):
        for word in line.split():
            yield word, 1

    def reducer(self, key, values):
        n = sum(values)
        if key == "m":
            yield "b", "from m"  # a key already written
        yield key, n
        if key == "c":
            yield "z", "from c"  # a key still to come


class RelabelsWithInit(Relabels):
    def reducer_init(self):
        yield "c", "init"


@pytest.mark.parametrize("job", [Relabels, RelabelsWithInit])
@pytest.mark.parametrize("memory", [64 << 20, 1000])
def test_a_reducer_yielding_other_keys_writes_them_sorted_in_arrival_order(tmp_path, job,
                                                                           memory):
    """Rows of the key being reduced are written as they come; once another key comes, the
    rest is buffered and merged after them: the output is sorted by key and, within a key,
    in the order the rows were yielded (a reducer_init's rows first)."""
    text = tmp_path / "in.txt"
    words = ["a", "b", "c", "m", "z"]
    text.write_text("\n".join(" ".join(words[(i * 7 + j) % 5] for j in range(i % 4 + 1))
                              for i in range(300)) + "\n")
    mapped = _task(job(), tmp_path, "m", "map", str(text), memory)
    out = _task(job(), tmp_path, "r", "reduce", mapped, memory)
    rows = [line.split(b"\t") for line in mrfiles.iter_records(out, 0, read_trailer(out)[
        "parts"][0][1])]
    counts = {w: text.read_text().split().count(w) for w in words}
    arrival = [("c", "init")] if job is RelabelsWithInit else []
    for w in words:
        arrival += [("b", "from m")] if w == "m" else []
        arrival.append((w, counts[w]))
        arrival += [("z", "from c")] if w == "c" else []
    expected = sorted(arrival, key=lambda kv: json.dumps(kv[0]).encode())  # stable
    assert [(json.loads(k), json.loads(v)) for k, v in rows] == expected
    assert read_trailer(out)["records"] == len(expected)
