"""--engine spark: the same MapReduce jobs on Spark local[2], their output byte for byte
the engine's for the same --reducers (wordcount, the two-step topwords example, a
partition() override with counters and hooks, an mrjob example), a failing job named,
the per-task timeout, the output directory rules, the refusals and the run record.

One SparkContext serves every test here (a JVM costs seconds to start); the runs find it
as this process's active context."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS / "jobs"))
sys.path.insert(0, str(TESTS))

from helpers import EXAMPLES  # noqa: E402
from jobs_mr import Faulty, WordCount  # noqa: E402
from jobs_spark import ByLengthWithHooks, Sleepy  # noqa: E402
from mrcheck import make_text, output_bytes, read_output, word_counts  # noqa: E402

import sshmr  # noqa: E402
from sshmr.errors import ConfigError  # noqa: E402
from sshmr.record.journal import Journal  # noqa: E402

MASTER = "local[2]"


@pytest.fixture(scope="module")  # this file is its only user: the JVM goes when it ends
def spark():
    from sshmr.spark.context import new_context

    sc = new_context(MASTER, max_retries=3)
    yield sc
    sc.stop()


def _inputs(tmp_path: Path) -> list[str]:
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(b"Windows line one\r\nand the second, fox\r\nlone \r carriage\r\n"
                     b"no newline at the end")
    return [str(make_text(tmp_path / "a.txt", 3000, 1)), str(crlf),
            str(make_text(tmp_path / "c.txt.gz", 800, 3, gz=True))]


def _both(job, inputs, tmp_path: Path, reducers: int, name: str = "", **options):
    """The job on sshmr's engine (locally) and on Spark: both results."""
    runs = str(tmp_path / "runs")
    ours = sshmr.run(job, files=inputs, output=str(tmp_path / f"sshmr{name}"),
                     reducers=reducers, split="bytes:20K", runs_dir=runs, **options)
    assert ours.ok, ours.message
    spark = sshmr.run(job, files=inputs, output=str(tmp_path / f"spark{name}"),
                      reducers=reducers, runs_dir=runs, engine="spark", spark_master=MASTER,
                      **options)
    assert spark.ok, spark.message
    return ours, spark


@pytest.mark.parametrize("reducers", [1, 3])
def test_wordcount_is_byte_identical(spark, tmp_path, reducers):
    inputs = _inputs(tmp_path)
    ours, theirs = _both(WordCount(), inputs, tmp_path, reducers)
    assert output_bytes(tmp_path / "spark") == output_bytes(tmp_path / "sshmr")
    assert read_output(tmp_path / "spark", reducers) == word_counts(*map(Path, inputs))
    assert theirs.output == str(tmp_path / "spark")
    for group, name in [("test", "reduced keys"), ("sshmr", "reduce output records"),
                        ("sshmr", "map input records"), ("sshmr", "reduce groups")]:
        assert theirs.counters[group][name] == ours.counters[group][name], (group, name)


def test_two_step_topwords_example_is_byte_identical(spark, tmp_path):
    sys.path.insert(0, str(EXAMPLES))
    from topwords import TopWords

    inputs = _inputs(tmp_path)
    ours, theirs = _both(TopWords(), inputs, tmp_path, 2)
    assert output_bytes(tmp_path / "spark") == output_bytes(tmp_path / "sshmr")
    assert theirs.counters["input"] == ours.counters["input"] == {"lines": 3804}
    assert theirs.counters["output"] == ours.counters["output"]


def test_partition_override_hooks_and_counters(spark, tmp_path):
    inputs = _inputs(tmp_path)
    ours, theirs = _both(ByLengthWithHooks(), inputs, tmp_path, 4)
    assert output_bytes(tmp_path / "spark") == output_bytes(tmp_path / "sshmr")
    part = (tmp_path / "spark" / "part-00001").read_text().splitlines()
    assert all(len(line.split("\t")[0]) % 4 == 1 for line in part
               if not line.startswith('"~keys'))  # partition(): JSON length mod 4
    for group in ("words", "reducer"):
        assert theirs.counters[group] == ours.counters[group]
    assert theirs.counters["combiner"]["calls"] > 0


def test_mrjob_example_is_byte_identical(spark, tmp_path):
    from sshmr.mapreduce.mrjob_adapter import adapt

    module = "mrjob.examples.mr_most_used_word"
    __import__(module)
    stop = tmp_path / "stop.txt"
    stop.write_text("the\nand\nw1\nw2\n")
    adapted = adapt(sys.modules[module].MRMostUsedWord, ["--stop-words-file", str(stop)],
                    _inputs(tmp_path))
    _both(adapted.executor, adapted.inputs, tmp_path, 2, code=adapted.code)
    assert output_bytes(tmp_path / "spark") == output_bytes(tmp_path / "sshmr")
    assert b"".join(output_bytes(tmp_path / "spark").values()).strip()  # not empty


