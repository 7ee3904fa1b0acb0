"""The local default (no inventory): the README's example, the CLI contract, partitioning."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers import EXAMPLES, JOBS, sshmr_cli  # noqa: E402

import sshmr  # noqa: E402


def test_readme_example_runs_locally(tmp_path):
    proc = sshmr_cli("run", f"{EXAMPLES}/squares.py:Square", f"{EXAMPLES}/numbers.txt",
                     "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["succeeded"] == 100 and summary["state"] == "done"
    assert (tmp_path / "sshmr-runs" / summary["run_id"] / "journal.sqlite").exists()
    assert (tmp_path / "sshmr-runs" / summary["run_id"] / "code" / "squares.py").exists()
    results = [json.loads(x) for x in sshmr_cli("results", cwd=tmp_path).stdout.splitlines()]
    assert [r["result"]["square"] for r in results] == [n * n for n in range(1, 101)]
    assert {r["host"] for r in results} == {"local"}


def test_stdin_split_and_partitioner(tmp_path):
    text = "".join(f"{i} {i + 1}\n" for i in range(10))
    data = tmp_path / "pairs.txt"
    data.write_text(text)
    by_lines = sshmr_cli("run", f"{JOBS}/jobs_basic.py:Lines", "--split", "lines:4", "--json",
                         "-q", cwd=tmp_path, stdin=text)
    assert by_lines.returncode == 0, by_lines.stderr
    out = [json.loads(x)["result"] for x in sshmr_cli("results", cwd=tmp_path).stdout.split("\n")
           if x]
    assert out == [4, 4, 2]
    by_bytes = sshmr.run(sshmr_job("Lines"), files=[str(data)], split="bytes:20",
                         runs_dir=str(tmp_path / "r2"))
    assert sum(by_bytes.results) == 10 and all(n >= 1 for n in by_bytes.results)
    custom = sshmr_cli("run", f"{JOBS}/jobs_basic.py:Add", str(data), "--partitioner",
                       f"{JOBS}/partitioners.py:Pairs", "-q", "--runs-dir", "r3", cwd=tmp_path)
    assert custom.returncode == 0, custom.stderr
    out = [json.loads(x)["result"] for x in sshmr_cli("results", "--runs-dir", "r3",
                                                       cwd=tmp_path).stdout.splitlines()]
    assert out == [2 * i + 1 for i in range(10)]


def sshmr_job(name: str):
    sys.path.insert(0, str(JOBS))
    import jobs_basic

    return getattr(jobs_basic, name)


def test_local_timeout_kills_and_retries(tmp_path):
    result = sshmr.run(sshmr_job("Sleep"), ["30", "0"], timeout=0.5, max_retries=1,
                       kill_grace=0.2, runs_dir=str(tmp_path))
    slow, fast = result.jobs
    assert fast.state is sshmr.JobState.SUCCEEDED
    assert slow.state is sshmr.JobState.FAILED and slow.attempts == 2
    assert result.elapsed_s < 10


def test_status_while_running_and_cancel_from_another_process(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "sshmr", "run", f"{JOBS}/jobs_basic.py:Sleep", "-", "-q",
         "--slots", "2"], cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    proc.stdin.write("30\n30\n30\n")
    proc.stdin.close()
    deadline = time.monotonic() + 20
    info = {}
    while time.monotonic() < deadline:
        status = sshmr_cli("status", "--json", cwd=tmp_path)
        if status.returncode == 0:
            info = json.loads(status.stdout)
            if info["counts"]["RUNNING"] == 2:
                break
        time.sleep(0.1)
    assert info["state"] == "running" and info["counts"]["PENDING"] == 1
    cancel = sshmr_cli("cancel", cwd=tmp_path)
    assert cancel.returncode == 0, cancel.stderr
    assert proc.wait(timeout=20) == 130
    info = json.loads(sshmr_cli("status", "--json", cwd=tmp_path).stdout)
    assert info["state"] == "cancelled" and info["counts"]["CANCELLED"] == 3
    again = sshmr_cli("cancel", cwd=tmp_path)
    assert again.returncode == 2 and "not running" in again.stderr


def test_public_api_names():
    assert set(sshmr.__all__) >= {"run", "resume", "RunResult", "JobResult", "JobExecutor",
                                  "Partitioner", "Worker", "SshmrError", "JobState"}
    for name in sshmr.__all__:
        assert getattr(sshmr, name) is not None
    for name in sshmr.__all__:
        obj = getattr(sshmr, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, sshmr.SshmrError)
