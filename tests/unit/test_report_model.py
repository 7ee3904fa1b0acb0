"""The report's pure parts: chart geometry, the model built from a synthetic journal, the
MapReduce block, and path checks. No browser, no SSH (the browser tests are in
tests/integration/test_report.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from synth_journal import make_journal  # noqa: E402

from sshmr.errors import ConfigError  # noqa: E402
from sshmr.record.journal import Journal  # noqa: E402
from sshmr.views.charts import BUCKET_PX, PLOT_W, histogram, outcome, percentile, timeline  # noqa: E402,E501
from sshmr.views.report import _mapreduce, build_model, check_output_path, render  # noqa: E402


def row(aid, job, slot, t0, dur, state="SUCCEEDED", reason=None, host="h1"):
    return {"id": aid, "job": job, "number": 1, "host": host, "slot": slot, "state": state,
            "reason": reason, "dispatched": t0, "started": t0, "ended": t0 + dur,
            "duration": dur}


@pytest.mark.parametrize("state, reason, expected", [
    ("SUCCEEDED", None, "ok"), ("DISCARDED", None, "discarded"), ("RUNNING", None, "running"),
    ("FAILED", "error", "error"), ("FAILED", "timeout", "timeout"),
    ("FAILED", "worker_died", "lost"), ("FAILED", "host_lost", "lost"),
    ("FAILED", "cancelled", "killed"), ("FAILED", "speculation", "killed"),
])
def test_outcome_colours(state, reason, expected):
    assert outcome(state, reason) == expected


def test_percentile_interpolates():
    assert percentile([], 50) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 100) == 4.0


def test_small_lane_has_one_bar_per_attempt_even_when_tiny():
    rows = [row(i, i, i % 2, 100 + i, 0.0001) for i in range(1, 41)]
    rows.append(row(41, 41, 0, 100, 60, state="FAILED", reason="timeout"))
    t = timeline(rows, ["h1"], now=200)
    assert sorted(b.job for b in t["bars"]) == list(range(1, 42))
    assert all(b.w >= 1 for b in t["bars"]) and t["aggregated_lanes"] == 0
    assert [lane["slot"] for lane in t["lanes"]] == [0, 1]


def test_crowded_lane_is_aggregated_but_wide_attempts_stay_bars():
    rows = [row(i, i, 0, 1000 + i * 0.1, 0.05, state="FAILED" if i % 10 == 0 else "SUCCEEDED",
                reason="error" if i % 10 == 0 else None) for i in range(1, 5001)]
    rows.append(row(9999, 9999, 0, 1100, 200.0))  # a long straggler: its own bar
    t = timeline(rows, ["h1"], now=2000)
    single = [b for b in t["bars"] if b.job is not None]
    stacks = [b for b in t["bars"] if b.job is None]
    assert [b.job for b in single] == [9999] and t["aggregated_lanes"] == 1
    assert len({b.x for b in stacks}) <= PLOT_W / BUCKET_PX + 1
    assert {b.cls for b in stacks} == {"ok", "error"}
    assert any("failed" not in b.title and "raised" in b.title for b in stacks)


def test_histogram_marks_stragglers():
    durations = sorted([1.0] * 50 + [1.2] * 40 + [9.0] * 3)
    h = histogram(durations, straggler_at=2.0)
    assert sum(r["count"] for r in h["rects"]) == 93
    assert sum(r["count"] for r in h["rects"] if r["slow"]) == 3
    assert h["line"] is not None
    assert histogram([], None) is None


def test_model_of_a_synthetic_run(tmp_path):
    run_dir = make_journal(tmp_path / "run", jobs=300, hosts=2, slots=2)
    journal = Journal(str(run_dir), readonly=True)
    try:
        model = build_model(journal, str(run_dir))
    finally:
        journal.close()
    assert model["total"] == 300 and model["state"] == "done" and model["exit_code"] == 1
    assert model["counts"]["FAILED"] == len(model["failed"]["jobs"]) == 3
    # done, but with failures: not the green badge (issue 22)
    assert model["badge"] == {"css": "done_failures", "label": "done with failures"}
    assert "done_failures" in render(model) and ">done with failures<" in render(model)
    assert all(len(j["attempts"]) == 3 for j in model["failed"]["jobs"])
    assert [h["name"] for h in model["hosts"]] == ["node1.example.net", "node2.example.net"]
    assert sum(h["attempts"] for h in model["hosts"]) == model["attempt_count"]
    assert dict(model["policies"])["timeout"] == "10.00 s"
    assert model["mapreduce"] is None


def test_mapreduce_block_renders_only_for_mapreduce_runs(tmp_path):
    mr = {"steps": [{"mapper": True, "combiner": False, "reducer": True}],
          "phases": [{"step": 0, "phase": "map", "first": 1, "last": 8},
                     {"step": 0, "phase": "reduce", "first": 9, "last": 12}],
          "current": {"step": 0, "phase": "reduce"}, "shuffle_bytes": 3 << 20,
          "counters": {"<b>words</b>": {"lines": 120, "<i>empty</i>": 3}},
          "output": "out/", "reducers": 4}
    run_dir = make_journal(tmp_path / "mr", jobs=20, hosts=1, slots=2, mapreduce=mr)
    journal = Journal(str(run_dir), readonly=True)
    try:
        block = _mapreduce(journal)
        html = render(build_model(journal, str(run_dir)))
        states = [r[0] for r in journal.db.execute("SELECT state FROM jobs ORDER BY id")]
    finally:
        journal.close()
    assert [(p["step"], p["phase"], p["total"]) for p in block["steps"]] == [
        (1, "map", 8), (1, "reduce", 4)]
    assert block["steps"][0]["succeeded"] == states[:8].count("SUCCEEDED")
    assert block["steps"][1]["succeeded"] == states[8:12].count("SUCCEEDED")
    assert (block["counters"], block["output"], block["reducers"], block["shuffle_mb"]) == (
        mr["counters"], "out/", 4, 3.0)
    assert 'id="mapreduce"' in html and "&lt;b&gt;words&lt;/b&gt;" in html
    assert "<b>words" not in html and "&lt;i&gt;empty&lt;/i&gt;" in html
    plain = make_journal(tmp_path / "plain", jobs=5, hosts=1, slots=1)
    journal = Journal(str(plain), readonly=True)
    try:
        assert _mapreduce(journal) is None
        assert 'id="mapreduce"' not in render(build_model(journal, str(plain)))
    finally:
        journal.close()


def test_report_paths_are_checked(tmp_path):
    check_output_path(tmp_path / "r.html")
    with pytest.raises(ConfigError, match="is a directory; give a file name"):
        check_output_path(tmp_path)
    with pytest.raises(ConfigError, match="does not exist; create it"):
        check_output_path(tmp_path / "nope" / "r.html")


def test_exit_code_rule_matches_the_cli():
    from sshmr.cli import EXIT
    from sshmr.views.report import _EXIT, _exit_code

    assert _EXIT == EXIT
    assert _exit_code("done", {"SUCCEEDED": 3}, 3) == 0
    assert _exit_code("done", {"SUCCEEDED": 2, "FAILED": 1}, 3) == 1
    assert _exit_code("cancelled", {"CANCELLED": 3}, 3) == 130


def _label_inside(x, label, anchor, left, right):
    w = 7 * len(label)  # 11 px sans-serif: at most ~7 px a character for these labels
    lo = {"start": x, "middle": x - w / 2, "end": x - w}[anchor]
    return left <= lo and lo + w <= right


@pytest.mark.parametrize("longest", [0.3, 0.05, 9.0, 300.0, 7200.0, 0.0123])
def test_axis_labels_stay_inside_the_charts(longest):
    h = histogram(sorted([longest / 3, longest / 2, longest]), straggler_at=longest * 0.99)
    for x, label, anchor in h["ticks"]:
        assert _label_inside(x, label, anchor, 0, h["width"]), (x, label, anchor)
    sl = h["line_label"]
    assert _label_inside(sl["x"], "stragglers ›", sl["anchor"], 0, h["width"])
    t = timeline([row(1, 1, 0, 100, longest)], ["h1"], now=100 + longest)
    for x, label, anchor in t["ticks"]:
        assert _label_inside(t["plot_x"] + x, label, anchor, 0, t["width"]), (x, label)


def test_the_300_ms_label_ends_at_the_edge():
    h = histogram([0.1, 0.2, 0.3], None)
    assert h["ticks"][-1] == (h["width"], "300 ms", "end")
    assert h["ticks"][1][2] == "middle"
