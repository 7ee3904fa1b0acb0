"""Unit tests for sshmr.partition: pure, fast, files under tmp_path."""

from __future__ import annotations

import io
import os
import pathlib
import sys
import types

import pytest

from sshmr.errors import InputError
from sshmr.partition import (
    BytesPartitioner,
    FilesPartitioner,
    InputFile,
    LinePartitioner,
    LinesPartitioner,
    Partitioner,
    check_inputs,
    parse_split,
)

CONTENTS = {
    "empty.txt": b"",
    "plain.txt": b"alpha\nbeta\n\ngamma\n",
    "no_newline.txt": b"one\ntwo\nthree",
    "crlf.txt": b"c1\r\nc2\r\n\r\nc3\r\n",
    "unicode.txt": "h\u00e9llo\n\u65e5\u672c\u8a9e\n\U0001f600 smile\n".encode(),
    "lone_cr.txt": b"a\rb\nc\n",
}


@pytest.fixture
def files(tmp_path):
    paths = {}
    for name, data in CONTENTS.items():
        path = tmp_path / name
        path.write_bytes(data)
        paths[name] = str(path)
    return paths


def expected_lines(data: bytes) -> list[str]:
    text = data.decode("utf-8")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


# ----------------------------------------------------------------- LinePartitioner


@pytest.mark.parametrize("name", sorted(CONTENTS))
def test_line_partitioner_each_file(files, name):
    assert list(LinePartitioner().partition([files[name]])) == expected_lines(CONTENTS[name])


def test_line_partitioner_specific_cases(files):
    part = LinePartitioner()
    assert list(part.partition([files["empty.txt"]])) == []
    assert list(part.partition([files["plain.txt"]])) == ["alpha", "beta", "", "gamma"]
    assert list(part.partition([files["no_newline.txt"]])) == ["one", "two", "three"]
    assert list(part.partition([files["crlf.txt"]])) == ["c1", "c2", "", "c3"]
    assert list(part.partition([files["unicode.txt"]])) == [
        "h\u00e9llo",
        "\u65e5\u672c\u8a9e",
        "\U0001f600 smile",
    ]
    # a lone "\r" is data, not a line ending (like GNU parallel)
    assert list(part.partition([files["lone_cr.txt"]])) == ["a\rb", "c"]


def test_line_partitioner_concatenates_files_in_order(files):
    inputs = [files["plain.txt"], files["empty.txt"], files["no_newline.txt"], files["crlf.txt"]]
    expected = []
    for path in inputs:
        expected += expected_lines(pathlib.Path(path).read_bytes())
    assert list(LinePartitioner().partition(inputs)) == expected


def test_line_partitioner_no_inputs():
    assert list(LinePartitioner().partition([])) == []


def test_invalid_utf8_is_input_error(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"ok\n\xff\xfe\n")
    with pytest.raises(InputError, match="not valid UTF-8"):
        list(LinePartitioner().partition([str(path)]))


# ---------------------------------------------------------------- LinesPartitioner


def write_numbers(tmp_path, count: int, name: str = "nums.txt") -> str:
    path = tmp_path / name
    path.write_text("".join(f"{i}\n" for i in range(count)), encoding="utf-8")
    return str(path)


def test_lines_n1(tmp_path):
    path = write_numbers(tmp_path, 3)
    assert list(LinesPartitioner(1).partition([path])) == [["0"], ["1"], ["2"]]


def test_lines_n_larger_than_file(tmp_path):
    path = write_numbers(tmp_path, 3)
    assert list(LinesPartitioner(10).partition([path])) == [["0", "1", "2"]]


def test_lines_exact_multiple(tmp_path):
    path = write_numbers(tmp_path, 6)
    assert list(LinesPartitioner(3).partition([path])) == [["0", "1", "2"], ["3", "4", "5"]]


def test_lines_last_job_shorter(tmp_path):
    path = write_numbers(tmp_path, 7)
    jobs = list(LinesPartitioner(3).partition([path]))
    assert jobs == [["0", "1", "2"], ["3", "4", "5"], ["6"]]


def test_lines_empty_file(files):
    assert list(LinesPartitioner(2).partition([files["empty.txt"]])) == []


def test_lines_span_files(files):
    inputs = [files["no_newline.txt"], files["empty.txt"], files["crlf.txt"]]
    jobs = list(LinesPartitioner(2).partition(inputs))
    assert jobs == [["one", "two"], ["three", "c1"], ["c2", ""], ["c3"]]


def test_lines_jobs_are_independent_lists(tmp_path):
    path = write_numbers(tmp_path, 4)
    jobs = list(LinesPartitioner(2).partition([path]))
    assert jobs[0] is not jobs[1]


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_lines_bad_n(bad):
    with pytest.raises(InputError):
        LinesPartitioner(bad)


# ---------------------------------------------------------------- FilesPartitioner


