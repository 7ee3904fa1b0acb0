"""MapReduce end to end: exact output in local mode and on real sshd hosts (R = 1 and 8),
byte-identical between the two, several steps, gzip, hooks, counters, bad input, the
output directory rules, the CLI, and resume after the master is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS / "jobs"))

from helpers import EXAMPLES, JOBS, sshmr_cli, write_inventory  # noqa: E402
from jobs_mr import (  # noqa: E402
    Faulty,
    InitFinal,
    LengthsThenTotals,
    ManyValues,
    WordCount,
    WordCountNoCombiner,
)
from mrcheck import make_text, output_bytes, read_output, word_counts  # noqa: E402

import sshmr  # noqa: E402
from sshmr.record.journal import Journal  # noqa: E402

FAST = {"kill_grace": 0.5, "heartbeat": 0.2, "host_silence": 3.0}


def _inputs(tmp_path: Path) -> list[Path]:
    return [make_text(tmp_path / "a.txt", 3000, 1), make_text(tmp_path / "b.txt", 50, 2),
            make_text(tmp_path / "c.txt.gz", 800, 3, gz=True)]


@pytest.mark.parametrize("reducers", [1, 8])
def test_local_wordcount_is_exact(tmp_path, reducers):
    inputs = _inputs(tmp_path)
    result = sshmr.run(WordCount(), [str(p) for p in inputs], output=str(tmp_path / "out"),
                       reducers=reducers, split="bytes:20K", runs_dir=str(tmp_path / "runs"))
    assert result.ok, result.message
    assert read_output(tmp_path / "out", reducers) == word_counts(*inputs)
    assert result.output == str(tmp_path / "out")
    expected = word_counts(*inputs)
    assert result.counters["test"]["reduced keys"] == len(expected)
    assert result.counters["sshmr"]["reduce output records"] == len(expected)
    assert result.counters["sshmr"]["map input records"] == 3850
    assert result.summary()["output"] == str(tmp_path / "out")


@pytest.mark.parametrize("reducers", [1, 8])
def test_ssh_wordcount_is_exact_and_byte_identical_to_local(cluster, tmp_path, reducers):
    inputs = _inputs(tmp_path)
    inv = write_inventory(cluster, tmp_path / "inv.yaml", slots=4)
    local = sshmr.run(WordCountNoCombiner(), [str(p) for p in inputs], reducers=reducers,
                      output=str(tmp_path / "local"), split="bytes:20K",
                      runs_dir=str(tmp_path / "runs"))
    remote = sshmr.run(WordCountNoCombiner(), [str(p) for p in inputs], reducers=reducers,
                       output=str(tmp_path / "ssh"), split="bytes:20K", inventory=str(inv),
                       runs_dir=str(tmp_path / "runs"), **FAST)
    assert local.ok and remote.ok, (local.message, remote.message)
    assert read_output(tmp_path / "ssh", reducers) == word_counts(*inputs)
    assert output_bytes(tmp_path / "ssh") == output_bytes(tmp_path / "local")
    names = {h.name for h in sshmr.load_inventory(str(inv)).hosts}
    assert {j.host for j in remote.jobs} <= names  # the tasks really ran on the sshd hosts
    _assert_each_host_started_once(remote.run_dir)


def _assert_each_host_started_once(run_dir: str) -> None:
    """The phases ran on the same host sessions: a host's agent came up once, and again
    only after it was lost."""
    j = Journal(run_dir, readonly=True)
    try:
        rows = j.db.execute("SELECT host, kind FROM events WHERE kind IN"
                            " ('host_up', 'host_down', 'host_failed')").fetchall()
        assert len(j.meta()["mapreduce"]["phases"]) >= 2
    finally:
        j.close()
    ups = {h: sum(1 for host, k in rows if host == h and k == "host_up") for h, _ in rows}
    assert ups and all(n == 1 + sum(1 for host, k in rows if host == h and k != "host_up")
                       for h, n in ups.items()), rows


def test_three_steps_and_a_map_only_last_step(tmp_path):
    text = make_text(tmp_path / "in.txt", 2000, 5)
    result = sshmr.run(LengthsThenTotals(), [str(text)], output=str(tmp_path / "out"),
                       reducers=3, split="bytes:16K", runs_dir=str(tmp_path / "runs"))
    assert result.ok, result.message
    expected: dict[str, int] = {}
    for line in text.read_text().splitlines():
        for word in line.split():
            key = f"len-{len(word)}"
            expected[key] = expected.get(key, 0) + 1
    assert read_output(tmp_path / "out") == expected
    j = Journal(result.run_dir, readonly=True)
    try:
        mr = j.meta()["mapreduce"]
    finally:
        j.close()
    assert [(p["step"], p["phase"]) for p in mr["phases"]] == [
        (0, "map"), (0, "reduce"), (1, "map"), (1, "reduce"), (2, "map")]
    _assert_each_host_started_once(result.run_dir)


def test_init_and_final_hooks(tmp_path):
    text = make_text(tmp_path / "in.txt", 1000, 6)
    result = sshmr.run(InitFinal(), [str(text)], output=str(tmp_path / "out"), reducers=1,
                       split="bytes:10K", runs_dir=str(tmp_path / "runs"))
    assert result.ok, result.message
    out = read_output(tmp_path / "out")
    assert out["lines"] == 1000
    assert out["~reducer-keys"] == 1  # the one reducer saw one key: "lines"
    assert len([j for j in result.jobs if '"map"' in json.dumps(j.input)]) == 3


def test_a_reducer_streams_a_key_with_a_million_values(tmp_path):
    (tmp_path / "in.txt").write_text("500000\n500000\n")
    result = sshmr.run(ManyValues(), [str(tmp_path / "in.txt")], output=str(tmp_path / "out"),
                       reducers=1, sort_memory=1 << 20, split="bytes:1",
                       runs_dir=str(tmp_path / "runs"))
    assert result.ok, result.message
    assert read_output(tmp_path / "out") == {"k": [1_000_000, 2 * sum(range(500_000))]}


def _failed_run(tmp_path: Path, lines: list[str], **options):
    (tmp_path / "good.txt").write_text("a b c\n" * 100)
    (tmp_path / "bad.txt").write_text("\n".join(lines) + "\n")
    result = sshmr.run(Faulty(), [str(tmp_path / "good.txt"), str(tmp_path / "bad.txt")],
                       output=str(tmp_path / "out"), reducers=2,
                       runs_dir=str(tmp_path / "runs"), max_retries=1, **options)
    assert result.state == "failed" and not result.ok
    assert not (tmp_path / "out" / "_SUCCESS").exists()
    return result


def test_a_mapper_yielding_a_non_json_key_fails_naming_the_task_and_input(tmp_path):
    result = _failed_run(tmp_path, ["!bad-key"])
    assert "map task 1 of step 1 (" in result.message and "bad.txt" in result.message
    assert "not JSON-serialisable" in result.message and "{1, 2}" in result.message
    good = [j for j in result.jobs if "good.txt" in json.dumps(j.input)]
    assert [j.state.value for j in good] == ["SUCCEEDED"]  # nothing else lost
    failed = [j for j in result.jobs if j.state is sshmr.JobState.FAILED]
    assert len(failed) == 1 and failed[0].attempts == 2  # max_retries applies per task


def test_a_reducer_that_raises_fails_its_task_only(tmp_path):
    result = _failed_run(tmp_path, ["!raise"])
    assert "reduce task" in result.message and "partition" in result.message
    assert "ValueError: the reducer was told to raise" in result.message
    assert 'key "!raise"' in result.message
    assert sum(j.state is sshmr.JobState.SUCCEEDED for j in result.jobs) == len(result) - 1


def test_input_that_is_not_utf8_fails_naming_the_input_and_line(tmp_path):
    (tmp_path / "good.txt").write_text("a b\n")
    (tmp_path / "latin1.txt").write_bytes("ok\ncaf\xe9\n".encode("latin-1"))
    result = sshmr.run(WordCount(), [str(tmp_path / "good.txt"), str(tmp_path / "latin1.txt")],
                       output=str(tmp_path / "out"), reducers=1, max_retries=0,
                       runs_dir=str(tmp_path / "runs"))
    assert result.state == "failed"
    assert "latin1.txt is not valid UTF-8 text at line 2" in result.message, result.message


def test_output_directory_rules_and_the_cli(tmp_path):
    make_text(tmp_path / "in.txt", 500, 9)
    args = ("run", f"{EXAMPLES}/wordcount.py:WordCount", "in.txt", "--output", "out",
            "--reducers", "3")
    first = sshmr_cli(*args, "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout.splitlines()[-1])
    assert summary["output"] == str(tmp_path / "out") and summary["counters"]["sshmr"]
    assert len(read_output(tmp_path / "out", 3)) > 300
    again = sshmr_cli(*args, cwd=tmp_path)
    assert again.returncode == 2
    assert again.stderr.strip().splitlines()[-1] == (
        "sshmr: error: output directory out already exists; choose another --output or pass"
        " --overwrite to replace it")
    (tmp_path / "out" / "stale").write_text("x")
    over = sshmr_cli(*args, "--reducers", "1", "--overwrite", "-q", cwd=tmp_path)
    assert over.returncode == 0, over.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["_SUCCESS", "part-00000"]
    bad = sshmr_cli("run", f"{JOBS}/jobs_mr.py:Faulty", "in.txt", cwd=tmp_path)
    assert bad.returncode == 2 and "give an output directory" in bad.stderr


def test_resume_continues_a_mapreduce_run_at_the_phase_where_its_master_died(tmp_path):
    """The master is killed (SIGKILL) during the reduce phase; ``sshmr resume`` finishes."""
    inputs = [make_text(tmp_path / f"in{i}.txt", 400, i) for i in range(3)]
    (tmp_path / "slow").mkdir()
    env = dict(os.environ, SLOW_DIR=str(tmp_path / "slow"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "sshmr", "run", f"{JOBS}/jobs_mr.py:SlowReduce",
         *[p.name for p in inputs], "--output", "out", "--reducers", "4", "--max-retries", "2",
         "-q"], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and len(list((tmp_path / "slow").iterdir())) < 2:
            time.sleep(0.05)
        assert len(list((tmp_path / "slow").iterdir())) >= 2, "the reducers never started"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert not (tmp_path / "out" / "_SUCCESS").exists()
    done = subprocess.run([sys.executable, "-m", "sshmr", "resume", "--json"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert read_output(tmp_path / "out", 4) == word_counts(*inputs)
    (run_dir,) = [p for p in (tmp_path / "sshmr-runs").iterdir() if (p / Journal.FILE).exists()]
    j = Journal(str(run_dir), readonly=True)
    try:
        kinds = [e[0] for e in j.db.execute("SELECT kind FROM events ORDER BY id")]
        map_launches = j.db.execute("SELECT SUM(launches) FROM jobs WHERE payload LIKE"
                                    " '%\"phase\":\"map\"%'").fetchone()[0]
    finally:
        j.close()
    assert "resumed" in kinds
    assert map_launches == 3  # the map phase had finished: it was not run again
