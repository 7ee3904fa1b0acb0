"""Unmodified mrjob jobs run by sshmr: mrjob's own examples (``mrjob.examples``), locally
and on the sshd cluster whose hosts run python with ``-S`` (no site-packages: no mrjob,
so the shipped copy is what runs), compared line for line with ``-r inline``; a
user-defined protocol, counters and status; a job that raises; the refusals."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import mrjob.examples
import pytest

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS))

from helpers import JOBS, sshmr_cli, write_inventory  # noqa: E402
from mrcheck import make_text  # noqa: E402

from sshmr.record.journal import Journal  # noqa: E402

EXAMPLES = Path(mrjob.examples.__file__).parent
DOCS = sorted(str(p) for p in (EXAMPLES / "docs-to-classify").iterdir())
FAST = ("--max-retries", "1")


def _inputs(tmp_path: Path) -> list[str]:
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(b"Windows line one\r\nand the second, fox\r\n")
    return [str(make_text(tmp_path / "a.txt", 1500, 1)), str(crlf),
            str(make_text(tmp_path / "b.txt.gz", 400, 2, gz=True))]


# (module, class, inputs, job options after --, extra sshmr options)
CASES = {
    "word_freq_count": ("mr_word_freq_count", "MRWordFreqCount", None, [], []),
    "most_used_word (FILES, 2 steps, JSONValueProtocol)": (
        "mr_most_used_word", "MRMostUsedWord", None, [], []),
    "most_used_word --stop-words-file (add_file_arg)": (
        "mr_most_used_word", "MRMostUsedWord", None, ["--stop-words-file", "STOP"], []),
    "next_word_stats (SORT_VALUES, 2 steps)": (
        "mr_next_word_stats", "MRNextWordStats", None, [], []),
    "log_sampler (passthrough, ReprProtocol, RawValueProtocol)": (
        "mr_log_sampler", "MRLogSampler", None, ["--sample-size", "100000"], []),
    "wc (mapper_final)": ("mr_wc", "MRWordCountUtility", None, [], []),
    "count_lines_right (mapper_init)": ("mr_count_lines_right", "MRCountLinesRight", None,
                                        [], []),
    "nick_nack (Hadoop-only settings ignored)": ("mr_nick_nack", "MRNickNack", None, [], []),
    "text_classifier (mapper_raw, 4 steps, passthrough)": (
        "mr_text_classifier", "MRTextClassifier", DOCS, ["--min-df", "2"], ["--reducers", "1"]),
}


def _inline(module: str, inputs: list[str], args: list[str], cwd: Path) -> list[bytes]:
    proc = subprocess.run([sys.executable, "-m", f"mrjob.examples.{module}", "-r", "inline",
                           "--no-conf", *inputs, *args], cwd=cwd, capture_output=True,
                          timeout=300, env=dict(os.environ, PYTHONHASHSEED="0"))
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    return sorted(proc.stdout.splitlines())


def _output(out: Path) -> list[bytes]:
    assert (out / "_SUCCESS").exists()
    parts = sorted(out.glob("part-*"))
    assert parts
    return sorted(line for p in parts for line in p.read_bytes().splitlines())


def _run_case(case: str, tmp_path: Path, inventory: list[str]) -> None:
    module, cls, inputs, args, extra = CASES[case]
    inputs = inputs or _inputs(tmp_path)
    stop = tmp_path / "stop.txt"
    stop.write_text("the\nand\nw1\nw2\n")
    args = [str(stop) if a == "STOP" else a for a in args]
    proc = sshmr_cli("run", *inventory, f"mrjob.examples.{module}:{cls}", *inputs,
                     "--output", str(tmp_path / "out"), "--runs-dir", str(tmp_path / "runs"),
                     *FAST, *extra, "--", *args, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = _inline(module, inputs, args, tmp_path)
    got = _output(tmp_path / "out")
    if module == "mr_text_classifier":  # it iterates a set: dict order and float sums
        got, expected = _canonical(got), _canonical(expected)  # follow the hash seed
    assert got == expected
    assert len(expected) > 0
    if module == "mr_nick_nack":
        assert "ignoring HADOOP_OUTPUT_FORMAT, LIBJARS" in proc.stderr


def _canonical(lines: list[bytes]) -> list[str]:
    def rounded(x):
        if isinstance(x, float):
            return round(x, 9)
        if isinstance(x, dict):
            return {k: rounded(v) for k, v in x.items()}
        if isinstance(x, list):
            return [rounded(v) for v in x]
        return x
    out = []
    for line in lines:
        key, value = line.split(b"\t")
        out.append(json.dumps([json.loads(key), rounded(json.loads(value))], sort_keys=True))
    return sorted(out)


@pytest.mark.parametrize("case", list(CASES))
def test_example_locally_matches_inline(case, tmp_path):
    _run_case(case, tmp_path, [])


@pytest.fixture
def no_site_inventory(cluster, tmp_path):
    """An inventory whose hosts run ``python -S``: mrjob is not importable there."""
    wrapper = tmp_path / "python-no-site"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    check = subprocess.run([str(wrapper), "-c", "import mrjob"], capture_output=True)
    assert check.returncode != 0  # really no mrjob on the hosts
    return write_inventory(cluster, tmp_path / "inv.yaml", slots=2, python=str(wrapper))


@pytest.mark.parametrize("case", list(CASES))
def test_example_on_sshd_hosts_matches_inline(case, no_site_inventory, tmp_path):
    _run_case(case, tmp_path, ["-i", str(no_site_inventory)])


def test_user_defined_protocol_counters_and_status(no_site_inventory, tmp_path):
    data = tmp_path / "nums.txt"
    data.write_text("".join(f"k{i % 37}\t{i},{i % 5},{i % 3}\n" for i in range(3000)))
    target = f"{JOBS / 'jobs_mrjob.py'}:SumsAndCounts"
    proc = sshmr_cli("run", "-i", str(no_site_inventory), target, str(data), "--output",
                     str(tmp_path / "out"), "--runs-dir", str(tmp_path / "runs"), "--json",
                     "--split", "bytes:8K", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    inline = subprocess.run([sys.executable, str(JOBS / "jobs_mrjob.py"), "-r", "inline",
                             "--no-conf", str(data)], capture_output=True, check=True)
    got = _output(tmp_path / "out")
    assert got == sorted(inline.stdout.splitlines())
    assert len(got) == 37 and got[0].startswith(b"k0\t")
    counters = json.loads(proc.stdout.splitlines()[-1])["counters"]
    assert counters["csv"] == {"records": 3000}
    assert counters["mrjob status"]["reducing"] >= 1
    status = sshmr_cli("status", "--json", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert json.loads(status.stdout)["mapreduce"]["counters"]["csv"] == {"records": 3000}


def test_job_that_raises_is_retried_and_its_traceback_kept(tmp_path):
    text = make_text(tmp_path / "in.txt", 300, 3)
    target = f"{JOBS / 'jobs_mrjob.py'}:FailsOnKey"
    proc = sshmr_cli("run", target, str(text), "--output", str(tmp_path / "out"),
                     "--runs-dir", str(tmp_path / "runs"), "--max-retries", "2",
                     "--reducers", "1", "--", "--fail-on", "alpha", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "ValueError: asked to fail on 'alpha'" in proc.stderr
    assert not (tmp_path / "out" / "_SUCCESS").exists()
    run_dir = next((tmp_path / "runs").glob("2*"))
    j = Journal(str(run_dir), readonly=True)
    try:
        rows = j.db.execute("SELECT error, traceback FROM attempts WHERE state = 'FAILED'"
                            ).fetchall()
    finally:
        j.close()
    assert len(rows) == 3  # 1 + max_retries attempts of the one failing reduce task
    for error, tb in rows:
        assert "reduce task 0 of step 2" in error and "asked to fail on 'alpha'" in error
        assert "jobs_mrjob.py" in tb and "raise ValueError(f\"asked to fail on {word!r}\")" in tb


def test_mr_boom_fails_in_mapper_init(tmp_path):
    text = make_text(tmp_path / "in.txt", 10, 3)
    proc = sshmr_cli("run", "mrjob.examples.mr_boom:MRBoom", str(text), "--output",
                     str(tmp_path / "out"), "--runs-dir", str(tmp_path / "runs"),
                     "--max-retries", "0", cwd=tmp_path)
    assert proc.returncode == 1
    assert "map task 0 of step 1" in proc.stderr and "Exception: BOOM" in proc.stderr


@pytest.mark.parametrize("module, cls, args, message", [
    ("mr_grep", "MRGrepJob", ["-e", "fox"], "uses mapper_cmd, a shell command"),
    ("mr_words_containing_u_freq_count", "MRWordsContainingUFreqCount", [],
     "uses mapper_pre_filter, a shell command"),
    ("mr_spark_wordcount", "MRSparkWordcount", [], "is a SparkStep: sshmr runs MRStep steps"),
    ("mr_log_sampler", "MRLogSampler", [], "You must specify the --sample-size"),
    ("mr_log_sampler", "MRLogSampler", ["--sample-size", "x"], "invalid int value: 'x'"),
    ("mr_most_used_word", "MRMostUsedWord", ["--stop-words-file", "missing.txt"],
     "--stop-words-file 'missing.txt': no such file"),
])
def test_refusals_are_one_line(tmp_path, module, cls, args, message):
    text = make_text(tmp_path / "in.txt", 10, 3)
    proc = sshmr_cli("run", f"mrjob.examples.{module}:{cls}", str(text), "--output",
                     str(tmp_path / "out"), "--runs-dir", str(tmp_path / "runs"), "--", *args,
                     cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("sshmr: error: ") and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()  # refused before anything started


def test_options_after_dashes_need_an_mrjob_job(tmp_path):
    proc = sshmr_cli("run", f"{JOBS / 'jobs_mr.py'}:WordCount", "in.txt", "--output", "out",
                     "--", "--x", cwd=tmp_path)
    assert proc.returncode == 2
    assert "options after -- (--x) are for mrjob jobs" in proc.stderr
