"""Turning input files into job payloads: the partitioners and ``--split`` parsing.

This module owns how inputs become jobs: ``Partitioner`` (the base class users subclass),
the built-in partitioners (one line, N lines, one file, or about SIZE bytes per job),
``InputFile`` (a payload that stands for a local file pushed to the worker),
``parse_split`` (the ``--split`` option) and ``check_inputs`` (input validation).

It is shipped to remote hosts, so it uses the standard library only and runs on Python 3.8+.
Partitioners are lazy: they read their inputs line by line and never hold a whole file.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from typing import Any, TextIO

from .errors import InputError

STDIN = "-"

_SPLIT_HELP = "expected lines, lines:N, files or bytes:SIZE (e.g. bytes:64M)"
_SIZE_RE = re.compile(r"([0-9]+)(?:([kmgt])(?:i?b)?|b)?", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


class InputFile:
    """A payload placeholder: the local file at `path` is pushed to the worker's per-attempt
    directory and the executor receives the path of the pushed copy (a str) as its payload."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(os.fspath(path))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, InputFile):
            return NotImplemented
        return self.path == other.path

    def __hash__(self) -> int:
        return hash((InputFile, self.path))

    def __repr__(self) -> str:
        return f"InputFile({self.path!r})"


def check_inputs(inputs: list[str]) -> None:
    """Raise InputError naming the first input that does not exist or is a directory.

    ``"-"`` (stdin) is always fine.
    """
    for path in inputs:
        if path == STDIN:
            continue
        if os.path.isdir(path):
            raise InputError(f"input file '{path}' is a directory; give the files inside it")
        if not os.path.exists(path):
            raise InputError(f"input file '{path}' does not exist; check the path")


def _read_lines(path: str) -> Iterator[str]:
    """Yield the lines of one input with their line endings ("\\n" or "\\r\\n") kept.

    Only "\\n" ends a line (a lone "\\r" is data), nothing is translated, so joining the
    lines gives back the file's text exactly.
    """
    if path == STDIN:
        yield from _decode_errors(path, sys.stdin)
        return
    try:
        stream = open(path, encoding="utf-8", newline="\n")
    except OSError as exc:
        raise InputError(f"cannot read input file '{path}': {exc.strerror or exc}") from exc
    with stream:
        yield from _decode_errors(path, stream)


def _decode_errors(path: str, stream: TextIO) -> Iterator[str]:
    try:
        yield from stream
    except UnicodeDecodeError as exc:
        name = "stdin" if path == STDIN else f"input file '{path}'"
        raise InputError(f"{name} is not valid UTF-8 text ({exc.reason})") from exc


def _strip_newline(line: str) -> str:
    if line.endswith("\n"):
        line = line[:-1]
        if line.endswith("\r"):
            line = line[:-1]
    return line


class Partitioner:
    """Base class users subclass: partition(inputs) yields one payload per job.

    ``inputs`` is the list of input paths given on the command line, ``"-"`` meaning stdin.
    Each yielded payload must be JSON-serialisable, or an ``InputFile``.
    """

    def partition(self, inputs: list[str]) -> Iterator[Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement partition(inputs)")


class LinePartitioner(Partitioner):
    """One job per input line (like GNU parallel); the payload is the line without its newline.

    Empty lines are jobs too; a missing final newline does not add an empty job.
    """

    def partition(self, inputs: list[str]) -> Iterator[str]:
        check_inputs(inputs)
        return self._lines(list(inputs))

    def _lines(self, inputs: list[str]) -> Iterator[str]:
        for path in inputs:
            for line in _read_lines(path):
                yield _strip_newline(line)

    def __repr__(self) -> str:
        return "LinePartitioner()"


class LinesPartitioner(Partitioner):
    """One job per ``n`` lines: the payload is a list of up to ``n`` lines without newlines.

    Lines of consecutive input files are concatenated; only the last job may be shorter.
    """

    def __init__(self, n: int) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InputError(f"LinesPartitioner: n must be a positive integer, got {n!r}")
        self.n = n

    def partition(self, inputs: list[str]) -> Iterator[list[str]]:
        check_inputs(inputs)
        return self._batches(list(inputs))

    def _batches(self, inputs: list[str]) -> Iterator[list[str]]:
        batch: list[str] = []
        for line in LinePartitioner()._lines(inputs):
            batch.append(line)
            if len(batch) >= self.n:
                yield batch
                batch = []
        if batch:
            yield batch

    def __repr__(self) -> str:
        return f"LinesPartitioner({self.n})"


class FilesPartitioner(Partitioner):
    """One job per input file; the payload is ``InputFile(absolute path)``.

    Stdin (``"-"``) is not a file and is refused.
    """

    def partition(self, inputs: list[str]) -> Iterator[InputFile]:
        if STDIN in inputs:
            raise InputError("--split files cannot read stdin ('-'): give input files instead")
        check_inputs(inputs)
        return iter([InputFile(path) for path in inputs])

    def __repr__(self) -> str:
        return "FilesPartitioner()"


class BytesPartitioner(Partitioner):
    """Jobs of about ``size`` bytes (UTF-8) of text, cut at line boundaries.

    A chunk is a str of whole lines, newlines kept, at most ``size`` bytes unless one line
    alone is longer (it is then a chunk by itself). Chunks never span files, so joining the
    chunks of a file gives back its content; only a file's last chunk may lack a newline.
    """

    def __init__(self, size: int) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise InputError(f"BytesPartitioner: size must be a positive integer, got {size!r}")
        self.size = size

    def partition(self, inputs: list[str]) -> Iterator[str]:
        check_inputs(inputs)
        return self._chunks(list(inputs))

    def _chunks(self, inputs: list[str]) -> Iterator[str]:
        for path in inputs:
            chunk: list[str] = []
            used = 0
            for line in _read_lines(path):
                nbytes = len(line.encode("utf-8"))
                if chunk and used + nbytes > self.size:
                    yield "".join(chunk)
                    chunk, used = [], 0
                chunk.append(line)
                used += nbytes
                if used >= self.size:
                    yield "".join(chunk)
                    chunk, used = [], 0
            if chunk:
                yield "".join(chunk)

    def __repr__(self) -> str:
        return f"BytesPartitioner({self.size})"


def _parse_size(text: str) -> int | None:
    match = _SIZE_RE.fullmatch(text)
    if match is None:
        return None
    return int(match.group(1)) * _UNITS[(match.group(2) or "").lower()]


def parse_split(spec: str | None) -> Partitioner:
    """Build the partitioner for a ``--split`` value (None means one job per line).

    ``line``/``lines``/``lines:1`` -> LinePartitioner, ``lines:N`` -> LinesPartitioner,
    ``files`` -> FilesPartitioner, ``bytes:SIZE`` (1000, 64K, 64KB, 10MiB, 1G; K = 1024)
    -> BytesPartitioner.
    """
    if spec is None:
        return LinePartitioner()
    text = spec.strip().lower()
    kind, sep, arg = text.partition(":")
    arg = arg.strip()
    if kind in ("line", "lines") and not sep:
        return LinePartitioner()
    if kind == "files" and not sep:
        return FilesPartitioner()
    if kind == "lines" and re.fullmatch(r"[0-9]+", arg) and int(arg) >= 1:
        n = int(arg)
        return LinePartitioner() if n == 1 else LinesPartitioner(n)
    if kind == "bytes":
        size = _parse_size(arg)
        if size is not None and size >= 1:
            return BytesPartitioner(size)
    raise InputError(f"--split '{spec}': {_SPLIT_HELP}")
