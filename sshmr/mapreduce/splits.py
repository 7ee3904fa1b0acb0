"""Cutting a MapReduce job's input files into map tasks (master side).

``--split bytes:SIZE`` (the default: one task per slot of the run's fleet, and another
per slot for each further ``WAVE_BYTES`` a slot gets, at most ``TASKS_PER_SLOT`` per slot
and 64 in all, of 1 to 64 MiB each) copies each large
file's chunks, cut at line boundaries, into ``RUN_DIR/mr/input/``; a small file, and a
gzip file (gzip cannot be split), is one task as it is. ``--split files`` is one task per
file; a user ``Partitioner`` yields ``InputFile``s or text. Standard input is saved to a
file first. Each task is ``(path, description)``; the description names the input in
error messages ("big.txt bytes 0-1048600").
"""

from __future__ import annotations

import math
import os
import shutil
import sys

from ..errors import InputError
from ..partition import BytesPartitioner, FilesPartitioner, InputFile, Partitioner, parse_split
from ..remote.mrfiles import copy_range

MiB = 1 << 20
MAX_SPLIT = 64 * MiB
MIN_SPLIT = 1 * MiB
TARGET_MAP_TASKS = 64  # the default split aims at no more map tasks than this, ...
TASKS_PER_SLOT = 4  # ... nor more than this many per slot of the fleet, within the bounds
WAVE_BYTES = 8 * MiB  # a slot gets another task (a wave) only for this much more input


def default_split_size(total: int, slots: int) -> int:
    """Bytes per map task of the default split for ``total`` input bytes on ``slots`` slots:
    up to ``TASKS_PER_SLOT`` tasks per slot (load balance, and a retried task redoes
    little), but a wave of tasks per slot only for each ``WAVE_BYTES`` a slot gets, and
    never 64 small tasks: a task's start, its combine and sort of every key it saw, its
    spills and R shuffle segments cost more than small tasks balance (20 MB on 2 slots is
    2 tasks, 80 MB 8)."""
    slots = max(1, slots)
    waves = min(TASKS_PER_SLOT, max(1, total // (slots * WAVE_BYTES)))
    tasks = min(TARGET_MAP_TASKS, waves * slots)
    return min(MAX_SPLIT, max(MIN_SPLIT, math.ceil(total / tasks)))


def first_splits(run_dir: str, inputs: list[str], split: str | None,
                 partitioner: Partitioner | None, slots: int = TARGET_MAP_TASKS
                 ) -> list[tuple[str, str]]:
    """(file, description) per map task of step 1; ``slots`` (the fleet's) sizes the
    default split."""
    chunks = os.path.join(run_dir, "mr", "input")
    os.makedirs(chunks, exist_ok=True)
    if "-" in inputs:  # standard input: saved to a file first, then split like one
        path = os.path.join(chunks, "stdin")
        with open(path, "wb") as f:
            shutil.copyfileobj(sys.stdin.buffer, f)
        inputs = [path if p == "-" else p for p in inputs]
    if partitioner is None:
        if split is None:
            total = sum(os.path.getsize(p) for p in inputs)
            partitioner = BytesPartitioner(default_split_size(total, slots))
        else:
            partitioner = parse_split(split)
            if not isinstance(partitioner, (BytesPartitioner, FilesPartitioner)):
                raise InputError(f"--split {split!r}: a MapReduce input is split by bytes:SIZE"
                                 " or files")
    if isinstance(partitioner, FilesPartitioner):
        return [(p, p) for p in inputs if os.path.getsize(p)]
    if isinstance(partitioner, BytesPartitioner):
        return [t for i, p in enumerate(inputs) for t in _cut(p, partitioner.size, chunks, i)]
    splits = []
    for i, item in enumerate(partitioner.partition(inputs)):
        if isinstance(item, InputFile):
            splits.append((item.path, item.path))
        elif isinstance(item, str):
            path = os.path.join(chunks, f"p{i:06d}")
            with open(path, "w", encoding="utf-8", newline="") as f:
                f.write(item)
            splits.append((path, f"{type(partitioner).__name__} item {i + 1}"))
        else:
            raise InputError(f"{type(partitioner).__name__} yielded {type(item).__name__}; a"
                             " MapReduce partitioner yields sshmr.InputFile or text (str)")
    return splits


def _cut(path: str, size: int, chunks: str, index: int) -> list[tuple[str, str]]:
    """Cut ``path`` into chunk files of about ``size`` bytes at line boundaries; a small
    file or a gzip file (not splittable) is one task as it is."""
    total = os.path.getsize(path)
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    if total == 0:
        return []
    if gz or total <= size:
        return [(os.path.abspath(path), path)]
    out = []
    with open(path, "rb") as f:
        offset = 0
        while offset < total:
            end = min(total, offset + size)
            f.seek(end - 1)
            f.readline()  # to the end of the line the chunk's last byte is in
            end = f.tell()
            dest = os.path.join(chunks, f"{index:04d}-{len(out):06d}-{os.path.basename(path)}")
            with open(dest, "wb") as c:
                try:
                    copy_range(path, c, offset, end - offset)
                except ValueError:
                    raise InputError(f"input {path} shrank while it was split; run again once"
                                     " nothing writes to it") from None
            out.append((dest, f"{path} bytes {offset}-{end}"))
            offset = end
    return out
