"""The master killed at random (issue 12, fault 5): ``sshmr run`` and then each ``sshmr
resume`` get SIGKILL at seeded random times, until the run finishes.

20 kills in all, on runs of the same workload (many small jobs, so journal commits are
frequent, and a few 6 MiB results, so downloads take a while; some kills wait for a
download in progress): up to 10 per run, alternately with ``--max-retries 0`` (no job may
start twice) and ``--max-retries 2``, until 20 are done (two runs, or more when one finishes
before its 10th kill). The seed is printed; ``SSHMR_KILL_SEED`` replays it.
``bench/bench_master_kills.py --kills N`` runs longer variants.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from checks import (  # noqa: E402
    FAULT_JOB,
    assert_nothing_lost,
    cli_output,
    events_of,
    launches,
    payloads,
    result_of,
    start_cli,
    stop_process,
    wait_for,
    write_inputs,
)
from helpers import write_inventory  # noqa: E402
from jobs_faults import blob  # noqa: E402

from sshmr import JobState  # noqa: E402
from sshmr.record.runs import RunLock  # noqa: E402

BIG_KB = 6144


def workload(effects: Path, small: int = 60, big: int = 12) -> list[dict]:
    """``small`` short jobs with a big result every ``small // big`` jobs (jobs are
    dispatched in order, so downloads go on all through the run)."""
    bigs = payloads(effects, big, prefix="big", sleep=0.2, result_kb=BIG_KB)
    items = []
    for i, item in enumerate(payloads(effects, small, prefix="s", sleep=0.05)):
        if bigs and i % max(1, small // big) == 0:
            items.append(bigs.pop())
        items.append(item)
    return items + bigs


def _run_dir(runs: Path) -> Path | None:
    found = [p for p in runs.iterdir() if (p / "journal.sqlite").exists()] if runs.exists() else []
    return found[0] if found else None


def _downloading(runs: Path) -> bool:
    run_dir = _run_dir(runs)
    return run_dir is not None and any((run_dir / "results").glob(".fetch-*"))


def kill_until_done(cluster, tmp: Path, inv: Path, items: list[dict], max_retries: int,
                    kills: int, rng: random.Random) -> tuple[Path, Counter]:
    """Run the workload through the CLI, SIGKILL its master ``kills`` times at random
    (each time waiting for the orphaned agents to finish what they run), resume after each;
    return the run dir and what the kills hit."""
    runs = tmp / "runs"
    inputs = write_inputs(tmp / "inputs.txt", items)
    stats: Counter = Counter()
    proc = start_cli("run", "-i", str(inv), FAULT_JOB, str(inputs), "-q", "--runs-dir",
                     str(runs), "--max-retries", str(max_retries), "--seed", "5", cwd=tmp)
    try:
        while stats["kills"] < kills:
            target = rng.choice(["time", "time", "download"])
            # at a random time; or as soon as a result is being downloaded (within 10 s:
            # a master needs a second or two to start and connect)
            deadline = time.monotonic() + rng.uniform(0.4, 2.5 if target == "time" else 10)
            hit = False
            while time.monotonic() < deadline and proc.poll() is None:
                if target == "download" and _downloading(runs):
                    hit = True
                    break
                time.sleep(0.001)
            if proc.poll() is not None:
                break  # it finished before this kill
            proc.kill()
            proc.wait()
            stats["during_download"] += hit
            meta_ready = _run_dir(runs) is not None and _jobs_recorded(_run_dir(runs))
            stats["kills"] += 1
            wait_for(lambda: not cluster.descendants(), 30, "the orphaned agents to finish")
            if not meta_ready:  # killed before the run recorded its jobs: start it again
                stats["restarted"] += 1
                if runs.exists():
                    _remove(runs)
                proc = start_cli("run", "-i", str(inv), FAULT_JOB, str(inputs), "-q",
                                 "--runs-dir", str(runs), "--max-retries", str(max_retries),
                                 "--seed", "5", cwd=tmp)
                continue
            proc = start_cli("resume", "--runs-dir", str(runs), "-q", cwd=tmp)
        code = proc.wait(180)
    finally:
        stop_process(proc)
    run_dir = _run_dir(runs)
    assert run_dir is not None
    if code == 2 and "already ended (done)" in cli_output(tmp):
        code = 0  # the last kill came after the run recorded its end: resume says so
    assert code in (0, 1), cli_output(tmp)
    assert "Traceback" not in cli_output(tmp), cli_output(tmp)
    return run_dir, stats


def _jobs_recorded(run_dir: Path) -> bool:
    import sqlite3

    try:
        db = sqlite3.connect(f"file:{run_dir / 'journal.sqlite'}?mode=ro", uri=True)
        try:
            return db.execute("SELECT COUNT(*) FROM meta WHERE key = 'config'").fetchone()[0] > 0
        finally:
            db.close()
    except sqlite3.Error:
        return False


def _remove(path: Path) -> None:
    subprocess.run(["rm", "-rf", "--", str(path)], check=True)


def check_history(run_dir: Path, effects: Path, max_retries: int, cluster) -> Counter:
    """Every job SUCCEEDED, its one result the expected one; max_retries 0: none started
    twice. (A job dispatched just before a kill but never started is no launch: resume
    sees that once the old agents are gone, and runs it.)"""
    result = result_of(run_dir)
    assert result.state in ("done",), (result.state, result.message)
    assert not RunLock.held(str(run_dir))
    assert_nothing_lost(result, max_retries, effects, cluster=cluster)
    counted = {k: len(v) for k, v in launches(effects).items()}
    outcome: Counter = Counter()
    for job in result:
        spec = json.loads(job.input)
        outcome[job.state.value] += 1
        assert job.state is JobState.SUCCEEDED, (job.job, job.state, job.error)
        if spec.get("result_kb"):
            assert job.result == blob(spec["result_kb"] * 1024), job.job
        else:
            assert job.result["k"] == spec["k"], job.job
        if max_retries == 0:
            assert counted[spec["k"]] == 1 and job.result.get("n", 1) == 1 if isinstance(
                job.result, dict) else counted[spec["k"]] == 1
    outcome["relaunched"] = sum(n - 1 for n in counted.values() if n > 1)
    outcome["adopted"] = len(events_of(run_dir, "adopted"))  # dispatches the kills lost
    outcome["collected"] = len(events_of(run_dir, "collected"))
    outcome["never_started"] = len(events_of(run_dir, "requeued"))
    return outcome


def test_master_killed_20_times_at_random_then_resumed(fresh_cluster, tmp_path):
    seed = int(os.environ.get("SSHMR_KILL_SEED", random.randrange(1 << 30)))
    print(f"\nmaster kills: seed {seed} (SSHMR_KILL_SEED={seed} replays it)")
    rng = random.Random(seed)
    c = fresh_cluster(2)
    inv = write_inventory(c, tmp_path / "inv.yaml", slots=2)
    started = time.monotonic()
    kills = 0
    for number in range(20):  # up to 10 kills a run; a run that finishes sooner: one more
        if kills >= 20:
            break
        max_retries = (0, 2)[number % 2]
        tmp = tmp_path / f"run{number}-retries{max_retries}"
        effects = tmp / "effects"
        effects.mkdir(parents=True)
        run_dir, stats = kill_until_done(c, tmp, inv, workload(effects), max_retries,
                                         min(10, 20 - kills), rng)
        outcome = check_history(run_dir, effects, max_retries, c)
        kills += stats["kills"]
        print(f"  run {number}, max_retries {max_retries}: {stats['kills']} kills"
              f" ({stats['during_download']} during a result download, {stats['restarted']}"
              f" before the jobs were recorded), jobs {dict(outcome)}")
    assert kills == 20
    print(f"  20 kills in {time.monotonic() - started:.1f}s")


def test_resume_adopts_an_attempt_whose_dispatch_the_killed_master_lost(fresh_cluster,
                                                                       tmp_path):
    """The journal lost the dispatch (as a kill before the flush loses it), the host ran
    it: resume journals it as a launch and takes its result; nothing runs twice."""
    import sqlite3

    c = fresh_cluster(1)
    effects = tmp_path / "effects"
    effects.mkdir()
    inv = write_inventory(c, tmp_path / "inv.yaml", slots=2)
    runs = tmp_path / "runs"
    inputs = write_inputs(tmp_path / "inputs.txt", payloads(effects, 4, sleep=1.0))
    proc = start_cli("run", "-i", str(inv), FAULT_JOB, str(inputs), "-q", "--runs-dir",
                     str(runs), "--max-retries", "2", cwd=tmp_path)
    try:
        wait_for(lambda: len(launches(effects)) >= 2, 30, "two jobs running")
        proc.kill()
        proc.wait()
    finally:
        stop_process(proc)
    wait_for(lambda: not c.descendants(), 30, "the orphaned agent to finish")
    run_dir = _run_dir(runs)
    db = sqlite3.connect(run_dir / "journal.sqlite")
    (attempt, job), *_ = db.execute("SELECT id, job FROM attempts ORDER BY id").fetchall()
    with db:  # what the kill would have lost: the dispatch of the first attempt
        db.execute("DELETE FROM attempts WHERE id = ?", (attempt,))
        db.execute("UPDATE jobs SET launches = launches - 1, state = 'PENDING' WHERE id = ?",
                   (job,))
    db.close()

    resumed = start_cli("resume", "--runs-dir", str(runs), "-q", cwd=tmp_path)
    assert resumed.wait(120) == 0, cli_output(tmp_path)
    result = result_of(run_dir)
    by_job = assert_nothing_lost(result, 2, effects, cluster=c)
    assert result.ok
    # (the kill itself may have lost the next dispatch too: adopted the same way)
    adopted = {(e["job"], e["attempt"]) for e in events_of(run_dir, "adopted")}
    assert (job, attempt) in adopted
    assert [(a["id"], a["state"]) for a in by_job[job]] == [(attempt, "SUCCEEDED")]
    assert {k: len(v) for k, v in launches(effects).items()} == {f"j{i}": 1 for i in range(4)}
