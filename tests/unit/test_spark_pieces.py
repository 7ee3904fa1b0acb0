"""The pure pieces of --engine spark (no JVM): the master and Spark settings made from the
run's policies, the refusals, the error line taken out of a Spark failure, the record
chunks, the output writer and the input URIs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sshmr import MapReduce
from sshmr.engine.config import RunConfig
from sshmr.errors import ConfigError, InputError
from sshmr.spark import tasks
from sshmr.spark.context import check_master, spark_settings
from sshmr.spark.plan import write_parts
from sshmr.spark.runner import _input_uris, check_options, task_error


class Job(MapReduce):
    def mapper(self, _, line):
        yield line, 1


class Policies(Job):
    timeout = 30
    max_retries = 1
    max_living = 60.0


@pytest.mark.parametrize("master, retries, expected", [
    ("local[*]", 3, "local[*,4]"), ("local[2]", 0, "local[2,1]"), ("local", 1, "local[1,2]"),
    ("local[2,4]", 3, "local[2,4]"), ("spark://h:7077", 0, "spark://h:7077"),
    ("yarn", 3, "yarn"), ("k8s://https://k:443", 3, "k8s://https://k:443"),
])
def test_a_local_master_carries_the_task_failures(master, retries, expected):
    assert check_master(master, retries) == expected


@pytest.mark.parametrize("master, message", [
    ("local[2,9]", "9 task failures contradict max_retries 3"),
    ("local[x]", "expected local[N], local[*]"),
])
def test_a_bad_master_is_one_line(master, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_master(master, 3)


def test_max_retries_zero_means_one_attempt_of_every_task_and_stage():
    settings = spark_settings("yarn", RunConfig(max_retries=0))
    assert settings["spark.task.maxFailures"] == "1"
    assert settings["spark.stage.maxConsecutiveAttempts"] == "1"
    assert settings["spark.speculation"] == "false"
    assert "spark.driver.host" not in settings


def test_speculation_and_local_binding():
    settings = spark_settings("local[2,3]", RunConfig(max_retries=2, speculate=1.5))
    assert settings["spark.speculation"] == "true"
    assert settings["spark.speculation.multiplier"] == "1.5"
    assert settings["spark.driver.bindAddress"] == "127.0.0.1"
    assert settings["spark.ui.enabled"] == "false"


def test_class_policies_are_mapped_or_warned_about():
    config, notes = check_options(Policies(), {"slots": None, "max_retries": None})
    assert (config.timeout, config.max_retries) == (30, 1)
    assert notes == ["Policies.max_living is not applied on Spark (Spark manages the life of"
                     " its Python workers)"]


@pytest.mark.parametrize("options, flag", [
    ({"seed": 1}, "--seed"), ({"hosts": "web"}, "--hosts"),
    ({"partitioner": object()}, "--partitioner"), ({"max_result_size": 1 << 20},
                                                   "--max-result-size"),
    ({"accept_new_hosts": True}, "--accept-new-hosts"), ({"watch_inventory": True},
                                                        "--watch-inventory"),
])
def test_refused_options_name_the_flag(options, flag):
    with pytest.raises(ConfigError, match=f"^{flag} cannot be used with --engine spark: "):
        check_options(Job(), options)


def test_task_error_finds_sshmr_s_line_in_a_java_stack_trace():
    text = ("An error occurred while calling o1.collect.\n: org.apache.spark.SparkException:"
            " Job aborted\norg.apache.spark.api.python.PythonException: Traceback (most"
            " recent call last):\n  File \"x.py\", line 1\nsshmr.remote.mrtask.TaskError:"
            " reduce task 1 of step 1 (partition 1 of 2 map outputs), key \"k\": ValueError:"
            " no\n\tat org.apache.spark.X(X.scala:1)\n")
    assert task_error(RuntimeError(text)) == ('reduce task 1 of step 1 (partition 1 of 2 map'
                                              ' outputs), key "k": ValueError: no')
    other = "org.apache.spark.SparkException: boom\nKeyError: 'x'\n\tat y"
    assert task_error(RuntimeError(other)) == "KeyError: 'x'"
    assert task_error(RuntimeError("")) == "RuntimeError"


def test_chunks_end_at_line_ends(tmp_path, monkeypatch):
    monkeypatch.setattr(tasks, "CHUNK", 10)
    path = tmp_path / "f"
    data = b"xx\n" + b"a" * 25 + b"\nb\ncc\n"
    path.write_bytes(b"HEAD" + data + b"TAIL")
    chunks = list(tasks._chunks(str(path), 4, len(data)))
    assert b"".join(chunks) == data
    assert all(c.endswith(b"\n") for c in chunks) and len(chunks) > 2


def test_write_parts_writes_every_part_then_success(tmp_path):
    chunks = [(1, b'"a"\t1\n'), (1, b'"b"\t2\n'), (3, b'"c"\t3\n')]
    write_parts(iter(chunks), 5, str(tmp_path), lines=False)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["_SUCCESS"] + [f"part-{i:05d}" for i in range(5)]
    assert (tmp_path / "part-00001").read_bytes() == b'"a"\t1\n"b"\t2\n'
    assert (tmp_path / "part-00003").read_bytes() == b'"c"\t3\n'
    assert (tmp_path / "part-00000").read_bytes() == b""


def test_write_parts_of_lines_decodes_mrjob_records(tmp_path):
    write_parts(iter([(0, b'"6869"\t"there"\n')]), 1, str(tmp_path), lines=True)
    assert (tmp_path / "part-00000").read_bytes() == b"hi\tthere\n"


def test_input_uris(tmp_path):
    odd = tmp_path / "we[i]rd*.txt"
    odd.write_text("x\n")
    assert _input_uris([str(odd), "hdfs://nn/x.txt"]) == [
        "file://" + str(tmp_path).replace("[", "\\[") + "/we\\[i\\]rd\\*.txt",
        "hdfs://nn/x.txt"]
    with pytest.raises(InputError, match="does not exist"):
        _input_uris([str(tmp_path / "nope")])
    with pytest.raises(InputError, match="is a directory"):
        _input_uris([str(tmp_path)])


def test_sshmr_imports_without_pyspark():
    import subprocess
    import sys

    code = ("import sys; sys.modules['pyspark'] = None; import sshmr, sshmr.api, sshmr.cli,"
            " sshmr.spark.runner, sshmr.spark.tasks; print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout == "ok\n", proc.stderr


def test_engine_and_master_are_checked():
    import sshmr

    with pytest.raises(ConfigError, match="^spark_master is for engine='spark'"):
        sshmr.run(Job(), files=["x"], output="out", spark_master="local[2]")
    with pytest.raises(ConfigError, match="^engine 'flink': expected 'sshmr'"):
        sshmr.run(Job(), files=["x"], output="out", engine="flink")
    with pytest.raises(ConfigError, match="^--engine spark runs a sshmr.MapReduce"):
        from sshmr import JobExecutor

        class Plain(JobExecutor):
            def execute(self, payload):
                return payload

        sshmr.run(Plain(), ["1"], engine="spark")


def test_cli_spark_master_needs_engine_spark(tmp_path):
    from click.testing import CliRunner

    from sshmr.cli.app import main

    text = tmp_path / "a.txt"
    text.write_text("a\n")
    example = Path(__file__).resolve().parents[2] / "examples" / "wordcount.py"
    res = CliRunner().invoke(main, ["run", f"{example}:WordCount", str(text),
                                    "--output", str(tmp_path / "out"), "--spark-master",
                                    "local[2]", "--runs-dir", str(tmp_path / "runs")])
    assert res.exit_code == 2
    assert "--spark-master is for --engine spark: add --engine spark" in res.output
