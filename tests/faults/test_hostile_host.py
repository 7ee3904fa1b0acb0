"""A compromised host among honest ones (issue 18): it can make its own jobs fail or return
wrong data for them, and nothing more.

Host 2 of each run is hostile: its ``python`` runs ``tests/hostile_agent.py``, the real
agent behind a proxy that lies to the master (one attack per test). Hosts 0 and 1 are
honest. After each attack: the honest results are exact; the hostile host's attempts end
FAILED (or its jobs return its wrong data) with a reason that names it; nothing outside the
run directory changed and no injected command ran; memory and disk stayed bounded; the run
ended.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from checks import FAST, assert_nothing_lost, attempts_of, events_of, hosts_of  # noqa: E402
from helpers import JOBS, in_pty, sshmr_cli, write_inventory  # noqa: E402

import sshmr  # noqa: E402
from sshmr import JobState  # noqa: E402
from sshmr.result import load_run_result  # noqa: E402

TESTS = Path(__file__).resolve().parent.parent
HOSTILE_AGENT = TESTS / "hostile_agent.py"
SQUARE = f"{JOBS}/jobs_hostile.py:GatedSquare"
BLOB = f"{JOBS}/jobs_basic.py:Blob"
HOSTILE = 2
RAW = ("\x1b]0;pwned", "\x1b[2J", "\u202e", "\x9b", "\x07")  # as sent, unescaped


def hostile_run(cluster, tmp_path: Path, attack: str, **defaults) -> tuple[Path, Path]:
    """An inventory of hosts 0, 1 (honest) and 2 (running ``attack``), and its state dir."""
    state = tmp_path / f"hostile-{attack}"
    state.mkdir()
    wrapper = state / "python"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} {HOSTILE_AGENT} {attack} {state}"
                       ' "$@"\n')
    wrapper.chmod(0o755)
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[0, 1, HOSTILE],
                          host_overrides={HOSTILE: {"python": str(wrapper)}}, slots=2,
                          **defaults)
    return inv, state


def files_outside(tmp_path: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file under ``tmp_path`` but the runs dir and the host state."""
    out = {}
    for p in tmp_path.rglob("*"):
        rel = p.relative_to(tmp_path)
        if rel.parts[0] in ("runs",) or rel.parts[0].startswith("hostile-") or not p.is_file():
            continue
        st = p.stat()
        out[str(rel)] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture
def untouched(tmp_path):
    """Nothing outside the run dir changes; no injected command runs."""
    outside = tmp_path / "outside.txt"
    outside.write_text("the master's own file\n")
    before = files_outside(tmp_path)
    yield
    after = files_outside(tmp_path)
    changed = {k for k in before if after.get(k) != before[k]}
    assert not changed, f"files outside the run dir changed: {changed}"
    assert not list(Path("/tmp").glob("sshmr-pwned*")), "a host wrote where it was told to"
    assert not list(tmp_path.rglob("pwned")), "an injected command ran on the master"


