"""The default split of a MapReduce input: a few map tasks per slot of the fleet."""

from __future__ import annotations

import os

from sshmr.mapreduce.splits import (
    MAX_SPLIT,
    MIN_SPLIT,
    TARGET_MAP_TASKS,
    TASKS_PER_SLOT,
    WAVE_BYTES,
    default_split_size,
    first_splits,
)

MB = 1_000_000


def test_default_split_is_a_few_tasks_per_slot() -> None:
    size = default_split_size(80 * MB, 2)  # 80 MB: 4 waves of WAVE_BYTES on each slot
    assert size == -(-80 * MB // (TASKS_PER_SLOT * 2))
    assert -(-80 * MB // size) == TASKS_PER_SLOT * 2


def test_default_split_adds_a_wave_per_slot_only_for_enough_input() -> None:
    # 20 MB on 2 slots: one task per slot, not 8 small ones (each a start, a sort of every
    # key it saw, and R shuffle segments)
    assert -(-20 * MB // default_split_size(20 * MB, 2)) == 2
    assert -(-2 * 2 * WAVE_BYTES // default_split_size(2 * 2 * WAVE_BYTES, 2)) == 4
    assert -(-(4 * WAVE_BYTES - 1) // default_split_size(4 * WAVE_BYTES - 1, 2)) == 2
    # 16 slots of a fleet and 20 MB: one task per slot, each above MIN_SPLIT
    assert -(-20 * MB // default_split_size(20 * MB, 16)) == 16


def test_default_split_keeps_its_bounds() -> None:
    assert default_split_size(100, 2) == MIN_SPLIT  # small input: one 1 MiB task at most
    assert default_split_size(10**12, 2) == MAX_SPLIT  # huge input: tasks of 64 MiB
    # a big fleet: never more than TARGET_MAP_TASKS tasks, as before
    assert default_split_size(2000 * MB, 1000) == 2000 * MB // TARGET_MAP_TASKS
    assert default_split_size(20 * MB, 0) == default_split_size(20 * MB, 1)


def test_first_splits_cuts_by_the_fleet(tmp_path) -> None:
    data = tmp_path / "in.txt"
    line = b"x" * 99 + b"\n"
    data.write_bytes(line * (80 * MiB_LINES))
    run = tmp_path / "run"
    two = first_splits(str(run), [str(data)], None, None, 2)
    assert len(two) == TASKS_PER_SLOT * 2
    assert b"".join(open(p, "rb").read() for p, _ in two) == data.read_bytes()
    for p, _ in two:
        os.unlink(p)
    one = first_splits(str(run), [str(data)], "bytes:4M", None, 2)  # --split overrides
    assert len(one) == -(-data.stat().st_size // (4 << 20))


MiB_LINES = (1 << 20) // 100  # 100-byte lines in about one MiB
