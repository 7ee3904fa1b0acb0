"""What a user sees of a run: the live view on a terminal (a real pseudo-terminal), the
lines when stderr is not a terminal, ``status --watch``/``--json``, ``results --failed``
and ``show``. The host lines come from the real sshd cluster where it matters."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers import JOBS, in_pty, sshmr_cli, write_inventory  # noqa: E402

SLOW = f"{JOBS}/jobs_live.py:SlowMaybeFail"
ERROR = "RuntimeError: job asked to fail after"


def _inputs(path: Path, n: int, seconds: float, fail_every: int = 0) -> Path:
    path.write_text("".join(
        f"{seconds} fail\n" if fail_every and i % fail_every == 0 else f"{seconds}\n"
        for i in range(1, n + 1)))
    return path


def _run_dir(cwd: Path) -> Path:
    (run,) = (cwd / "sshmr-runs").glob("2*")
    return run


def test_results_failed_and_show(tmp_path):
    inputs = _inputs(tmp_path / "in.txt", 6, 0, fail_every=3)
    run = sshmr_cli("run", SLOW, str(inputs), "--max-retries", "1", "--slots", "2", "-q",
                    cwd=tmp_path)
    assert run.returncode == 1 and run.stderr == ""  # -q: nothing at all
    everything = [json.loads(x) for x in sshmr_cli("results", cwd=tmp_path).stdout.splitlines()]
    assert [r["job"] for r in everything] == [1, 2, 3, 4, 5, 6]
    assert all("error" not in r for r in everything if r["state"] == "SUCCEEDED")
    failed = [json.loads(x) for x in
              sshmr_cli("results", "--failed", cwd=tmp_path).stdout.splitlines()]
    assert [(r["job"], r["state"], r["attempts"], r["error"]) for r in failed] == [
        (3, "FAILED", 2, f"{ERROR} 0s"), (6, "FAILED", 2, f"{ERROR} 0s")]

    run_id = _run_dir(tmp_path).name
    text = sshmr_cli("show", "3", cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith(f"job 3 of run {run_id}: FAILED, 2 attempts\n")
    for expect in ("payload: 0 fail", f"error:   {ERROR} 0s", "attempt 1 (id ",
                   "attempt 2 (id ", "on local slot ", "reason error", "traceback:",
                   "Traceback (most recent call last):", "stdout (tail):",
                   "working on 0 fail", "stderr (tail):", "about to fail"):
        assert expect in text.stdout, expect
    detail = json.loads(sshmr_cli("show", run_id, "3", "--json", cwd=tmp_path).stdout)
    assert detail["job"] == 3 and detail["state"] == "FAILED" and detail["input"] == "0 fail"
    assert [a["attempt"] for a in detail["attempt_list"]] == [1, 2]
    for a in detail["attempt_list"]:
        assert a["host"] == "local" and a["reason"] == "error" and a["duration_s"] >= 0
        assert a["error"] == f"{ERROR} 0s" and a["traceback"].startswith("Traceback")
        assert a["stdout_tail"] == "working on 0 fail\n" and "about to fail" in a["stderr_tail"]
        assert a["started"] >= a["dispatched"] and a["ended"] >= a["started"]
    ok = json.loads(sshmr_cli("show", "1", "--json", cwd=tmp_path).stdout)
    assert ok["state"] == "SUCCEEDED" and ok["result"] == 0.0 and len(ok["attempt_list"]) == 1

    for args, expect in [(["7"], f"run {run_id} has no job 7 (its jobs are 1..6)"),
                         (["x"], "JOB must be a job number"),
                         (["a", "b", "c"], "show takes [RUN_ID] JOB"),
                         (["nope", "1"], "no run 'nope'")]:
        bad = sshmr_cli("show", *args, cwd=tmp_path)
        assert bad.returncode == 2 and bad.stderr.startswith("sshmr: error: "), bad.stderr
        assert expect in bad.stderr and len(bad.stderr.splitlines()) == 1


def test_not_a_terminal_host_and_failure_lines_then_status_json(cluster, tmp_path):
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[0, 1], slots=2)
    # 0.5 s jobs: one host alone would need 3 s, so both are up before the run ends
    inputs = _inputs(tmp_path / "in.txt", 12, 0.5, fail_every=4)
    proc = sshmr_cli("run", "-i", str(inv), SLOW, str(inputs), "--max-retries", "0", "--json",
                     cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert (summary["succeeded"], summary["failed"]) == (9, 3)
    lines = proc.stderr.splitlines()
    assert "\x1b" not in proc.stderr  # no animation, no colour
    addresses = [h.address for h in cluster.hosts[:2]]
    for address in addresses:
        assert f"sshmr: host {address} up: 2 slots" in lines
    failures = [x for x in lines if " FAILED: " in x]
    assert len(failures) == 3, lines
    for job, line in zip((4, 8, 12), sorted(failures, key=lambda x: int(x.split()[2])),
                         strict=True):
        m = re.fullmatch(rf"sshmr: job {job} FAILED: {ERROR} 0\.5s \(host (\S+), 1 attempt\)",
                         line)
        assert m and m.group(1) in addresses, line
    assert len(lines) == 2 + 3 + 1, lines  # host lines, failure lines, where to read them
    assert lines[-1].startswith("sshmr: 3 job(s) failed or unknown: 'sshmr results --failed")

    info = json.loads(sshmr_cli("status", "--json", cwd=tmp_path).stdout)
    assert info["state"] == "done" and info["eta_s"] == 0.0 and info["jobs_per_s"] > 0
    assert info["counts"]["SUCCEEDED"] == 9 and info["done"] == 12
    hosts = {h["name"]: h for h in info["hosts"]}
    assert set(hosts) == set(addresses)
    assert sum(h["done"] for h in hosts.values()) == 9
    assert sum(h["failed"] for h in hosts.values()) == 3
    for h in hosts.values():
        assert h["busy"] == 0 and h["slots"] == 2 and h["state"] == "up"
        assert h["mean_runtime_s"] is None or 0.04 < h["mean_runtime_s"] < 5
    assert [f["job"] for f in info["latest_failures"]] == [12, 8, 4]


def test_live_view_on_a_terminal(cluster, tmp_path):
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[0, 1], slots=2)
    inputs = _inputs(tmp_path / "in.txt", 24, 0.4, fail_every=6)
    code, raw, out = in_pty(["run", "-i", str(inv), SLOW, str(inputs), "--max-retries", "0"],
                             tmp_path)
    assert code == 1, out
    assert "Traceback" not in out
    assert "\x1b[2K" in raw and "\x1b[1A" in raw  # redrawn in place: erase line, cursor up
    assert out.count("jobs/s") >= 3, out  # several frames
    assert "ETA " in out and "latest failures" in out
    for h in cluster.hosts[:2]:
        assert h.address in out
    final = out[out.rindex("sshmr 2"):]  # the last frame, left on the screen
    assert " done " in final and "24/24 jobs 100%" in final
    assert "succeeded 20  failed 4  attempts" in final
    assert "run " in final and "done: 20/24 succeeded, 4 failed" in final


def test_ctrl_c_stops_the_live_view_cleanly(tmp_path):
    inputs = _inputs(tmp_path / "in.txt", 4, 30)
    sent = []

    def interrupt(out: str, proc: subprocess.Popen) -> None:
        if not sent and "running" in out and "jobs/s" in out:
            proc.send_signal(signal.SIGINT)
            sent.append(time.monotonic())

    code, _, out = in_pty(["run", SLOW, str(inputs), "--slots", "2"], tmp_path, timeout=60,
                           on_output=interrupt)
    assert sent, out
    assert code == 130, out
    assert time.monotonic() - sent[0] < 20
    assert "Traceback" not in out
    final = out[out.rindex("sshmr 2"):]
    assert "cancelled" in final and "0/4 jobs 0%" in final  # what was done, not 100%


def test_status_watch_follows_a_run_to_its_end(tmp_path):
    inputs = _inputs(tmp_path / "in.txt", 12, 0.4, fail_every=5)
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    run = subprocess.Popen([sys.executable, "-m", "sshmr", "run", SLOW, str(inputs), "--slots",
                            "2", "--max-retries", "0", "-q"], cwd=tmp_path, env=env)
    try:
        deadline = time.monotonic() + 30
        while not list((tmp_path / "sshmr-runs").glob("2*/journal.sqlite")):
            assert time.monotonic() < deadline and run.poll() is None
            time.sleep(0.05)
        before = sshmr_cli("status", "--json", cwd=tmp_path)
        assert before.returncode == 0, before.stderr  # even while the journal is being made
        assert json.loads(before.stdout)["state"] == "running"
        watched = sshmr_cli("status", "--watch", cwd=tmp_path, timeout=60)
        assert run.wait(10) == 1
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert watched.returncode == 0, watched.stderr
    assert " done " in watched.stdout and "12/12 jobs 100%" in watched.stdout, watched.stdout
    assert "failed 2" in watched.stdout and "local" in watched.stdout
    after = json.loads(sshmr_cli("status", "--json", cwd=tmp_path).stdout)
    assert after["state"] == "done" and after["counts"]["FAILED"] == 2


def test_one_line_per_host_state_change(fresh_cluster, tmp_path):
    c = fresh_cluster(2)
    inv = write_inventory(c, tmp_path / "inv.yaml", slots=2)
    inputs = _inputs(tmp_path / "in.txt", 40, 0.3)
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    with open(tmp_path / "err.txt", "w") as err:
        run = subprocess.Popen([sys.executable, "-m", "sshmr", "run", "-i", str(inv), SLOW,
                                str(inputs)], cwd=tmp_path, env=env, stderr=err,
                               stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while "up: 2 slots" not in (tmp_path / "err.txt").read_text().split(
                    c.hosts[1].address, 1)[-1]:
                assert time.monotonic() < deadline and run.poll() is None
                time.sleep(0.05)
            time.sleep(0.5)
            c.kill_host(1)  # it stays down: the master retries it after 1, 2, 4 ... s
            assert run.wait(60) == 0
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
    lines = (tmp_path / "err.txt").read_text().splitlines()
    dead = [x for x in lines if x.startswith(f"sshmr: host {c.hosts[1].address}")]
    # up, then down; the failed reconnects are not changes; at the end, where its run dir
    # may be left
    assert len(dead) == 3, lines
    assert dead[0] == f"sshmr: host {c.hosts[1].address} up: 2 slots"
    assert dead[2] == (f"sshmr: host {c.hosts[1].address} was lost during the run: its run"
                       f" directory {c.hosts[1].workdir}/runs/{_run_dir(tmp_path).name} may be"
                       " left there; 'sshmr gc' removes it")
    run_dir = _run_dir(tmp_path)
    db = sqlite3.connect(f"file:{run_dir / 'journal.sqlite'}?mode=ro", uri=True)
    try:
        failed_reconnects = db.execute("SELECT COUNT(*) FROM events WHERE kind = 'host_failed'"
                                       " AND host = ?", (c.hosts[1].address,)).fetchone()[0]
    finally:
        db.close()
    assert failed_reconnects >= 1  # there were reconnects that failed, and no line for them
    assert dead[1].startswith(f"sshmr: host {c.hosts[1].address}: ")  # and why it went down
