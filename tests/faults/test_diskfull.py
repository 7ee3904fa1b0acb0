"""Disk full (issue 12, faults 3 and 4): a host's workdir, and the master's runs dir.

Each disk is a small tmpfs (``tests/diskfull.py``) filled with a ballast file mid-run;
mounting needs root, so these tests are marked ``root`` (CI runs as root).
"""

from __future__ import annotations

import json
import re
import sqlite3
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from checks import (  # noqa: E402
    FAST,
    FAULT_JOB,
    Background,
    assert_nothing_lost,
    cli_output,
    events_of,
    host_index,
    hosts_of,
    launches,
    payloads,
    result_of,
    start_cli,
    stop_process,
    the_run_dir,
    wait_for,
    write_inputs,
)
from diskfull import SmallDisk, host_disk  # noqa: E402
from helpers import sshmr_cli, write_inventory  # noqa: E402
from jobs_faults import Fault, blob  # noqa: E402

import sshmr  # noqa: E402
from sshmr import JobState  # noqa: E402

pytestmark = pytest.mark.root
NO_SPACE = "no space left on device in"


def _launched_on(effects: Path, host: int) -> int:
    return sum(1 for runs in launches(effects).values() for r in runs
               if host_index(r[2]) == host)


def _assert_disk_message(text: str, address: str, workdir: str) -> None:
    """'HOST: no space left on device in WORKDIR (N KB free); fix' and nothing else."""
    assert text.startswith(f"{address}: {NO_SPACE} {workdir} ("), text
    assert " free); free space there or set another workdir" in text, text
    assert "\n" not in text


# ------------------------------------------------------------------ fault 3: a host's disk


@pytest.mark.parametrize("where", ["commit", "push"])
def test_host_disk_full_mid_run_quarantines_the_host(fresh_cluster, tmp_path, where):
    """The worker cannot commit results (``commit``), or the master cannot upload payloads
    (``push``, SFTP): host-caused failures, retried elsewhere, then the host is quarantined."""
    c = fresh_cluster(2)
    effects = tmp_path / "effects"
    effects.mkdir()
    inv = write_inventory(c, tmp_path / "inv.yaml", slots=2)
    full, good = c.hosts[0], c.hosts[1]
    extra = {"pad": "x" * 4096} if where == "push" else {}  # over inline_limit: pushed
    items = payloads(effects, 40, sleep=0.15, **extra)
    filled: list[float] = []
    with host_disk(c, 0, "16m") as disk:
        def fill_once_busy() -> None:
            wait_for(lambda: _launched_on(effects, 0) >= 2, 20, "jobs on host 0")
            disk.fill()
            filled.append(time.time())

        filler = Background(fill_once_busy)
        filler.start()
        result = sshmr.run(Fault(), items, inventory=str(inv), runs_dir=str(tmp_path / "runs"),
                           max_retries=3, quarantine_after=3, inline_limit=1024, seed=3, **FAST)
        filler.join()
        by_job = assert_nothing_lost(result, 3, effects, cluster=c)

    assert result.ok, result
    hosts = hosts_of(result.run_dir)
    assert hosts[full.address]["state"] == "quarantined" and hosts[good.address]["state"] == "up"
    error = hosts[full.address]["error"]
    assert error.startswith("3 failures in a row; "), error
    _assert_disk_message(error[len("3 failures in a row; "):], full.address, full.workdir)
    after = [a for rows in by_job.values() for a in rows
             if a["host"] == full.address and a["state"] == "FAILED"]
    assert len(after) >= 3 and all(a["reason"] == "system" for a in after), after
    for a in after:
        _assert_disk_message(a["error"], full.address, full.workdir)
    assert all(a["reason"] != "system" for rows in by_job.values() for a in rows
               if a["host"] == good.address)
    (quarantined,) = events_of(result.run_dir, "quarantined")
    assert quarantined["host"] == full.address
    print(f"\n{where}: disk filled -> host quarantined after"
          f" {(quarantined['ts'] - filled[0]) * 1000:.0f} ms; {len(after)} failed attempts,"
          f" run done in {result.elapsed_s:.2f}s")


