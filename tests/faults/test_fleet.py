"""Hosts joining and leaving a running run: ``sshmr hosts drain|undrain|add`` and
``--watch-inventory``, against the real sshd cluster, with ``--max-retries 0``: nothing is
lost and no job runs twice; a drained host gets nothing after its drain; an added host
takes jobs."""

from __future__ import annotations

import getpass
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from checks import (  # noqa: E402
    FAULT_JOB,
    assert_nothing_lost,
    cli_output,
    journal,
    payloads,
    result_of,
    start_cli,
    stop_process,
    wait_for,
    write_inputs,
)
from helpers import sshmr_cli, write_inventory  # noqa: E402

from sshmr import JobState  # noqa: E402

JOBS = 60
SLEEP = 0.4


def _succeeded(run_dir: Path) -> int:
    try:
        db = journal(run_dir)
        try:
            return db.execute("SELECT COUNT(*) FROM jobs WHERE state = 'SUCCEEDED'"
                              ).fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def _run_dir(runs: Path) -> Path | None:
    found = [p for p in runs.glob("*") if (p / "journal.sqlite").exists()] if runs.exists() else []
    return found[0] if found else None


def _event_ts(run_dir: Path, kind: str, host: str | None) -> float:
    db = journal(run_dir)
    try:
        rows = db.execute("SELECT ts FROM events WHERE kind = ? AND host IS ?",
                          (kind, host)).fetchall()
    finally:
        db.close()
    assert rows, f"no {kind} event for {host}"
    return rows[0][0]


def _start(cluster, tmp_path: Path, hosts: list[int], *extra: str):
    effects = tmp_path / "effects"
    effects.mkdir()
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=hosts, slots=2)
    inputs = write_inputs(tmp_path / "in.jsonl", payloads(effects, JOBS, sleep=SLEEP))
    runs = tmp_path / "runs"
    proc = start_cli("run", FAULT_JOB, str(inputs), "-i", str(inv), "--runs-dir", str(runs),
                     "--max-retries", "0", "--seed", "1", *extra, cwd=tmp_path)
    run_dir = wait_for(lambda: _run_dir(runs), 60, "the run to start")
    wait_for(lambda: _succeeded(run_dir) >= 4, 90, "the first jobs to succeed", 0.1)
    return proc, effects, inv, runs, run_dir


def _check(cluster, proc, effects, run_dir, tmp_path, drained: str, joined: str):
    assert proc.wait(180) == 0, cli_output(tmp_path)
    result = result_of(run_dir)
    by_job = assert_nothing_lost(result, 0, effects, cluster=cluster)
    assert all(j.state is JobState.SUCCEEDED for j in result.jobs)
    drained_at = _event_ts(run_dir, "drain", drained)
    joined_at = _event_ts(run_dir, "host_added", joined)
    attempts = [a for rows in by_job.values() for a in rows]
    late = [a["id"] for a in attempts if a["host"] == drained and a["dispatched"] > drained_at]
    assert late == [], f"attempts dispatched to the drained host after its drain: {late}"
    on_new = [a for a in attempts if a["host"] == joined]
    assert on_new and all(a["dispatched"] > joined_at for a in on_new)
    print(f"\n{len(on_new)} jobs ran on the joined host; "
          f"{sum(a['host'] == drained for a in attempts)} on the drained one (before)")
    return result


