"""Run ids sort in start order, even for runs started in the same second, so the
"latest run" (``sshmr show``/``report`` without an id) is the one started last."""

from __future__ import annotations

import os

from sshmr.record.journal import Journal
from sshmr.record.runs import RUN_ID, find_run, new_run_id


def test_ids_started_4ms_apart_within_one_second_sort_in_start_order():
    base = 1_795_000_000.0  # a whole second
    ids = [new_run_id(base + (ms + 2) / 1000) for ms in range(0, 1000, 4)]  # mid-tick
    assert ids == sorted(ids)
    assert len({i[:15] for i in ids}) == 1  # all in the same second
    assert all(RUN_ID.fullmatch(i) for i in ids)


def test_the_last_tick_of_a_second_sorts_before_the_next_second():
    assert new_run_id(1_795_000_000.9999) < new_run_id(1_795_000_001.0)


def test_find_run_without_an_id_is_the_run_started_last_in_the_same_second(tmp_path):
    base = 1_795_000_000.0
    # created in this order; a random suffix alone would sort them at random
    ids = [new_run_id(base + 0.010 * k) for k in range(20)]
    for run_id in ids:
        os.mkdir(tmp_path / run_id)
        Journal(str(tmp_path / run_id), create=True).close()
        assert find_run(str(tmp_path), None) == str(tmp_path / run_id)