def test_mrjob_jobs_that_read_whole_files_are_refused(tmp_path):
    from sshmr.mapreduce.mrjob_adapter import adapt

    module = "mrjob.examples.mr_text_classifier"
    __import__(module)
    text = str(make_text(tmp_path / "a.txt", 5, 1))
    adapted = adapt(sys.modules[module].MRTextClassifier, [], [text])
    with pytest.raises(ConfigError, match="^MRTextClassifier uses mapper_raw, which reads whole"
                                          " input files: --engine spark hands tasks text"):
        sshmr.run(adapted.executor, files=adapted.inputs, code=adapted.code, engine="spark",
                  output=str(tmp_path / "out"), runs_dir=str(tmp_path / "runs"))
    __import__("mrjob.examples.mr_word_freq_count")
    adapted = adapt(sys.modules["mrjob.examples.mr_word_freq_count"].MRWordFreqCount, [],
                    [text + ".bz2"])
    with pytest.raises(ConfigError, match="reads .bz2 input as whole files"):
        sshmr.run(adapted.executor, files=adapted.inputs, code=adapted.code, engine="spark",
                  output=str(tmp_path / "out"), runs_dir=str(tmp_path / "runs"))


def test_a_job_that_raises_fails_naming_task_and_input(spark, tmp_path):
    text = tmp_path / "in.txt"
    text.write_text("a b c\n!raise\nd e\n")
    out = tmp_path / "out"
    result = sshmr.run(Faulty(), files=[str(text)], output=str(out), reducers=2,
                       runs_dir=str(tmp_path / "runs"), engine="spark", spark_master=MASTER)
    assert result.state == "failed" and not result.ok
    key_part = 0 if len('"!raise"') % 2 == 0 else 1
    assert "reduce task" in result.message and "of step 1" in result.message, result.message
    assert "map outputs), key \"!raise\": ValueError: the reducer was told to raise" in \
        result.message, result.message
    assert f"reduce task {key_part}" in result.message or "reduce task" in result.message
    assert not out.exists()  # a failed run leaves no output directory behind
    meta = Journal(result.run_dir, readonly=True).meta()
    assert meta["state"] == "failed" and meta["engine"] == "spark"


def test_a_map_task_error_names_the_input_split(spark, tmp_path):
    text = tmp_path / "in.txt"
    text.write_text("a b\n!bad-key\n")
    result = sshmr.run(Faulty(), files=[str(text)], output=str(tmp_path / "out"), reducers=1,
                       runs_dir=str(tmp_path / "runs"), engine="spark", spark_master=MASTER)
    assert result.state == "failed"
    assert f"map task 0 of step 1 ({text} bytes 0-" in result.message, result.message
    assert "not JSON-serialisable" in result.message


def test_timeout_is_an_alarm_in_each_task(spark, tmp_path):
    text = tmp_path / "in.txt"
    text.write_text("x\n")
    result = sshmr.run(Sleepy(), files=[str(text)], output=str(tmp_path / "out"),
                       runs_dir=str(tmp_path / "runs"), engine="spark", spark_master=MASTER,
                       timeout=1)
    assert result.state == "failed"
    assert "timed out after 1s" in result.message, result.message


def test_output_directory_rules(spark, tmp_path):
    text = str(make_text(tmp_path / "a.txt", 50, 1))
    out = tmp_path / "out"
    out.mkdir()
    (out / "old").write_text("x")
    with pytest.raises(ConfigError, match="already exists; choose another --output or pass"
                                          " --overwrite"):
        sshmr.run(WordCount(), files=[text], output=str(out), engine="spark",
                  runs_dir=str(tmp_path / "runs"))
    result = sshmr.run(WordCount(), files=[text], output=str(out), overwrite=True, reducers=2,
                       engine="spark", spark_master=MASTER, runs_dir=str(tmp_path / "runs"))
    assert result.ok
    assert sorted(p.name for p in out.iterdir()) == ["_SUCCESS", "part-00000", "part-00001"]


