"""The local default (no inventory): the README's example, the CLI contract, partitioning."""

from __future__ import annotations

import json
import os
import sqlite3
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


def _pids_with(text: str) -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if text.encode() in f.read():
                        pids.append(int(name))
            except OSError:
                pass
    return pids


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_an_agent_that_lost_its_master_idles_then_exits(tmp_path):
    """After kill -9 of the master, the agent lets the job finish without spinning."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sshmr", "run", f"{JOBS}/jobs_basic.py:Sleep", "-", "-q",
         "--slots", "1"], cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    proc.stdin.write("2.5\n")
    proc.stdin.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = sshmr_cli("status", "--json", cwd=tmp_path)
        if status.returncode == 0 and json.loads(status.stdout)["counts"]["RUNNING"] == 1:
            break
        time.sleep(0.05)
    found = _pids_with(f"{tmp_path}/sshmr-runs/.work/code/")  # the agent and its worker
    agents = [pid for pid in found if _ppid(pid) not in found]
    assert len(agents) == 1 and len(found) == 2, found
    proc.kill()
    proc.wait()
    time.sleep(0.3)
    before = _cpu_ticks(agents[0])
    time.sleep(1.0)
    spent = _cpu_ticks(agents[0]) - before
    assert spent < 10, f"the agent used {spent} ticks of CPU in 1 s while waiting"
    deadline = time.monotonic() + 15
    while _pids_with(f"{tmp_path}/sshmr-runs/.work/code/") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _pids_with(f"{tmp_path}/sshmr-runs/.work/code/"), "the agent never exited"
    done = list((tmp_path / "sshmr-runs" / ".work" / "runs").glob("*/a/*/done.json"))
    assert len(done) == 1 and json.loads(done[0].read_text())["status"] == "ok"


def _wal_size(run_dir: str) -> int:
    wal = Path(run_dir) / "journal.sqlite-wal"
    return wal.stat().st_size if wal.exists() else 0


def test_a_finished_run_leaves_no_wal(tmp_path):
    sys.path.insert(0, str(EXAMPLES))
    from squares import Square

    result = sshmr.run(Square, [str(n) for n in range(200)], runs_dir=str(tmp_path / "runs"))
    assert result.ok and len(result.results) == 200
    assert _wal_size(result.run_dir) == 0
    from sshmr.notebook import Cluster

    c = Cluster(runs_dir=str(tmp_path / "nb"))  # its view reads the journal while it runs
    for _ in range(2):
        assert c.map(abs, range(-150, 0)) == list(range(150, 0, -1))
        assert c.last is not None and _wal_size(c.last.run_dir) == 0
        assert c.last.results[0] == 150  # the journal still reads whole


def test_each_attempt_shows_only_its_own_output(tmp_path):
    """A slot's jobs print to the same two files, emptied per attempt: each attempt's tail
    is its own, also for one killed by its timeout (read by the agent) and for a job that
    prints nothing after one that printed."""
    sys.path.insert(0, str(JOBS))
    from jobs_basic import PrintSome

    items = [{"out": "first", "err": "first-err"}, {}, {"out": "third"},
             {"out": "slow", "sleep": 30}, {}, {"err": "last-err"}]
    r = sshmr.run(PrintSome(), items, runs_dir=str(tmp_path / "runs"), slots=1,
                  timeout=2, max_retries=0)
    db = sqlite3.connect(str(Path(r.run_dir) / "journal.sqlite"))
    rows = db.execute("SELECT job, state, reason, stdout_tail, stderr_tail FROM attempts"
                      " ORDER BY job").fetchall()
    db.close()
    got = [(job, state, reason, out.strip(), err.strip())
           for job, state, reason, out, err in rows]
    assert got == [(1, "SUCCEEDED", None, "first", "first-err"),
                   (2, "SUCCEEDED", None, "", ""),
                   (3, "SUCCEEDED", None, "third", ""),
                   (4, "FAILED", "timeout", "slow", ""),
                   (5, "SUCCEEDED", None, "", ""),
                   (6, "SUCCEEDED", None, "", "last-err")]


SELF_STARTING = '''
import os, sys, tempfile
import sshmr

class Echo(sshmr.JobExecutor):
    def execute(self, payload):
        return payload

# No `if __name__ == "__main__":` guard: every agent that imports this module for Echo
# starts the run again. The depth bound keeps a broken guard from forking for ever.
depth = int(os.environ.get("SELF_STARTING_DEPTH", "0"))
if depth >= 2:
    raise SystemExit("nested twice: the guard did not stop the first nested run")
os.environ["SELF_STARTING_DEPTH"] = str(depth + 1)  # what the run's agents inherit
try:
    result = sshmr.run(Echo(), [1, 2], runs_dir=sys.argv[1] if len(sys.argv) > 1 else
                       tempfile.mkdtemp())
finally:
    os.environ["SELF_STARTING_DEPTH"] = str(depth)
print("OK" if result.ok else "FAILED", result.message)
'''


def test_a_module_that_starts_a_run_when_imported_fails_once_with_the_fix(tmp_path):
    """The agent imports the job's module: one that starts a run at import (no main guard)
    would start itself again in every agent. The nested run is refused, naming the fix."""
    script = tmp_path / "selfstart.py"
    script.write_text(SELF_STARTING)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "runs")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("FAILED"), proc.stdout
    assert "while a host agent imported the job's module selfstart" in proc.stdout
    assert "if __name__ == \"__main__\":" in proc.stdout
    runs = [n for n in os.listdir(tmp_path / "runs") if not n.startswith(".")]
    assert len(runs) == 1, runs  # the nested run never began