def test_files_partitioner(files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    jobs = list(FilesPartitioner().partition(["plain.txt", files["empty.txt"]]))
    assert jobs == [InputFile(files["plain.txt"]), InputFile(files["empty.txt"])]
    for job in jobs:
        assert isinstance(job, InputFile)
        assert os.path.isabs(job.path)


def test_files_partitioner_rejects_stdin(files):
    with pytest.raises(InputError, match="stdin"):
        FilesPartitioner().partition([files["plain.txt"], "-"])


def test_input_file_eq_repr_hash(tmp_path):
    path = str(tmp_path / "x.txt")
    a, b = InputFile(path), InputFile(path)
    assert a == b and hash(a) == hash(b)
    assert a != InputFile(str(tmp_path / "y.txt"))
    assert a != path
    assert repr(a) == f"InputFile({path!r})"
    assert not hasattr(a, "__dict__")


def test_input_file_makes_path_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert InputFile("rel.txt").path == os.path.join(str(tmp_path), "rel.txt")


# ---------------------------------------------------------------- BytesPartitioner


def check_chunks(chunks: list[str], content: str, size: int) -> None:
    assert "".join(chunks) == content
    for i, chunk in enumerate(chunks):
        assert chunk != ""
        if i < len(chunks) - 1:
            assert chunk.endswith("\n")
        nbytes = len(chunk.encode("utf-8"))
        if nbytes > size:
            # only a single over-long line may exceed size
            assert chunk.count("\n") <= 1 and chunk.rstrip("\n").count("\n") == 0


@pytest.mark.parametrize("size", [1, 2, 5, 7, 10, 16, 1000])
@pytest.mark.parametrize("name", sorted(CONTENTS))
def test_bytes_each_file(files, name, size):
    chunks = list(BytesPartitioner(size).partition([files[name]]))
    content = CONTENTS[name].decode("utf-8")
    check_chunks(chunks, content, size)
    lines = content.splitlines(keepends=True)
    # chunks never split a line: every chunk is a run of whole lines
    rebuilt = [line for chunk in chunks for line in chunk.splitlines(keepends=True)]
    assert rebuilt == lines


def test_bytes_packs_lines_up_to_size(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("aaa\nbbb\nccc\nddd\n", encoding="utf-8")
    assert list(BytesPartitioner(8).partition([str(path)])) == ["aaa\nbbb\n", "ccc\nddd\n"]
    assert list(BytesPartitioner(9).partition([str(path)])) == ["aaa\nbbb\n", "ccc\nddd\n"]
    assert list(BytesPartitioner(12).partition([str(path)])) == ["aaa\nbbb\nccc\n", "ddd\n"]


def test_bytes_long_line_is_its_own_chunk(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("a\n" + "x" * 50 + "\nb\nc", encoding="utf-8")
    chunks = list(BytesPartitioner(4).partition([str(path)]))
    assert chunks == ["a\n", "x" * 50 + "\n", "b\nc"]


def test_bytes_counts_utf8_bytes(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("\u00e9\u00e9\n\u00e9\u00e9\n", encoding="utf-8")  # 5 bytes per line
    assert list(BytesPartitioner(6).partition([str(path)])) == ["\u00e9\u00e9\n", "\u00e9\u00e9\n"]
    assert list(BytesPartitioner(10).partition([str(path)])) == ["\u00e9\u00e9\n\u00e9\u00e9\n"]


def test_bytes_chunks_do_not_span_files(files):
    inputs = [files["no_newline.txt"], files["empty.txt"], files["crlf.txt"]]
    chunks = list(BytesPartitioner(1000).partition(inputs))
    assert chunks == ["one\ntwo\nthree", "c1\r\nc2\r\n\r\nc3\r\n"]


@pytest.mark.parametrize("bad", [0, -5, 2.0, "64K", False])
def test_bytes_bad_size(bad):
    with pytest.raises(InputError):
        BytesPartitioner(bad)


# ------------------------------------------------------------------ parse_split


@pytest.mark.parametrize(
    ("spec", "cls", "attr", "value"),
    [
        (None, LinePartitioner, None, None),
        ("line", LinePartitioner, None, None),
        ("lines", LinePartitioner, None, None),
        ("lines:1", LinePartitioner, None, None),
        ("lines:2", LinesPartitioner, "n", 2),
        ("lines:500", LinesPartitioner, "n", 500),
        ("files", FilesPartitioner, None, None),
        ("bytes:1000", BytesPartitioner, "size", 1000),
        ("bytes:1000B", BytesPartitioner, "size", 1000),
        ("bytes:64K", BytesPartitioner, "size", 64 * 1024),
        ("bytes:64KB", BytesPartitioner, "size", 64 * 1024),
        ("bytes:64k", BytesPartitioner, "size", 64 * 1024),
        ("bytes:64KiB", BytesPartitioner, "size", 64 * 1024),
        ("bytes:10M", BytesPartitioner, "size", 10 * 1024**2),
        ("bytes:10MiB", BytesPartitioner, "size", 10 * 1024**2),
        ("bytes:64M", BytesPartitioner, "size", 64 * 1024**2),
        ("bytes:1G", BytesPartitioner, "size", 1024**3),
        ("bytes:1GB", BytesPartitioner, "size", 1024**3),
    ],
)
def test_parse_split_good(spec, cls, attr, value):
    part = parse_split(spec)
    assert type(part) is cls
    if attr is not None:
        assert getattr(part, attr) == value


@pytest.mark.parametrize(
    "spec",
    [
        "xyz",
        "",
        "lines:",
        "lines:0",
        "lines:-3",
        "lines:abc",
        "lines:1.5",
        "line:3",
        "files:2",
        "bytes",
        "bytes:",
        "bytes:0",
        "bytes:64X",
        "bytes:1.5M",
        "bytes:-1K",
        "bytes:KB",
        "bytes:10iB",
    ],
)
def test_parse_split_bad(spec):
    with pytest.raises(InputError) as info:
        parse_split(spec)
    assert str(info.value) == (
        f"--split '{spec}': expected lines, lines:N, files or bytes:SIZE (e.g. bytes:64M)"
    )


# ---------------------------------------------------------- check_inputs / errors


def test_check_inputs_ok(files):
    check_inputs([files["plain.txt"], "-", files["empty.txt"]])
    check_inputs([])


def test_check_inputs_missing_names_first_bad(files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError) as info:
        check_inputs([files["plain.txt"], "foo.txt", "bar.txt"])
    assert str(info.value) == "input file 'foo.txt' does not exist; check the path"


def test_check_inputs_directory(tmp_path):
    with pytest.raises(InputError, match="is a directory") as info:
        check_inputs([str(tmp_path)])
    assert f"'{tmp_path}'" in str(info.value)


@pytest.mark.parametrize(
    "part", [LinePartitioner(), LinesPartitioner(2), FilesPartitioner(), BytesPartitioner(10)]
)
def test_missing_input_is_input_error_at_call(part, files, tmp_path):
    missing = str(tmp_path / "nope.txt")
    with pytest.raises(InputError) as info:
        part.partition([files["plain.txt"], missing])  # raised before iteration
    assert str(info.value) == f"input file '{missing}' does not exist; check the path"


# ------------------------------------------------------------------ stdin / laziness


def test_stdin_line(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("a\nb\r\n\nc"))
    assert list(LinePartitioner().partition(["-"])) == ["a", "b", "", "c"]


def test_stdin_lines_bytes_and_files_mixed(monkeypatch, files):
    monkeypatch.setattr(sys, "stdin", io.StringIO("s1\ns2\n"))
    jobs = list(LinesPartitioner(3).partition([files["no_newline.txt"], "-"]))
    assert jobs == [["one", "two", "three"], ["s1", "s2"]]
    monkeypatch.setattr(sys, "stdin", io.StringIO("s1\ns2\n"))
    assert list(BytesPartitioner(3).partition(["-"])) == ["s1\n", "s2\n"]


class InfiniteStdin(io.TextIOBase):
    """A stdin that never ends: only a lazy partitioner can use it."""

    def __init__(self) -> None:
        self.read_count = 0

    def readable(self) -> bool:
        return True

    def __iter__(self):
        return self

    def __next__(self) -> str:
        self.read_count += 1
        return f"line {self.read_count}\n"

    def readline(self, size: int = -1) -> str:
        return next(self)


@pytest.mark.parametrize("part", [LinePartitioner(), LinesPartitioner(3), BytesPartitioner(20)])
def test_partitioners_are_lazy(monkeypatch, part):
    stdin = InfiniteStdin()
    monkeypatch.setattr(sys, "stdin", stdin)
    jobs = part.partition(["-"])
    assert isinstance(jobs, types.GeneratorType)
    first = [next(jobs) for _ in range(5)]
    assert len(first) == 5
    assert stdin.read_count < 50
    jobs.close()


def test_partition_returns_iterator_before_reading(monkeypatch):
    stdin = InfiniteStdin()
    monkeypatch.setattr(sys, "stdin", stdin)
    LinePartitioner().partition(["-"])
    assert stdin.read_count == 0


# ------------------------------------------------------------------ user subclass


class IntPairs(Partitioner):
    """A user-defined partitioner: pairs of ints from every input line."""

    def partition(self, inputs):
        check_inputs(inputs)
        numbers = [int(x) for x in LinePartitioner().partition(inputs) if x.strip()]
        for i in range(0, len(numbers), 2):
            yield {"pair": numbers[i : i + 2]}


def test_user_defined_partitioner(tmp_path):
    path = write_numbers(tmp_path, 5)
    assert list(IntPairs().partition([path])) == [
        {"pair": [0, 1]},
        {"pair": [2, 3]},
        {"pair": [4]},
    ]
    assert isinstance(IntPairs(), Partitioner)


def test_base_partitioner_not_implemented():
    with pytest.raises(NotImplementedError):
        Partitioner().partition(["-"])