def test_drain_and_add_mid_run_lose_nothing_and_run_nothing_twice(cluster, tmp_path):
    h0, h3 = cluster.hosts[0], cluster.hosts[3]
    proc, effects, inv, runs, run_dir = _start(cluster, tmp_path, [0, 1])
    try:
        out = sshmr_cli("hosts", "drain", h0.address, "--runs-dir", str(runs), cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert "draining" in out.stdout
        again = sshmr_cli("hosts", "drain", h0.address, "--runs-dir", str(runs), cwd=tmp_path)
        assert "drained already" in again.stdout
        unknown = sshmr_cli("hosts", "drain", "nosuchhost", "--runs-dir", str(runs),
                            cwd=tmp_path)
        assert unknown.returncode != 0 and unknown.stderr.count("\n") == 1
        assert "unknown host 'nosuchhost'" in unknown.stderr
        spec = f"{getpass.getuser()}@{h3.address}:{h3.port}"
        out = sshmr_cli("hosts", "add", run_dir.name, spec, "--runs-dir", str(runs),
                        cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        _check(cluster, proc, effects, run_dir, tmp_path, h0.address, h3.address)
    finally:
        stop_process(proc)
    db = journal(run_dir)
    try:
        hosts = dict(db.execute("SELECT name, state FROM hosts").fetchall())
    finally:
        db.close()
    assert h3.address in hosts
    # the report lists the changes and marks them on the timeline; the views name the states
    from sshmr.record.journal import Journal
    from sshmr.views.progress import figures, read_snapshot
    from sshmr.views.report import write_report

    html = Path(write_report(run_dir, tmp_path / "report.html")).read_text()
    assert 'id="fleet-changes"' in html and "mark-drain" in html and "mark-host_added" in html
    reader = Journal(str(run_dir), readonly=True)
    try:
        shown = {h.name: h.state for h in figures(read_snapshot(reader, held=False)).hosts}
    finally:
        reader.close()
    assert shown[h0.address] == "drained", shown
    # the run is over: commands are refused in one line
    late = sshmr_cli("hosts", "undrain", h0.address, "--runs-dir", str(runs), cwd=tmp_path)
    assert late.returncode != 0 and "is not running" in late.stderr
    assert late.stderr.count("\n") == 1


def test_an_inventory_edited_mid_run_adds_and_drains_hosts(cluster, tmp_path):
    h0, h2 = cluster.hosts[0], cluster.hosts[2]
    proc, effects, inv, runs, run_dir = _start(cluster, tmp_path, [0, 1], "--watch-inventory")
    try:
        inv.write_text(inv.read_text() + "\n  - host: [broken\n")  # a broken edit: ignored
        wait_for(lambda: _events(run_dir, "inventory_ignored"), 30, "the warning", 0.1)
        write_inventory(cluster, tmp_path / "inv.yaml", hosts=[1, 2], slots=2)
        _check(cluster, proc, effects, run_dir, tmp_path, h0.address, h2.address)
    finally:
        stop_process(proc)
    assert "warning: inventory change ignored" in cli_output(tmp_path)


def _events(run_dir: Path, kind: str) -> int:
    db = journal(run_dir)
    try:
        return db.execute("SELECT COUNT(*) FROM events WHERE kind = ?", (kind,)).fetchone()[0]
    finally:
        db.close()


def test_a_drained_host_stays_drained_after_resume(cluster, tmp_path):
    """The master dies after a drain; ``sshmr resume`` keeps the host drained."""
    import signal

    h0 = cluster.hosts[0]
    proc, effects, inv, runs, run_dir = _start(cluster, tmp_path, [0, 1])
    try:
        out = sshmr_cli("hosts", "drain", h0.address, "--runs-dir", str(runs), cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        wait_for(lambda: _succeeded(run_dir) >= 12, 90, "more jobs to succeed", 0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        stop_process(proc)
    resumed = sshmr_cli("resume", "--runs-dir", str(runs), "-q", cwd=tmp_path, timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    result = result_of(run_dir)
    by_job = assert_nothing_lost(result, 0, effects, cluster=cluster)
    resumed_at = _event_ts(run_dir, "resumed", None)
    after = [a for rows in by_job.values() for a in rows if a["dispatched"] > resumed_at]
    assert after and all(a["host"] != h0.address for a in after), [a["host"] for a in after]


def _ini(cluster, path: Path, web: list[int], db: list[int]) -> Path:
    def line(i: int) -> str:
        h = cluster.hosts[i]
        return f"h{i} ansible_host={h.address} ansible_port={h.port} sshmr_workdir={h.workdir}"

    lines = ["[web]", *map(line, web), "", "[db]", *map(line, db), "", "[all:vars]",
             f"ansible_user={cluster.user}", f"ansible_ssh_private_key_file={cluster.client_key}",
             f"sshmr_python={sys.executable}", "sshmr_slots=2",
             f"sshmr_known_hosts={cluster.known_hosts}", f"sshmr_ssh_config={cluster.ssh_config}"]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
    return path


def test_a_watched_ansible_inventory_keeps_the_runs_host_pattern(cluster, tmp_path):
    """``--hosts web --watch-inventory`` on an Ansible INI inventory: an edit that moves h2
    into web and h0 out of it makes h2 join and h0 drain; h3, in db all along, never joins."""
    effects = tmp_path / "effects"
    effects.mkdir()
    inv = _ini(cluster, tmp_path / "hosts.ini", web=[0, 1], db=[3])
    inputs = write_inputs(tmp_path / "in.jsonl", payloads(effects, JOBS, sleep=SLEEP))
    runs = tmp_path / "runs"
    proc = start_cli("run", FAULT_JOB, str(inputs), "-i", str(inv), "--hosts", "web",
                     "--watch-inventory", "--runs-dir", str(runs), "--max-retries", "0",
                     "--seed", "1", cwd=tmp_path)
    try:
        run_dir = wait_for(lambda: _run_dir(runs), 60, "the run to start")
        wait_for(lambda: _succeeded(run_dir) >= 4, 90, "the first jobs to succeed", 0.1)
        _ini(cluster, inv, web=[1, 2], db=[3, 0])
        result = _check(cluster, proc, effects, run_dir, tmp_path, "h0", "h2")
    finally:
        stop_process(proc)
    assert {j.host for j in result.jobs} <= {"h0", "h1", "h2"}
    db = journal(run_dir)
    try:
        hosts = {row[0] for row in db.execute("SELECT name FROM hosts")}
    finally:
        db.close()
    assert "h3" not in hosts, hosts