def test_host_disk_full_before_the_run_fails_the_host_with_its_free_space(fresh_cluster,
                                                                          tmp_path):
    """The code bundle cannot be pushed: the host is failed with the clear message."""
    c = fresh_cluster(2)
    effects = tmp_path / "effects"
    effects.mkdir()
    inv = write_inventory(c, tmp_path / "inv.yaml", slots=2)
    with host_disk(c, 0, "4m") as disk:
        disk.fill(leave_bytes=12 * 1024)
        result = sshmr.run(Fault(), payloads(effects, 6, sleep=0.05), inventory=str(inv),
                           runs_dir=str(tmp_path / "runs"), max_retries=1, **FAST)
        assert_nothing_lost(result, 1, effects, cluster=c, dead_hosts=[0])
    assert result.ok
    host = hosts_of(result.run_dir)[c.hosts[0].address]
    assert host["state"] == "failed"
    _assert_disk_message(host["error"], c.hosts[0].address, c.hosts[0].workdir)
    assert re.search(r"\((\d+ bytes|\d+(\.\d)? KB) free\)", host["error"]), host["error"]
    assert {j.host for j in result} == {c.hosts[1].address}


# ------------------------------------------------------------ fault 4: the master's disk


def _integrity(run_dir: Path) -> None:
    db = sqlite3.connect(f"file:{run_dir / 'journal.sqlite'}?mode=ro", uri=True)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()


def test_master_disk_full_stops_cleanly_and_resume_finishes(fresh_cluster, tmp_path):
    c = fresh_cluster(2)
    effects = tmp_path / "effects"
    effects.mkdir()
    runs = tmp_path / "runs"
    runs.mkdir()
    inv = write_inventory(c, tmp_path / "inv.yaml", slots=2)
    # big results go to files in the run dir, small ones into the journal
    items = payloads(effects, 30, prefix="big", sleep=0.1, result_kb=512)
    items += payloads(effects, 60, prefix="small", sleep=0.05)
    inputs = write_inputs(tmp_path / "inputs.txt", items)
    with SmallDisk(runs, "24m") as disk:
        cli = start_cli("run", "-i", str(inv), FAULT_JOB, str(inputs), "--max-retries", "2",
                        "--runs-dir", str(runs), "--seed", "4", cwd=tmp_path)
        try:
            wait_for(lambda: sum(len(v) for v in launches(effects).values()) >= 12, 30,
                     "the first jobs")
            disk.fill()
            code = cli.wait(60)
        finally:
            stop_process(cli)
        out = cli_output(tmp_path)
        run_dir = the_run_dir(runs)
        run_id = run_dir.name
        assert code == 2, out
        errors = [line for line in out.splitlines() if line.startswith("sshmr: error:")]
        assert len(errors) == 1, out
        assert errors[0].startswith(f"sshmr: error: {NO_SPACE} the runs dir {runs} ("), out
        assert errors[0].endswith(f"free space there, then 'sshmr resume {run_id}'"), out
        assert "Traceback" not in out
        # every agent was told to stop (the fixture checks no process is left on a host);
        # the hosts keep the run dir, for the resume
        wait_for(lambda: not c.descendants(), 10, "the agents to exit")
        assert any(Path(h.workdir, "runs", run_id).is_dir() for h in c.hosts)
        _integrity(run_dir)
        before = result_of(run_dir)
        assert before.state == "running"
        committed = {j.job: j.result for j in before if j.state is JobState.SUCCEEDED}
        assert committed, "nothing was committed before the disk filled"
        for job in before:  # every committed result readable and right
            if job.state is JobState.SUCCEEDED:
                _check_result(job)

        disk.free()
        resumed = sshmr_cli("resume", run_id, "--runs-dir", str(runs), "--json", cwd=tmp_path,
                            timeout=120)
        assert resumed.returncode == 0, resumed.stderr
        assert json.loads(resumed.stdout.splitlines()[-1])["succeeded"] == 90
        _integrity(run_dir)
        result = result_of(run_dir)
        assert_nothing_lost(result, 2, effects, cluster=c)
        assert result.ok and len(result) == 90
        for job in result:
            _check_result(job)
        assert all(result.jobs[j - 1].result == r for j, r in committed.items())
    print(f"\nmaster disk full: {len(committed)}/90 jobs committed before it stopped; resumed"
          f" to 90/90 in {result.elapsed_s:.2f}s in all\n{out.strip()}")


def _check_result(job) -> None:
    spec = json.loads(job.input)
    if spec.get("result_kb"):
        assert job.result == blob(spec["result_kb"] * 1024), job.job
    else:
        assert job.result["k"] == spec["k"], job.job
