"""Master crash (kill -9 of ``sshmr run``) and ``sshmr resume`` on real sshd hosts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers import JOBS, sshmr_cli, write_inventory  # noqa: E402

from sshmr.record.runs import RunLock, find_run  # noqa: E402


def _start_run(inv: Path, tmp_path: Path, inputs: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ)
    env.pop("SSH_AUTH_SOCK", None)
    return subprocess.Popen(
        [sys.executable, "-m", "sshmr", "run", "-i", str(inv),
         f"{JOBS}/jobs_resume.py:CountedSleep", str(inputs), "-q",
         "--runs-dir", str(tmp_path / "runs"), *extra],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_dispatched(tmp_path: Path, count: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        launched = list((tmp_path / "effects").glob("*.launches"))
        if len(launched) >= count:
            return
        time.sleep(0.05)
    raise AssertionError("the run never launched its first jobs")


def _launches(tmp_path: Path) -> dict[str, int]:
    return {p.name.split(".")[0]: len(p.read_text().splitlines())
            for p in (tmp_path / "effects").glob("*.launches")}


def test_resume_after_kill_9_never_relaunches_max_retries_0_jobs(cluster, tmp_path):
    effects = tmp_path / "effects"
    effects.mkdir()
    inputs = tmp_path / "inputs.txt"
    inputs.write_text("".join(f"{effects}|job{i}|1.0\n" for i in range(8)))
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[0], slots=2)
    master = _start_run(inv, tmp_path, inputs, "--max-retries", "0")
    _wait_dispatched(tmp_path, 2)
    time.sleep(0.3)
    master.send_signal(signal.SIGKILL)
    master.wait()
    run_dir = find_run(str(tmp_path / "runs"), None)
    status = json.loads(sshmr_cli("status", "--json", "--runs-dir", str(tmp_path / "runs"),
                                  cwd=tmp_path).stdout)
    assert status["state"] == "interrupted"
    time.sleep(1.5)  # the agent lets the running jobs finish and commits them remotely

    resumed = sshmr_cli("resume", "--json", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout.splitlines()[-1])
    assert summary["succeeded"] == 8 and summary["unknown"] == 0
    assert _launches(tmp_path) == {f"job{i}": 1 for i in range(8)}  # none launched twice
    results = [json.loads(line) for line in sshmr_cli(
        "results", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path).stdout.splitlines()]
    assert [r["result"] for r in results] == [f"job{i}" for i in range(8)]
    assert [r["attempts"] for r in results] == [1] * 8
    assert not RunLock.held(run_dir)


def test_resume_marks_unfinished_max_retries_0_jobs_unknown(cluster, tmp_path):
    effects = tmp_path / "effects"
    effects.mkdir()
    inputs = tmp_path / "inputs.txt"
    inputs.write_text("".join(f"{effects}|job{i}|0.2\n" for i in range(4)))
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[1], slots=1)
    master = _start_run(inv, tmp_path, inputs, "--max-retries", "0")
    _wait_dispatched(tmp_path, 1)
    master.send_signal(signal.SIGKILL)
    master.wait()
    # the running attempt commits its result on the host (the orphaned agent lets it
    # finish), then the host's copy vanishes (say, its disk was wiped)
    runs = Path(cluster.hosts[1].workdir, "runs")
    deadline = time.monotonic() + 60
    while not list(runs.glob("*/a/*/done.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    for done in runs.glob("*/a/*/done.json"):
        done.unlink()
    resumed = sshmr_cli("resume", "--json", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert resumed.returncode == 1, resumed.stderr
    summary = json.loads(resumed.stdout.splitlines()[-1])
    assert summary["unknown"] >= 1 and summary["succeeded"] + summary["unknown"] == 4
    assert all(n == 1 for n in _launches(tmp_path).values())  # never relaunched


def test_a_second_resume_of_a_held_run_is_refused(cluster, tmp_path):
    effects = tmp_path / "effects"
    effects.mkdir()
    inputs = tmp_path / "inputs.txt"
    inputs.write_text(f"{effects}|only|0.1\n")
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[2], slots=1)
    done = sshmr_cli("run", "-i", str(inv), f"{JOBS}/jobs_resume.py:CountedSleep",
                     str(inputs), "-q", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run_dir = find_run(str(tmp_path / "runs"), None)
    lock = RunLock(run_dir)  # as if another master were resuming it right now
    try:
        refused = sshmr_cli("resume", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    finally:
        lock.release()
    assert refused.returncode == 2
    assert "in use by another sshmr process" in refused.stderr
    finished = sshmr_cli("resume", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert finished.returncode == 2 and "already ended" in finished.stderr


def test_gc_keeps_resumable_runs_and_removes_them_with_all(cluster, tmp_path):
    effects = tmp_path / "effects"
    effects.mkdir()
    inputs = tmp_path / "inputs.txt"
    inputs.write_text(f"{effects}|a|0.3\n{effects}|b|0.3\n")
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[3], slots=1)
    master = _start_run(inv, tmp_path, inputs)
    _wait_dispatched(tmp_path, 1)
    master.send_signal(signal.SIGKILL)
    master.wait()
    time.sleep(1.0)  # the orphaned agent finishes its job and exits
    run_id = Path(find_run(str(tmp_path / "runs"), None)).name
    remote = Path(cluster.hosts[3].workdir, "runs", run_id)
    assert remote.is_dir()
    kept = sshmr_cli("gc", "-i", str(inv), "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert f"kept     {cluster.hosts[3].address}:{remote} (interrupted)" in kept.stdout
    assert remote.is_dir()
    removed = sshmr_cli("gc", "-i", str(inv), "--all", "--runs-dir", str(tmp_path / "runs"),
                        cwd=tmp_path)
    assert "removed" in removed.stdout and not remote.exists()