def gc_removes_what_the_dropped_host_kept(cluster, inv: Path, tmp_path: Path,
                                          run_id: str) -> None:
    """A host dropped mid-run keeps the run's directory (the master no longer talks to
    it); ``sshmr gc`` removes it, and nothing is left for later tests to find."""
    proc = sshmr_cli("gc", "-i", str(inv), "--runs-dir", str(tmp_path / "runs"),
                     cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    left = Path(cluster.hosts[HOSTILE].workdir, "runs", run_id)
    assert not left.exists(), (proc.stdout, sorted(left.rglob("*")))


def hostile_attempts(run_dir: str, address: str) -> list:
    return [a for a in attempts_of(run_dir) if a["host"] == address]


def log(state: Path) -> str:
    path = state / "attack.log"
    return path.read_text() if path.exists() else ""


def gated_inputs(state: Path, tmp_path: Path, n: int) -> Path:
    """Inputs of GatedSquare: jobs 1..n wait until the hostile host has a slot up."""
    gate = state / "gate"
    inputs = tmp_path / "in.txt"
    inputs.write_text("".join(f"{i} {gate}\n" for i in range(1, n + 1)))
    return inputs


def squares_cli(inv: Path, state: Path, tmp_path: Path, n: int,
                *extra: str) -> tuple[dict, object]:
    inputs = gated_inputs(state, tmp_path, n)
    proc = sshmr_cli("run", "-i", str(inv), SQUARE, str(inputs), "--runs-dir",
                     str(tmp_path / "runs"), "--json", "--max-retries", "3", *extra,
                     cwd=tmp_path, timeout=180)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    return summary, proc


def assert_exact(result, n: int, hostile: str | None = None) -> None:
    """Every job succeeded with its exact result; with ``hostile``, a job may instead have
    failed on the hostile host alone (every attempt of it ran there: its own jobs)."""
    assert result.state == "done", result
    for job in result.jobs:
        if job.state is JobState.SUCCEEDED:
            assert job.result == job.job ** 2, (job, dict(job.__dict__))
            continue
        ran_on = {a["host"] for a in attempts_of(result.run_dir, job.job)}
        assert hostile is not None and ran_on == {hostile}, (job, ran_on)
    assert len(result.jobs) == n


def assert_violation(run_dir: str, address: str, *needles: str, attempts: bool = True) -> str:
    host = hosts_of(run_dir)[address]
    assert host["state"] == "failed", dict(host)
    error = host["error"]
    assert error.startswith(f"{address}: protocol violation: ") and "not used again" in error
    assert all(n in error for n in needles), error
    mine = hostile_attempts(run_dir, address)
    assert any(a["state"] == "FAILED" for a in mine) or not attempts
    for a in mine:  # each ended: failed, the host named (or its own job's result)
        assert a["state"] in ("FAILED", "SUCCEEDED"), dict(a)
        if a["state"] == "FAILED":
            assert address in (a["error"] or ""), dict(a)
    return error


# ------------------------------------------------------------------ (d) other jobs


def test_a_host_cannot_report_attempts_it_was_not_given(cluster, tmp_path, untouched):
    inv, state = hostile_run(cluster, tmp_path, "foreign")
    summary, proc = squares_cli(inv, state, tmp_path, 60)
    result = load_run_result(summary["run_dir"])
    assert "claiming attempt" in log(state), log(state)
    assert_exact(result, 60)  # the forged result is committed nowhere
    assert_nothing_lost(result, 3, cluster=cluster, dead_hosts=[HOSTILE])
    assert_violation(result.run_dir, cluster.hosts[HOSTILE].address, "which it was not given")
    assert "protocol violation" in proc.stderr
    gc_removes_what_the_dropped_host_kept(cluster, inv, tmp_path, result.run_id)


def test_malformed_messages_cannot_crash_the_master_or_name_paths(cluster, tmp_path,
                                                                   untouched):
    inv, state = hostile_run(cluster, tmp_path, "types")
    summary, proc = squares_cli(inv, state, tmp_path, 40)
    result = load_run_result(summary["run_dir"])
    assert "a path for an attempt id" in log(state)
    assert_exact(result, 40)
    assert "Traceback" not in proc.stderr
    assert_nothing_lost(result, 3, cluster=cluster, dead_hosts=[HOSTILE])
    assert_violation(result.run_dir, cluster.hosts[HOSTILE].address, "'a' is")
    gc_removes_what_the_dropped_host_kept(cluster, inv, tmp_path, result.run_id)


# ------------------------------------------------------------------ (a) code on the master


def test_a_signed_hostile_pickle_runs_nothing_on_the_master(cluster, tmp_path, untouched):
    from jobs_hostile import gated_square_pair

    from sshmr.notebook import Cluster

    inv, state = hostile_run(cluster, tmp_path, "pickle")
    c = Cluster(str(inv), runs_dir=str(tmp_path / "runs"))
    values = c.map(gated_square_pair, [[i, str(state / "gate")] for i in range(40)], **FAST)
    assert "a signed hostile pickle" in log(state)
    assert not (state / "pwned").exists(), "the hostile pickle ran on the master"
    hostile = cluster.hosts[HOSTILE].address
    by_host = {j.job: j.host for j in c.last.jobs}
    for i, value in enumerate(values):
        if by_host[i + 1] == hostile:  # its own jobs: wrong data, inert
            assert "not loaded" in repr(value), value
        else:
            assert value == (i, i * i)
    assert hostile in by_host.values()
    assert_nothing_lost(c.last, 3, cluster=cluster)


# ------------------------------------------------------------------ (c) memory, disk, time


def _peak_rss_run(inv: Path, tmp_path: Path, n: int, name: str, **config) -> tuple[int, dict]:
    """Run the master in a process of its own: its peak RSS (KiB) and the run's summary."""
    code = f"""
import json, resource, sys
sys.path.insert(0, {str(JOBS)!r})
import sshmr
from jobs_hostile import SlowSquare
r = sshmr.run(SlowSquare(), [str(i) for i in range(1, {n} + 1)], inventory={str(inv)!r},
              runs_dir={str(tmp_path / "runs")!r}, **{config!r})
print(json.dumps([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, r.summary()]))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    peak, summary = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"\n{name}: master peak RSS {peak / 1024:.0f} MB, {summary}")
    return peak, summary


@pytest.mark.parametrize("attack", ["flood", "bigline"])
def test_a_flood_or_an_endless_line_does_not_fill_the_masters_memory(cluster, tmp_path,
                                                                       untouched, attack):
    honest = write_inventory(cluster, tmp_path / "honest.yaml", hosts=[0, 1], slots=2)
    base, _ = _peak_rss_run(honest, tmp_path, 40, "honest", max_retries=3)
    inv, state = hostile_run(cluster, tmp_path, attack)
    peak, summary = _peak_rss_run(inv, tmp_path, 40, attack, max_retries=3)
    assert ("flood sent" if attack == "flood" else "64 MiB line") in log(state), log(state)
    assert summary["state"] == "done" and summary["succeeded"] == 40, summary
    assert peak < base + 64 * 1024, f"{attack}: peak RSS {peak} KiB vs {base} KiB honest"
    result = load_run_result(summary["run_dir"])
    assert_exact(result, 40)
    if attack == "bigline":
        assert_violation(result.run_dir, cluster.hosts[HOSTILE].address,
                         f"a message longer than {4 << 20} bytes", attempts=False)
    gc_removes_what_the_dropped_host_kept(cluster, inv, tmp_path, result.run_id)


def test_a_result_over_the_limit_is_refused_before_it_is_fetched(cluster, tmp_path, untouched):
    inv, state = hostile_run(cluster, tmp_path, "huge")
    summary, proc = squares_cli(inv, state, tmp_path, 40, "--max-result-size", "1G")
    result = load_run_result(summary["run_dir"])
    assert "claims a 10 GiB result" in log(state)
    assert_exact(result, 40, cluster.hosts[HOSTILE].address)
    hostile = cluster.hosts[HOSTILE].address
    failed = hostile_attempts(result.run_dir, hostile)
    assert failed and all(a["state"] == "FAILED" for a in failed)
    assert all(a["error"].startswith(f"{hostile}: the result is 10 GB, over max_result_size")
               for a in failed), [a["error"] for a in failed]
    assert_nothing_lost(result, 3, cluster=cluster)


def test_a_result_larger_than_it_said_is_cut_off_at_its_size(cluster, tmp_path, untouched):
    inv, state = hostile_run(cluster, tmp_path, "liar")
    result = sshmr.run(_blob(), [f"{100 + i} {state / 'gate'}" for i in range(30)],
                       inventory=str(inv),
                       runs_dir=str(tmp_path / "runs"), max_retries=3, **FAST)
    assert "200 MiB result said to be 1000 bytes" in log(state)
    assert result.state == "done", result
    hostile = cluster.hosts[HOSTILE].address
    for job in result.jobs:
        if job.state is JobState.SUCCEEDED:
            assert job.result == bytes(i % 251 for i in range(100 + job.job - 1))
        else:  # it failed on the hostile host alone: its own job
            assert {a["host"] for a in attempts_of(result.run_dir, job.job)} == {hostile}
    biggest = max(p.stat().st_size for p in Path(result.run_dir).rglob("*") if p.is_file())
    assert biggest < 8 << 20, f"a {biggest}-byte file in the runs dir"
    failed = hostile_attempts(result.run_dir, cluster.hosts[HOSTILE].address)
    assert failed and all(a["state"] == "FAILED" and "more than the 1000 bytes" in a["error"]
                          for a in failed), [dict(a) for a in failed]
    assert_nothing_lost(result, 3, cluster=cluster)


def _blob():
    sys.path.insert(0, str(JOBS))
    from jobs_hostile import GatedBlob

    return GatedBlob()


def test_a_host_that_goes_silent_after_acknowledging_is_timed_out(cluster, tmp_path,
                                                                 untouched):
    """No timeout: the attempt's worker's max_living bounds it on the master too."""
    inv, state = hostile_run(cluster, tmp_path, "silent")
    summary, _ = squares_cli(inv, state, tmp_path, 20, "--max-living", "3")
    result = load_run_result(summary["run_dir"])
    assert "swallowed done" in log(state), log(state)
    assert_exact(result, 20)
    failed = hostile_attempts(result.run_dir, cluster.hosts[HOSTILE].address)
    assert failed and all(a["state"] == "FAILED" and a["reason"] == "max_living"
                          for a in failed), [dict(a) for a in failed]
    assert_nothing_lost(result, 3, cluster=cluster)


def test_a_host_that_drips_one_byte_at_a_time_is_timed_out(cluster, tmp_path, untouched):
    sys.path.insert(0, str(JOBS))
    from jobs_hostile import GatedSquare

    inv, state = hostile_run(cluster, tmp_path, "drip")  # it opens the gate after 5 s
    result = sshmr.run(GatedSquare(), [f"{i} {state / 'gate'}" for i in range(1, 41)],
                       inventory=str(inv), runs_dir=str(tmp_path / "runs"), max_retries=3,
                       **FAST)
    assert "dripping" in log(state)
    assert_exact(result, 40)
    hostile = cluster.hosts[HOSTILE].address
    downs = [e["message"] for e in events_of(result.run_dir, "host_down")
             if e["host"] == hostile]
    assert downs and all(d == "no message from the host for 1.5s" for d in downs), downs
    assert_nothing_lost(result, 3, cluster=cluster, dead_hosts=[HOSTILE])
    gc_removes_what_the_dropped_host_kept(cluster, inv, tmp_path, result.run_id)


# ------------------------------------------------------------------ (e) what users read


def test_escape_sequences_from_a_host_reach_no_terminal_and_no_report(cluster, tmp_path,
                                                                       untouched):
    inv, state = hostile_run(cluster, tmp_path, "escape")
    inputs = gated_inputs(state, tmp_path, 30)
    report = tmp_path / "report.html"
    code, raw, _ = in_pty(["run", "-i", str(inv), SQUARE, str(inputs), "--runs-dir",
                           str(tmp_path / "runs"), "--max-retries", "3", "--report",
                           str(report)], tmp_path, timeout=180)
    assert "escape sequences in the outcome" in log(state)
    assert code == 0, raw
    run_id = sorted(p.name for p in (tmp_path / "runs").iterdir() if p.is_dir())[-1]
    result = load_run_result(str(tmp_path / "runs" / run_id))
    assert_exact(result, 30)
    hostile = cluster.hosts[HOSTILE].address
    bad_jobs = sorted({a["job"] for a in hostile_attempts(result.run_dir, hostile)})
    assert bad_jobs
    outputs = {"live view (a terminal)": raw}
    for args in (["show", run_id, str(bad_jobs[0])], ["status", run_id], ["results", run_id],
                 ["show", run_id, str(bad_jobs[0]), "--json"]):
        proc = sshmr_cli(*args, "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        outputs[" ".join(args[:1] + args[3:])] = proc.stdout + proc.stderr
    outputs["report"] = report.read_text()
    for where, text in outputs.items():
        for seq in RAW:
            assert seq not in text, f"{seq!r} reached the {where}"
    assert "<script>alert(1)" not in outputs["report"]
    assert "\\x1b]0;pwned\\x07" in outputs["show"]  # shown, escaped
    assert "&lt;script&gt;alert(1)" in outputs["report"]