@pytest.mark.parametrize("options, message", [
    ({"slots": 2}, "--slots cannot be used with --engine spark"),
    ({"inventory": "inv.yaml"}, "--inventory cannot be used with --engine spark"),
    ({"split": "bytes:1M"}, "--split cannot be used with --engine spark"),
    ({"max_living": 60.0}, "--max-living cannot be used with --engine spark"),
    ({"halt_on_failures": 3}, "--halt-on-failures cannot be used with --engine spark"),
    ({"timeout": "300%"}, "an adaptive timeout (300%) needs sshmr's engine"),
    ({"max_retries": 0}, "already runs a SparkContext (local[2,4]"),
    ({"files": ["-"]}, "cannot read standard input"),
])
def test_what_spark_cannot_do_is_refused_in_one_line(spark, tmp_path, options, message):
    options = dict({"files": [str(make_text(tmp_path / "a.txt", 5, 1))]}, **options)
    with pytest.raises(sshmr.SshmrError) as info:
        sshmr.run(WordCount(), output=str(tmp_path / "out"), engine="spark",
                  spark_master=MASTER, runs_dir=str(tmp_path / "runs"), **options)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_cli_run_then_runs_and_report_name_the_engine(spark, tmp_path, monkeypatch):
    from sshmr.cli.app import main

    monkeypatch.chdir(tmp_path)
    text = make_text(tmp_path / "a.txt", 200, 1)
    runner = CliRunner()
    res = runner.invoke(main, ["run", f"{EXAMPLES / 'wordcount.py'}:WordCount", str(text),
                               "--output", "out", "--reducers", "2", "--engine", "spark",
                               "--spark-master", MASTER, "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["engine"] == "spark" and summary["state"] == "done"
    assert summary["output"] == str(tmp_path / "out")
    runs = runner.invoke(main, ["runs"])
    assert f"{summary['run_id']}  done        on Spark local[2,4]  wordcount:WordCount" in \
        runs.stdout, runs.stdout
    report = runner.invoke(main, ["report", summary["run_id"], "-o", "r.html"])
    assert report.exit_code == 0, report.output
    html = (tmp_path / "r.html").read_text()
    assert "Spark" in html and "on local[2,4]" in html
    # the Spark panel instead of sshmr's hosts, slots, timeline and attempts (not recorded)
    assert 'id="spark"' in html and "application <span" in html
    for absent in ('id="timeline-section"', "Hosts in detail", ">max_living<", ">jobs<",
                   'id="failures"'):
        assert absent not in html, absent
    assert ">steps<" in html and "map input records" in html
    resume = runner.invoke(main, ["resume", summary["run_id"]])
    assert resume.exit_code != 0 and "ran on Spark, which has no journal of its tasks to" \
        " resume from" in resume.output, resume.output


def test_a_cli_run_prints_sshmr_s_lines_not_spark_s_log(tmp_path):
    """A fresh ``sshmr run --engine spark`` (its own JVM): Spark's start-up log lines and
    its "default log level" banner are not printed; its errors would be."""
    text = make_text(tmp_path / "a.txt", 50, 1)
    proc = subprocess.run([sys.executable, "-m", "sshmr", "run",
                           f"{EXAMPLES / 'wordcount.py'}:WordCount", str(text), "--output", "out",
                           "--engine", "spark", "--spark-master", MASTER],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines()
             if not ln.startswith("WARNING: Using incubator modules")]  # the JVM's own
    assert lines and all(ln.startswith(("sshmr: ", "run ")) for ln in lines), proc.stderr
    assert "done on Spark" in lines[-1]


def _cli_without(tmp_path: Path, setup: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``sshmr run --engine spark`` in a fresh python that lacks something (``setup``)."""
    text = make_text(tmp_path / "a.txt", 5, 1)
    code = (f"import sys; sys.argv = ['sshmr', 'run',"
            f" {str(EXAMPLES / 'wordcount.py') + ':WordCount'!r}, {str(text)!r}, '--output',"
            f" 'out', '--engine', 'spark']; {setup}; from sshmr.__main__ import run; run()")
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, text=True,
                          capture_output=True, timeout=120)


def test_missing_pyspark_is_one_line_naming_the_fix(tmp_path):
    proc = _cli_without(tmp_path, "sys.modules['pyspark'] = None", dict(os.environ))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == ("sshmr: error: --engine spark needs pyspark, which is not installed"
                           " here: pip install 'sshmr[spark]'\n")
    assert not (tmp_path / "out").exists()


def test_missing_java_is_one_line_naming_the_fix(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = str(tmp_path / "empty")  # no java on it (python is sys.executable)
    proc = _cli_without(tmp_path, "pass", env)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == ("sshmr: error: --engine spark needs Java 17 or newer (Spark runs in"
                           " a JVM) and found none on PATH: install it (apt-get install"
                           " default-jre-headless) or set JAVA_HOME\n")
    env["JAVA_HOME"] = str(tmp_path / "nojava")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "part-00000").write_text("kept")
    proc = _cli_without(tmp_path, "sys.argv.append('--overwrite')", env)
    assert "found none at JAVA_HOME=" in proc.stderr and proc.stderr.count("\n") == 1
    assert (tmp_path / "out" / "part-00000").read_text() == "kept"  # nothing removed
