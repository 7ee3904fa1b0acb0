"""``sshmr replay``: a job of a run on the sshd cluster, run again here, gives the run's
recorded result (the same bytes) or its recorded traceback (the same frames, lines and
exception, the code's location aside); a MapReduce map task replays over its split."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "jobs"))

from helpers import sshmr_cli, write_inventory  # noqa: E402
from jobs_basic import Echo, RaiseOnOdd  # noqa: E402
from jobs_mr import WordCount  # noqa: E402
from mrcheck import make_text  # noqa: E402

import sshmr  # noqa: E402
from sshmr.engine.replay import portable_traceback  # noqa: E402


def _db(run_dir: str) -> sqlite3.Connection:
    db = sqlite3.connect(f"file:{run_dir}/journal.sqlite?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    return db


def test_replay_reproduces_a_remote_success_and_failure(cluster, tmp_path):
    inv = write_inventory(cluster, tmp_path / "inv.yaml", slots=1)
    runs = tmp_path / "runs"
    result = sshmr.run(RaiseOnOdd(), ["4", "7"], inventory=str(inv), runs_dir=str(runs),
                       max_retries=0)
    assert [j.state.value for j in result.jobs] == ["SUCCEEDED", "FAILED"]
    db = _db(result.run_dir)
    try:
        recorded = db.execute("SELECT result FROM jobs WHERE id = 1").fetchone()[0]
        tb = db.execute("SELECT traceback FROM attempts WHERE job = 2").fetchone()[0]
    finally:
        db.close()
    ok = sshmr_cli("replay", "1", "--runs-dir", str(runs), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == recorded + "\n"  # byte for byte
    bad = sshmr_cli("replay", result.run_id, "2", "--attempt", "1", "--runs-dir", str(runs),
                    cwd=tmp_path)
    assert bad.returncode == 1, bad.stderr
    assert "ValueError: odd input 7" in bad.stdout
    assert bad.stdout == portable_traceback(tb), (bad.stdout, tb)
    assert "about to fail on 7" in bad.stderr  # the job's own output, out of the way
    assert "was FAILED on" in bad.stderr
    missing = sshmr_cli("replay", "9", "--runs-dir", str(runs), cwd=tmp_path)
    assert missing.returncode != 0 and "has no job 9" in missing.stderr


def test_replay_of_a_file_payload_and_an_executor_with_state(cluster, tmp_path):
    inv = write_inventory(cluster, tmp_path / "inv.yaml", slots=1)
    runs = tmp_path / "runs"
    data = tmp_path / "in.txt"
    data.write_text("alpha\nbeta\n")
    result = sshmr.run(sshmr_file_job(), files=[str(data)], split="files", inventory=str(inv),
                       runs_dir=str(runs))
    assert result.ok
    out = sshmr_cli("replay", "1", "--runs-dir", str(runs), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == result.jobs[0].result == {"name": "in.txt", "words": 2}
    echo = Echo()
    echo.extra = {"given": 1}  # shipped as the instance's state
    result = sshmr.run(echo, [{"x": 1}], inventory=str(inv), runs_dir=str(runs))
    out = sshmr_cli("replay", result.run_id, "1", "--runs-dir", str(runs), cwd=tmp_path)
    assert out.returncode == 0
    assert json.loads(out.stdout)["payload"] == {"x": 1}


def sshmr_file_job():
    from jobs_basic import FileWords  # returns the file's text

    return FileWords()


def test_replay_of_a_mapreduce_map_task(cluster, tmp_path):
    inv = write_inventory(cluster, tmp_path / "inv.yaml", slots=2)
    runs = tmp_path / "runs"
    text = make_text(tmp_path / "words.txt", 2000, seed=3)
    result = sshmr.run(WordCount(), [str(text)], output=str(tmp_path / "out"), reducers=2,
                       split="bytes:8K", inventory=str(inv), runs_dir=str(runs))
    assert result.ok, result.message
    out = sshmr_cli("replay", "1", "--runs-dir", str(runs), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    path = Path(out.stdout.split(" (")[0])
    assert path.is_file() and path.stat().st_size > 0
    assert not (tmp_path / "mr-out").exists()  # nothing written beside the input

