"""Issue 22: what a new user hits first, end to end on real sshd hosts and the CLI."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers import EXAMPLES, JOBS, sshmr_cli, write_inventory  # noqa: E402


def test_known_hosts_lines_paramiko_cannot_read_are_skipped_with_a_warning(cluster, tmp_path):
    known = tmp_path / "known_hosts"
    real = cluster.known_hosts.read_text()
    known.write_text("@cert-authority *.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA\n"
                     "this is not a host key line\n" + real)
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[0, 1], known_hosts=str(known))
    hosts = sshmr_cli("hosts", "-i", str(inv), cwd=tmp_path)
    assert hosts.returncode == 0, hosts.stdout + hosts.stderr
    assert "Traceback" not in hosts.stderr
    warnings = hosts.stderr.splitlines()
    assert len(warnings) == 2, hosts.stderr  # once per line, not once per host
    assert warnings[0].startswith(f"sshmr: warning: {known} line 1: @cert-authority")
    assert warnings[1].startswith(f"sshmr: warning: {known} line 2: not a known_hosts line")
    assert all(w.endswith("; skipped") for w in warnings)
    assert hosts.stdout.count("ok    ") == 2
    proc = sshmr_cli("run", "-i", str(inv), f"{EXAMPLES}/squares.py:Square",
                     f"{EXAMPLES}/numbers.txt", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["succeeded"] == 100
    assert f"{known} line 2" in proc.stderr


def test_a_revoked_host_key_is_refused_with_one_clear_line(cluster, tmp_path):
    h = cluster.hosts[0]
    known = tmp_path / "known_hosts"
    known.write_text(cluster.known_hosts.read_text() + f"@revoked * {h.host_key_pub}\n")
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[0, 1], known_hosts=str(known))
    hosts = sshmr_cli("hosts", "-i", str(inv), cwd=tmp_path)
    assert hosts.returncode == 1, hosts.stdout + hosts.stderr
    fail = [line for line in hosts.stdout.splitlines() if line.startswith("FAIL")]
    assert len(fail) == 1 and "marked @revoked" in fail[0] and str(known) in fail[0]
    assert f"[{h.address}]:{h.port}" in fail[0]
    proc = sshmr_cli("run", "-i", str(inv), f"{EXAMPLES}/squares.py:Square",
                     f"{EXAMPLES}/numbers.txt", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr  # host 1 does the work
    assert "marked @revoked" in proc.stderr
    only = write_inventory(cluster, tmp_path / "inv0.yaml", hosts=[0], known_hosts=str(known))
    refused = sshmr_cli("run", "-i", str(only), f"{EXAMPLES}/squares.py:Square",
                        f"{EXAMPLES}/numbers.txt", cwd=tmp_path)
    assert refused.returncode == 3 and "marked @revoked" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_setup_that_raises_is_named_with_its_traceback(cluster, tmp_path):
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[0, 1], slots=1)
    proc = sshmr_cli("run", "-i", str(inv), f"{JOBS}/jobs_basic.py:BrokenSetup", "-",
                     cwd=tmp_path, stdin="1\n2\n")
    assert proc.returncode == 3, proc.stderr
    run_id = proc.stdout.split()[1]
    said = [line for line in proc.stderr.splitlines() if "setup() of BrokenSetup" in line]
    h0, h1 = (f"{h.address}" for h in cluster.hosts[:2])
    assert len(said) == 1, proc.stderr  # one line for one error, naming both hosts
    assert said[0].startswith("sshmr: setup() of BrokenSetup failed on ")
    assert said[0].endswith(": RuntimeError: cannot reach the database (traceback: sshmr show"
                            f" {run_id} setup)")
    assert h0 in said[0] and h1 in said[0]
    assert "setup() failed: RuntimeError: cannot reach the database" in proc.stderr.splitlines()[-1]
    shown = sshmr_cli("show", run_id, "setup", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count("failed on") == 2
    assert "Traceback (most recent call last)" in shown.stdout
    assert 'raise RuntimeError("cannot reach the database")' in shown.stdout
    data = json.loads(sshmr_cli("show", run_id, "setup", "--json", cwd=tmp_path).stdout)
    assert {f["host"] for f in data["setup_failures"]} == {h0, h1}
    assert all("jobs_basic.py" in f["traceback"] for f in data["setup_failures"])
    job = sshmr_cli("show", run_id, "1", cwd=tmp_path).stdout
    assert "setup() failed on" in job and f"sshmr show {run_id} setup" in job
    report = tmp_path / "r.html"
    assert sshmr_cli("report", run_id, "-o", str(report), cwd=tmp_path).returncode == 0
    html = report.read_text()
    assert 'id="setup-failures"' in html and "cannot reach the database" in html
    assert "raise RuntimeError(&#34;cannot reach the database&#34;)" in html or (
        "raise RuntimeError(&quot;cannot reach the database&quot;)" in html)


def test_stdin_on_a_terminal_gets_a_hint_and_no_job_is_an_error(tmp_path):
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    err_path = tmp_path / "err"
    with open(err_path, "wb") as err, open(tmp_path / "out", "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sshmr", "run", "-q",
                                 f"{EXAMPLES}/squares.py:Square"], cwd=tmp_path, env=env,
                                stdin=slave, stdout=out, stderr=err, start_new_session=True)
    os.close(slave)
    try:
        deadline = time.monotonic() + 60
        while "Ctrl-D" not in err_path.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, err_path.read_text()
            time.sleep(0.1)
        assert err_path.read_text() == ("sshmr: reading jobs from standard input, one per"
                                        " line; end it with Ctrl-D (or give INPUTS files)\n")
        os.write(master, b"3\n4\n\x04")  # two lines, then the terminal's end of file
        assert proc.wait(60) == 0, err_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    results = sshmr_cli("results", cwd=tmp_path).stdout.splitlines()
    assert [json.loads(line)["result"]["square"] for line in results] == [9, 16]

    empty = sshmr_cli("run", f"{EXAMPLES}/squares.py:Square", cwd=tmp_path, stdin="")
    assert empty.returncode == 2, empty.stderr
    assert "Ctrl-D" not in empty.stderr  # not a terminal: no hint
    assert "sshmr: warning: the inputs gave no job" in empty.stderr
    assert "--allow-empty" in empty.stderr
    blank = tmp_path / "empty.txt"
    blank.write_text("")
    assert sshmr_cli("run", f"{EXAMPLES}/squares.py:Square", str(blank),
                     cwd=tmp_path).returncode == 2
    allowed = sshmr_cli("run", f"{EXAMPLES}/squares.py:Square", str(blank), "--allow-empty",
                        cwd=tmp_path)
    assert allowed.returncode == 0 and "no job" not in allowed.stderr


def _local_run(runs_dir: Path, run_id: str, state: str) -> None:
    from sshmr.record.journal import Journal

    (runs_dir / run_id).mkdir(parents=True)
    journal = Journal(str(runs_dir / run_id), create=True)
    journal.set_meta(run_id=run_id, state=state)
    journal.close()


def test_gc_dry_run_lists_what_gc_removes_and_hints_at_resume(cluster, tmp_path):
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[2])
    runs = tmp_path / "runs"
    gc = ("gc", "-i", str(inv), "--runs-dir", str(runs))
    nothing = sshmr_cli(*gc, cwd=tmp_path)
    assert nothing.returncode == 0 and nothing.stdout == "nothing to remove\n", nothing.stdout
    ended, interrupted, foreign = (f"20260101-00000{i}-aaaaaaa{i}" for i in range(3))
    _local_run(runs, ended, "done")
    _local_run(runs, interrupted, "running")  # nobody holds it: its master was killed
    remote = Path(cluster.hosts[2].workdir, "runs")
    for run_id in (ended, interrupted, foreign):
        (remote / run_id).mkdir(parents=True)
        (remote / run_id / "result").write_text("x")
    planned = sshmr_cli(*gc, "--dry-run", cwd=tmp_path).stdout.splitlines()
    assert all((remote / r).is_dir() for r in (ended, interrupted, foreign))
    real = sshmr_cli(*gc, cwd=tmp_path).stdout.splitlines()
    assert [" ".join(line.replace("would remove", "removed", 1).split()) for line in planned
            ] == [" ".join(line.split()) for line in real]  # one plan for both
    assert sum(line.startswith("would remove ") for line in planned) == 1
    where = cluster.hosts[2].address
    assert f"removed  {where}:{remote / ended} (ended)" in real
    assert (f"kept     {where}:{remote / interrupted} (interrupted) - 'sshmr resume"
            f" {interrupted}' continues it; 'sshmr gc --all' removes it") in real
    assert any(line.startswith(f"kept     {where}:{remote / foreign} (foreign) - ")
               and "--all" in line for line in real), real
    assert not (remote / ended).exists() and (remote / interrupted).is_dir()
    again = sshmr_cli(*gc, cwd=tmp_path).stdout.splitlines()
    assert again[-1] == "nothing to remove" and len(again) == 3
    everything = sshmr_cli(*gc, "--all", cwd=tmp_path).stdout.splitlines()
    assert len(everything) == 2 and all(x.startswith("removed ") for x in everything)
    assert list(remote.iterdir()) == []


def test_a_failed_mapreduce_leaves_no_output_dir_and_can_be_rerun(tmp_path):
    (tmp_path / "in.txt").write_text("a b\n!raise\nc\n")
    args = ("run", f"{JOBS}/jobs_mr.py:Faulty", "in.txt", "--output", "out",
            "--max-retries", "0", "--slots", "2")
    first = sshmr_cli(*args, cwd=tmp_path)
    assert first.returncode == 1, first.stderr
    assert "the reducer was told to raise" in first.stderr
    assert not (tmp_path / "out").exists()  # created for the run, empty, removed
    again = sshmr_cli(*args, cwd=tmp_path)  # the same command: the same failure, not
    assert again.returncode == 1, again.stderr  # "output directory out already exists"
    assert "already exists" not in again.stderr and not (tmp_path / "out").exists()
    (tmp_path / "in.txt").write_text("a b\nc a\n")
    fixed = sshmr_cli(*args, cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stderr
    assert (tmp_path / "out" / "_SUCCESS").exists()
