"""MapReduce under faults on real sshd hosts: a worker SIGKILLed during map and during
reduce, and a host killed after its map tasks committed but before the shuffle. In every
case the output is exact, each key once, and the delivery checks hold."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from checks import FAST, assert_nothing_lost, attempts_of  # noqa: E402
from helpers import write_inventory  # noqa: E402
from jobs_mr import Faulty, SlowMaps  # noqa: E402
from mrcheck import make_text, read_output  # noqa: E402

import sshmr  # noqa: E402


def _inputs(tmp_path: Path, control: str) -> tuple[list[str], dict[str, int]]:
    a = make_text(tmp_path / "a.txt", 1500, 11)
    b = make_text(tmp_path / "b.txt", 1500, 12)
    with open(b, "a", encoding="utf-8") as f:
        f.write(control + "\n")
    expected: Counter = Counter()
    for p in (a, b):
        for line in p.read_text(encoding="utf-8").splitlines():
            if not line.startswith("!"):
                expected.update(line.split())
    return [str(a), str(b)], dict(expected)


def _died(run_dir: str) -> list:
    """The attempts whose worker died as they ran. An attempt queued behind one at the host
    whose run message reached the agent only after the worker was reaped is never reported
    started, and ends "worker_died" too (the master cannot tell it from a start report lost
    on the wire, so it counts as a launch): it did not run and is not counted here."""
    return [a for a in attempts_of(run_dir)
            if a["reason"] == "worker_died" and a["started"] is not None]


def test_worker_killed_during_map(cluster, tmp_path):
    effects = tmp_path / "effects"
    effects.mkdir()
    inputs, expected = _inputs(tmp_path, f"!die-map {effects}")
    inv = write_inventory(cluster, tmp_path / "inv.yaml", slots=2)
    result = sshmr.run(Faulty(), inputs, output=str(tmp_path / "out"), reducers=4,
                       split="bytes:16K", inventory=str(inv), runs_dir=str(tmp_path / "runs"),
                       max_retries=2, **FAST)
    assert result.ok, result.message
    assert read_output(tmp_path / "out", 4) == expected
    (died,) = _died(result.run_dir)
    assert (effects / "died-map").exists() and died["exit_code"] == -9
    assert_nothing_lost(result, 2, cluster=cluster)


def test_worker_killed_during_reduce(cluster, tmp_path):
    effects = tmp_path / "effects"
    effects.mkdir()
    inputs, expected = _inputs(tmp_path, f"!die-reduce {effects}")
    inv = write_inventory(cluster, tmp_path / "inv.yaml", slots=2)
    result = sshmr.run(Faulty(), inputs, output=str(tmp_path / "out"), reducers=8,
                       split="bytes:16K", inventory=str(inv), runs_dir=str(tmp_path / "runs"),
                       max_retries=2, **FAST)
    assert result.ok, result.message
    assert read_output(tmp_path / "out", 8) == expected
    (died,) = _died(result.run_dir)
    assert (effects / "died-reduce").exists()
    assert_nothing_lost(result, 2, cluster=cluster)


def test_host_killed_after_its_map_tasks_committed_before_the_shuffle(fresh_cluster, tmp_path):
    c = fresh_cluster(2)
    inputs, expected = _inputs(tmp_path, "plain words at the end")
    # one slot per host and map tasks of 0.3 s or more: host 1 alone would need seconds for
    # them, so host 0 is up and gets map tasks however late it connects
    inv = write_inventory(c, tmp_path / "inv.yaml", slots=1)
    killed = []

    def progress(line: str) -> None:
        if "shuffle" in line and not killed:
            killed.append(line)
            c.kill_host(0)

    result = sshmr.run(SlowMaps(), inputs, output=str(tmp_path / "out"), reducers=4,
                       split="bytes:4K", inventory=str(inv), runs_dir=str(tmp_path / "runs"),
                       max_retries=2, progress=progress, **FAST)
    assert killed, "the shuffle never started"
    assert result.ok, result.message
    assert read_output(tmp_path / "out", 4) == expected
    attempts = attempts_of(result.run_dir)
    n_maps = len(result) - 4
    host0 = sshmr.load_inventory(str(inv)).hosts[0].name
    maps = [a for a in attempts if a["job"] <= n_maps]
    assert any(a["host"] == host0 for a in maps), "host 0 ran no map task"
    # map outputs were committed to the master: nothing was re-run after the host died
    assert sorted(a["job"] for a in maps) == list(range(1, n_maps + 1))
    assert all(a["state"] == "SUCCEEDED" for a in maps)
    # the hosts are kept from phase to phase: a reduce task may have gone to host 0 before
    # its loss was seen; it did not succeed there, and ran again on host 1
    reduces = [a for a in attempts if a["job"] > n_maps]
    assert not [a for a in reduces if a["host"] == host0 and a["state"] == "SUCCEEDED"]
    assert_nothing_lost(result, 2, cluster=c, dead_hosts=[0])
