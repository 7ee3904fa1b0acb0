"""Speculation (opt-in, idempotent jobs only): a straggler gets a copy on another host;
the first result wins and the loser is killed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from checks import FAST, assert_nothing_lost, events_of, payloads  # noqa: E402
from helpers import write_inventory  # noqa: E402
from jobs_faults import Fault  # noqa: E402

import sshmr  # noqa: E402
from sshmr import ConfigError  # noqa: E402


def test_a_straggler_is_copied_to_another_host_and_the_first_result_wins(cluster, tmp_path):
    effects = tmp_path / "effects"
    effects.mkdir()
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[0, 1], slots=2)
    quick = payloads(effects, 6, sleep=0.05)
    straggler = payloads(effects, 1, prefix="slow", first_sleep=30)
    result = sshmr.run(Fault(), straggler + quick, inventory=str(inv), max_retries=1,
                       speculate=2.0, runs_dir=str(tmp_path / "runs"), seed=5, **FAST)
    by_job = assert_nothing_lost(result, 1, effects, cluster=cluster)
    assert result.ok, result
    assert result.elapsed_s < 15  # not the straggler's 30 s
    first, copy = by_job[1]
    assert copy["state"] == "SUCCEEDED" and copy["host"] != first["host"]
    assert first["state"] == "FAILED" and first["reason"] == "speculation"
    assert all(len(by_job[j]) == 1 for j in range(2, 8))
    assert not events_of(result.run_dir, "discarded")


def test_speculation_is_refused_for_jobs_that_must_not_run_twice(tmp_path):
    with pytest.raises(ConfigError, match="max_retries 0"):
        sshmr.run(Fault(), [], max_retries=0, speculate=2.0, runs_dir=str(tmp_path))
