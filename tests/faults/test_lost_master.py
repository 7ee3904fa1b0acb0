"""The master dies (kill -9) or hangs (SIGSTOP) mid-job: the host agent lets the job
finish, commits its result on the host's disk and exits; ``resume`` then collects it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from checks import assert_nothing_lost, journal, launches, the_run_dir, wait_for  # noqa: E402
from helpers import JOBS, write_inventory  # noqa: E402

import sshmr  # noqa: E402
from sshmr.remote import protocol  # noqa: E402

MASTER_GRACE = 2.0
JOB_SECONDS = 2.0
HOST = 1


def _start_master(inv: Path, runs: Path, items: list[dict]) -> subprocess.Popen:
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(JOBS)!r})\n"
        "import sshmr, jobs_faults\n"
        f"sshmr.run(jobs_faults.Fault(), {items!r}, inventory={str(inv)!r},"
        f" runs_dir={str(runs)!r}, max_retries=0, master_grace={MASTER_GRACE},"
        " heartbeat=0.2, kill_grace=0.5, host_silence=1.5)\n"
    )
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_agent_finishes_the_job_commits_it_and_exits_without_its_master(cluster, tmp_path,
                                                                        how):
    effects = tmp_path / "effects"
    effects.mkdir()
    runs = tmp_path / "runs"
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[HOST], slots=1)
    items = [{"k": "orphan", "d": str(effects), "sleep": JOB_SECONDS},
             # still pending when the master goes: never started by the orphaned agent.
             # (It also gives resume something to run: a resume with nothing left to run
             # never finishes, see the report.)
             {"k": "pending", "d": str(effects), "sleep": 0.05}]
    master = _start_master(inv, runs, items)
    try:
        wait_for(lambda: launches(effects).get("orphan"), 30, "the job to start")
        time.sleep(0.3)
        lost_at = time.monotonic()
        master.send_signal(signal.SIGKILL if how == "kill" else signal.SIGSTOP)
        # the agent (and its worker) exit once the job is done and the master is given up
        limit = MASTER_GRACE + JOB_SECONDS + 1.0
        wait_for(lambda: not cluster.descendants(HOST), limit, "the agent to exit", 0.05)
        gone_after = time.monotonic() - lost_at
    finally:
        if master.poll() is None:
            master.send_signal(signal.SIGKILL)
        master.wait(10)
    print(f"\nmaster {how} -> agent exited {gone_after:.2f}s later (job had "
          f"{JOB_SECONDS - 0.3:.1f}s to go, master_grace {MASTER_GRACE}s)")
    assert gone_after > JOB_SECONDS - 0.3 - 0.2  # it did not kill the job

    run_dir = the_run_dir(runs)
    assert list(launches(effects)) == ["orphan"]
    db = journal(run_dir)
    try:
        (attempt,) = db.execute("SELECT id, state FROM attempts").fetchall()
        job_states = [r[0] for r in db.execute("SELECT state FROM jobs ORDER BY id")]
    finally:
        db.close()
    assert job_states == ["RUNNING", "PENDING"]  # what the dead master last knew
    adir = Path(protocol.attempt_dir(
        str(Path(cluster.hosts[HOST].workdir, "runs", run_dir.name)), attempt["id"]))
    meta = json.loads((adir / protocol.DONE_FILE).read_text())
    data = protocol.inline_result(meta)  # a small result is committed inside done.json
    assert data is not None and not (adir / protocol.RESULT_FILE).exists()
    assert meta["status"] == "ok" and protocol.check_result(meta, data) is None
    value = json.loads(data)
    assert value["k"] == "orphan"
    assert value["ended"] - value["started"] >= JOB_SECONDS  # ran to its end

    # resume collects the committed result: the job is never launched again
    result = sshmr.resume(run_dir.name, runs_dir=str(runs))
    assert_nothing_lost(result, 0, effects, cluster=cluster)
    assert result.ok and result.results[0] == value
    assert [j.attempts for j in result] == [1, 1]
    assert {k: len(v) for k, v in launches(effects).items()} == {"orphan": 1, "pending": 1}
