"""End to end on real sshd hosts: results, host keys, errors, transfers, the CLI."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import paramiko
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "jobs"))

import jobs_basic  # noqa: E402
from helpers import EXAMPLES, JOBS, remote_files, sshmr_cli, write_inventory  # noqa: E402

import sshmr  # noqa: E402
from sshmr import JobState  # noqa: E402


def run(executor, items, inventory, tmp_path, **kw):
    return sshmr.run(executor, items, inventory=str(inventory),
                     runs_dir=str(tmp_path / "runs"), **kw)


def test_1000_jobs_over_4_hosts_each_result_once(cluster, tmp_path):
    inv = write_inventory(cluster, tmp_path / "inv.yaml")
    result = run(jobs_basic.Square(), [str(i) for i in range(1000)], inv, tmp_path, seed=7)
    assert result.ok, result
    assert result.results == [i * i for i in range(1000)]
    assert [j.attempts for j in result] == [1] * 1000
    assert result.attempts == 1000
    hosts = {j.host for j in result}
    # hosts come up one by one (each remote shell start takes ~0.1 s here), and a fast
    # run may end before the last one is up: all results come from the cluster's hosts
    assert hosts <= {h.address for h in cluster.hosts} and len(hosts) >= 2
    db = sqlite3.connect(Path(result.run_dir) / "journal.sqlite")
    committed = db.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM jobs"
                           " WHERE state = 'SUCCEEDED' AND result_attempt IS NOT NULL").fetchone()
    assert committed == (1000, 1000)
    # the run's remote directories are gone; only the content-addressed code stays
    for h in cluster.hosts:
        assert not [p for p in remote_files(cluster, h.index) if p.startswith("runs/")
                    and p.count("/") > 1], remote_files(cluster, h.index)


def test_local_mode_gives_the_same_results_as_ssh(cluster, tmp_path):
    items = [str(i) for i in range(200)]
    inv = write_inventory(cluster, tmp_path / "inv.yaml", slots=2)
    over_ssh = run(jobs_basic.Square(), items, inv, tmp_path)
    local = sshmr.run(jobs_basic.Square(), items, runs_dir=str(tmp_path / "local-runs"))
    assert local.ok and over_ssh.ok
    assert local.results == over_ssh.results
    assert {j.host for j in local} == {"local"}


def test_unknown_host_is_refused_and_accept_new_records_it(cluster, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text("")
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[0], known_hosts=str(known))
    before = remote_files(cluster, 0)
    refused = run(jobs_basic.Square(), ["1", "2"], inv, tmp_path)
    assert refused.state == "no_hosts"
    assert "--accept-new-hosts" in refused.message
    assert "not in" in refused.message and str(known) in refused.message
    assert [j.state for j in refused] == [JobState.CANCELLED] * 2
    assert remote_files(cluster, 0) == before  # nothing uploaded

    accepted = run(jobs_basic.Square(), ["1", "2"], inv, tmp_path, accept_new_hosts=True)
    assert accepted.ok
    h = cluster.hosts[0]
    assert known.read_text().startswith(f"[{h.address}]:{h.port} ssh-ed25519 ")
    again = run(jobs_basic.Square(), ["3"], inv, tmp_path)  # now known: no flag needed
    assert again.ok and again.results == [9]


def test_changed_host_key_is_refused_with_nothing_uploaded(cluster, tmp_path):
    h = cluster.hosts[1]
    other = paramiko.Ed25519Key.from_private_key_file(str(cluster.client_key))  # not its key
    known = tmp_path / "known_hosts"
    known.write_text(f"[{h.address}]:{h.port} ssh-ed25519 {other.get_base64()}\n")
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[1], known_hosts=str(known))
    before = remote_files(cluster, 1)
    result = run(jobs_basic.Square(), ["1"], inv, tmp_path, accept_new_hosts=True)
    assert result.state == "no_hosts"
    assert "HAS CHANGED" in result.message and "ssh-keygen -R" in result.message
    assert remote_files(cluster, 1) == before
    assert known.read_text().count("\n") == 1  # accept-new never replaces a changed key


def test_a_job_that_raises_is_reported_with_its_traceback(cluster, tmp_path):
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[0, 1])
    result = run(jobs_basic.RaiseOnOdd(), [str(i) for i in range(10)], inv, tmp_path,
                 max_retries=1)
    assert [j.state for j in result] == [JobState.SUCCEEDED, JobState.FAILED] * 5
    assert result.results[0::2] == [0, 2, 4, 6, 8]
    failed = result.jobs[1]
    assert failed.attempts == 2
    assert failed.error == "ValueError: odd input 1"
    db = sqlite3.connect(Path(result.run_dir) / "journal.sqlite")
    tb, out, reason = db.execute(
        "SELECT traceback, stdout_tail, reason FROM attempts WHERE job = 2").fetchone()
    assert "Traceback" in tb and "raise ValueError" in tb and "jobs_basic.py" in tb
    assert out.strip() == "about to fail on 1"
    assert reason == "error"


def test_results_that_are_not_serialisable_fail_with_a_clear_error(cluster, tmp_path):
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[0])
    result = run(jobs_basic.NotSerialisable(), ["a"], inv, tmp_path, max_retries=0)
    assert result.jobs[0].state is JobState.FAILED
    assert "not JSON-serialisable" in result.jobs[0].error


def test_bytes_large_results_large_payloads_and_setup(cluster, tmp_path):
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[0, 1], slots=2)
    blobs = run(jobs_basic.Blob(), ["10", "300000"], inv, tmp_path)
    assert blobs.ok
    assert blobs.results == [bytes(i % 251 for i in range(n)) for n in (10, 300000)]
    big = run(jobs_basic.BigJson(), ["5", "2000000"], inv, tmp_path)
    assert big.ok and len(big.results[1]["text"]) == 2000000
    payloads = run(jobs_basic.PayloadSize(), ["y" * 500000, "z"], inv, tmp_path)
    assert payloads.results == [500000, 1]
    setup = run(jobs_basic.SetupCounter(), [str(i) for i in range(40)], inv, tmp_path)
    by_worker: dict[int, list[int]] = {}
    for r in setup.results:
        assert r["setup_pid"] == r["pid"]  # setup ran in the worker process itself
        by_worker.setdefault(r["pid"], []).append(r["jobs"])
    assert len(by_worker) <= 4  # one worker per slot, reused from job to job
    assert sorted(n for counts in by_worker.values() for n in counts) == sorted(
        n for counts in by_worker.values() for n in range(1, len(counts) + 1))


def test_split_files_pushes_each_file(cluster, tmp_path):
    inputs = []
    for i in range(3):
        p = tmp_path / f"doc{i}.txt"
        p.write_text("word " * (i + 1))
        inputs.append(str(p))
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[2])
    result = sshmr.run(jobs_basic.FileWords, files=inputs, split="files", inventory=str(inv),
                       runs_dir=str(tmp_path / "runs"))
    assert result.results == [{"name": f"doc{i}.txt", "words": i + 1} for i in range(3)]
    assert [j.input for j in result] == inputs


def test_setup_failure_on_every_host_stops_with_its_error(cluster, tmp_path):
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[0], slots=1)
    result = run(jobs_basic.BrokenSetup(), ["1"], inv, tmp_path)
    assert result.state == "no_hosts"
    assert "cannot reach the database" in result.message


@pytest.mark.parametrize("case", ["missing_key", "wrong_key", "unreachable", "no_python"])
def test_host_problems_give_one_line_errors(cluster, tmp_path, case):
    overrides: dict = {}
    expect = ""
    if case == "missing_key":
        overrides = {"identity_file": str(tmp_path / "nope")}
        expect = f"identity file {tmp_path / 'nope'} does not exist"
    elif case == "wrong_key":
        key = paramiko.Ed25519Key.from_private_key_file(str(cluster.client_key))
        wrong = tmp_path / "wrong_key"
        paramiko.ECDSAKey.generate().write_private_key_file(str(wrong))
        assert key.get_base64()
        overrides = {"identity_file": str(wrong)}
        expect = "no key accepted"
    elif case == "unreachable":
        overrides = {"port": 1}
        expect = "cannot connect to"
    elif case == "no_python":
        overrides = {"python": "/nonexistent/python3"}
        expect = "set python: in the inventory"
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[0],
                          host_overrides={0: overrides})
    proc = sshmr_cli("run", "-i", str(inv), f"{JOBS}/jobs_basic.py:Square", "-", "-q",
                     "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path, stdin="1\n2\n")
    assert proc.returncode == 3, proc.stderr
    assert expect in proc.stderr
    assert "Traceback" not in proc.stderr
    hosts = sshmr_cli("hosts", "-i", str(inv), cwd=tmp_path)
    assert hosts.returncode == 3 and expect in hosts.stdout


def test_cli_run_status_results_hosts(cluster, tmp_path):
    inv = write_inventory(cluster, tmp_path / "inv.yaml")
    proc = sshmr_cli("run", "-i", str(inv), f"{EXAMPLES}/squares.py:Square",
                     f"{EXAMPLES}/numbers.txt", "--timeout", "30", "--max-retries", "2",
                     "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["state"] == "done" and summary["jobs"] == 100
    assert summary["succeeded"] == 100 and summary["failed"] == summary["unknown"] == 0
    assert set(summary) == {"run_id", "run_dir", "state", "jobs", "succeeded", "failed",
                            "unknown", "attempts", "elapsed_s"}
    results = sshmr_cli("results", cwd=tmp_path)
    lines = [json.loads(line) for line in results.stdout.splitlines()]
    assert [r["job"] for r in lines] == list(range(1, 101))
    assert lines[6] == {"job": 7, "input": "7", "state": "SUCCEEDED",
                        "result": {"n": 7, "square": 49}, "host": lines[6]["host"],
                        "attempts": 1}
    status = sshmr_cli("status", "--json", cwd=tmp_path)
    info = json.loads(status.stdout)
    assert info["state"] == "done" and info["counts"]["SUCCEEDED"] == 100
    hosts = sshmr_cli("hosts", "-i", str(inv), "--json", cwd=tmp_path)
    reports = json.loads(hosts.stdout)
    assert hosts.returncode == 0 and all(r["ok"] for r in reports) and len(reports) == 4


def test_cli_failures_exit_1_and_bad_usage_exits_2(cluster, tmp_path):
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[0])
    proc = sshmr_cli("run", "-i", str(inv), f"{JOBS}/jobs_basic.py:RaiseOnOdd", "-",
                     "--max-retries", "0", "--json", cwd=tmp_path, stdin="1\n2\n")
    assert proc.returncode == 1
    assert json.loads(proc.stdout.splitlines()[-1])["failed"] == 1
    assert "job 1 FAILED: ValueError: odd input 1" in proc.stderr
    for args, expect in [
        ([f"{JOBS}/nope.py:X", "-"], "does not exist"),
        ([f"{JOBS}/jobs_basic.py:Missing", "-"], "has no attribute 'Missing'"),
        ([f"{JOBS}/jobs_basic.py:Square", str(tmp_path / "missing.txt")], "missing.txt"),
        (["-i", str(tmp_path / "no-inventory.yaml"), f"{JOBS}/jobs_basic.py:Square"], "cannot"),
        ([f"{JOBS}/jobs_basic.py:Square", "--split", "chunks"], "--split 'chunks'"),
    ]:
        bad = sshmr_cli("run", *args, cwd=tmp_path, stdin="1\n")
        assert bad.returncode == 2, (args, bad.stderr)
        assert expect in bad.stderr and bad.stderr.startswith("sshmr: error: ")
        assert "Traceback" not in bad.stderr


def test_proxyjump_from_ssh_config(cluster, tmp_path):
    jump, target = cluster.hosts[0], cluster.hosts[1]
    config = tmp_path / "ssh_config"
    config.write_text(f"Host behind-jump\n  HostName {target.address}\n  Port {target.port}\n"
                      f"  ProxyJump {jump.address}:{jump.port}\n")
    inv = tmp_path / "inv.yaml"
    write_inventory(cluster, inv, hosts=[])
    text = inv.read_text().replace(str(cluster.ssh_config), str(config))
    text = text.replace("hosts: []", f"hosts:\n- {{host: behind-jump, workdir: {target.workdir}}}")
    inv.write_text(text)
    log_before = Path(cluster.log_path(0)).read_text()
    result = run(jobs_basic.Square(), ["4"], inv, tmp_path)
    assert result.ok and result.results == [16]
    assert result.jobs[0].host == "behind-jump"
    new_log = Path(cluster.log_path(0)).read_text()[len(log_before):]
    assert "direct-tcpip" in new_log or "Accepted publickey" in new_log
