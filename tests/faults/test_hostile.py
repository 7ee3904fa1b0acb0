"""Fault 8 of issue 12: hostile input, planted symbolic links, modes of what sshmr makes.

Payloads, input file names, ``--output``, ``--runs-dir``, inventory host names and run
ids carrying ``'; touch … #``, ``$(…)``, backticks, newlines and non-UTF-8 bytes go
through the CLI and the API; the canary file those commands would create never appears
(here, in the home directory, or in any host's workdir: the test hosts share this file
system). Symbolic links planted in a host's workdir are never followed for writing; the
directories sshmr makes on a host are 0700; a private key file others may read is refused
before connecting. Runs end with the nothing-lost check.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from checks import FAST, assert_nothing_lost, the_run_dir  # noqa: E402
from helpers import EXAMPLES, JOBS, sshmr_cli, write_inventory  # noqa: E402
from jobs_hostile import NAMES, Planter, Show  # noqa: E402

import sshmr  # noqa: E402
from sshmr import JobState  # noqa: E402
from sshmr.result import load_run_result  # noqa: E402

SHOW = f"{JOBS}/jobs_hostile.py:Show"


@pytest.fixture
def canary(cluster, tmp_path):
    """A name no command but an injected one would create; checked everywhere after."""
    name = f"pwned-{uuid.uuid4().hex[:8]}"
    yield name
    places = [tmp_path, Path.home(), Path.cwd(), *(Path(h.workdir) for h in cluster.hosts)]
    found = [str(p) for place in places for p in place.rglob(name)]
    found += [str(p / name) for p in places if (p / name).exists()]
    assert not found, f"an injected command ran: {found}"


def hostile(canary: str) -> list[str]:
    return [f"'; touch {canary} #", f"$(touch {canary})", f"`touch {canary}`",
            f'"; touch {canary}; echo "', f"x\ntouch {canary}", f"\\\n touch {canary} |"]


def one_line_error(proc, *needles: str) -> str:
    err = proc.stderr.strip()
    assert proc.returncode == 2, (proc.returncode, proc.stdout, err)
    assert len(err.splitlines()) == 1 and err.startswith("sshmr: error: "), err
    assert "Traceback" not in err and all(n in err for n in needles), err
    return err


def test_hostile_payloads_and_file_names_execute_nothing(cluster, tmp_path, canary):
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[0, 1], slots=2)
    evil = hostile(canary)
    # API: strings (one a lone surrogate, as Python decodes non-UTF-8 bytes) and a dict
    items = [*evil, "caf\udce9", {"k": evil[0], evil[1]: [evil[2]]}]
    result = sshmr.run(Show(), items, inventory=str(inv), runs_dir=str(tmp_path / "api-runs"),
                       inline_limit=64, max_retries=1, **FAST)
    assert_nothing_lost(result, 1, cluster=cluster)
    assert result.ok, result
    assert [r["payload"] for r in result.results] == items

    # CLI: lines with hostile text and non-UTF-8 bytes; files with hostile names
    lines = tmp_path / "lines.txt"
    lines.write_bytes(b"bin \xff\xfe $(touch " + canary.encode() + b")\n")
    runs = tmp_path / f"runs $(touch {canary}) `touch {canary}`"
    proc = sshmr_cli("run", "-i", str(inv), SHOW, str(lines), "--runs-dir",
                     str(tmp_path / "refused"), cwd=tmp_path)
    one_line_error(proc, f"input file '{lines}' is not valid UTF-8 text")
    lines.write_bytes(b"".join(s.split("\n")[0].encode() + b"\n" for s in evil))
    proc = sshmr_cli("run", "-i", str(inv), SHOW, str(lines), "--runs-dir", str(runs),
                     "--json", "--max-retries", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    cli_result = load_run_result(str(the_run_dir(runs)))
    assert_nothing_lost(cli_result, 1, cluster=cluster)
    assert cli_result.ok
    assert [r["payload"] for r in cli_result.results] == [s.split("\n")[0] for s in evil]

    files = tmp_path / "files"
    files.mkdir()
    names = [os.fsencode(s.replace("/", "_")) for s in evil] + [b"bin\xff\xfe.txt"]
    for i, name in enumerate(names):
        (files / os.fsdecode(name)).write_bytes(b"content %d \xff\n" % i)
    lines_run = the_run_dir(runs)
    proc = sshmr_cli("run", "-i", str(inv), SHOW, *sorted(str(p) for p in files.iterdir()),
                     "--split", "files", "--runs-dir", str(runs), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # run ids sort by second, then at random: the new run is the one that was not there
    (run_dir,) = [p for p in runs.iterdir()
                  if (p / "journal.sqlite").exists() and p != lines_run]
    file_result = load_run_result(str(run_dir))
    assert_nothing_lost(file_result, 0, cluster=cluster)
    got = sorted((bytes.fromhex(r["name"]), bytes.fromhex(r["data"]))
                 for r in file_result.results)
    want = sorted((n, (files / os.fsdecode(n)).read_bytes()) for n in names)
    assert got == want

    # MapReduce output to a hostile --output
    out = tmp_path / f"out'; touch {canary} #$(touch {canary})"
    proc = sshmr_cli("run", "-i", str(inv), f"{EXAMPLES}/wordcount.py:WordCount", str(lines),
                     "--output", str(out), "--runs-dir", str(runs), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (out / "_SUCCESS").exists()


def test_hostile_run_ids_are_refused_by_every_command(tmp_path, canary):
    runs = tmp_path / "runs"
    runs.mkdir()
    outside = tmp_path / "elsewhere" / "20261130-073147-af1499"
    outside.mkdir(parents=True)
    (outside / "journal.sqlite").write_bytes(b"")  # a "run" outside the runs dir
    ids = [*hostile(canary), "bad\udcffid", "../elsewhere/20261130-073147-af1499", "..", "-x"]
    for run_id in ids:
        for cmd in (["show", run_id, "1"], ["status", run_id], ["results", run_id],
                    ["report", run_id, "-o", str(tmp_path / "r.html")], ["resume", run_id],
                    ["cancel", run_id]):
            args = [*cmd[:1], "--runs-dir", str(runs), "--", *cmd[1:]]
            if cmd[0] == "report":
                args = ["report", "--runs-dir", str(runs), "-o", cmd[3], "--", run_id]
            proc = sshmr_cli(*[os.fsdecode(os.fsencode(a)) for a in args], cwd=tmp_path)
            one_line_error(proc, "is not a run id", "sshmr runs")
    assert not (tmp_path / "r.html").exists()
    with pytest.raises(sshmr.errors.RunNotFound, match="is not a run id"):
        sshmr.resume("../elsewhere/20261130-073147-af1499", runs_dir=str(runs))


def test_hostile_host_names_are_refused_before_connecting(cluster, tmp_path, canary):
    lines = tmp_path / "in.txt"
    lines.write_text("1\n")
    for name in hostile(canary)[:4] + ["-oProxyCommand=touch_" + canary, "h\u00e9"]:
        inv = tmp_path / "inv.yaml"
        inv.write_text(json.dumps({"known_hosts": str(cluster.known_hosts), "ssh_config": None,
                                   "hosts": [{"host": name, "identity_file":
                                              str(cluster.client_key)}]}))
        for cmd in (["run", "-i", str(inv), SHOW, str(lines)], ["hosts", "-i", str(inv)]):
            proc = sshmr_cli(*cmd, cwd=tmp_path)
            err = one_line_error(proc, "hosts[0].host")
            assert "cannot be a host name" in err or "expected a host name" in err, err


def test_world_readable_key_file_is_refused_before_connecting(cluster, tmp_path):
    key = tmp_path / "key with 'quote"
    shutil.copyfile(cluster.client_key, key)
    lines = tmp_path / "in.txt"
    lines.write_text("1\n")
    for mode, how in ((0o644, "readable"), (0o640, "readable"), (0o620, "writable")):
        key.chmod(mode)
        inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[0], identity_file=str(key))
        proc = sshmr_cli("run", "-i", str(inv), SHOW, str(lines), "--runs-dir",
                         str(tmp_path / "runs"), cwd=tmp_path)
        err = one_line_error(proc, f"key file {key} is {how} by others (mode {mode:04o}); run "
                             "`chmod 600 '/")
        assert err.endswith("quote'`"), err
    assert not (tmp_path / "runs").exists()  # refused before anything started
    key.chmod(0o600)
    result = sshmr.run(Show(), ["ok"], inventory=str(inv), runs_dir=str(tmp_path / "runs"))
    assert result.ok and result.results == [{"payload": "ok"}]


def test_planted_symlinks_are_never_followed_and_dirs_are_0700(cluster, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    host = cluster.hosts[2]
    work = Path(host.workdir)
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[2], slots=1)
    spec = {"plant": 30, "victim": str(victim), "outside": str(outside)}
    big = "x" * 200  # longer than inline_limit: pushed to payload.json by the master
    items = [spec] + [{"pad": big, "i": i} for i in range(24)]
    # 10 of the 30 planted attempt dirs are links (refused: the attempt fails and is
    # retried under a new id); a job can draw several of them in a row (found: ids 9, 15,
    # 21, 27 for one job, so max_retries 3 failed it 1 run in ~6). With 10 retries even a
    # job that draws every one of them still succeeds.
    result = sshmr.run(Planter(), items, inventory=str(inv), runs_dir=str(tmp_path / "runs"),
                       inline_limit=64, max_retries=10, seed=1, **FAST)
    by_job = assert_nothing_lost(result, 10, cluster=cluster)
    assert victim.read_text() == "precious\n" and not victim.is_symlink()
    assert list(outside.iterdir()) == [], "written through a link to a directory"
    assert result.jobs[0].result["planted"] >= 20
    assert all(j.state is JobState.SUCCEEDED for j in result.jobs), [
        (j.job, j.state.value, [(a["id"], a["error"]) for a in by_job[j.job]])
        for j in result.jobs if j.state is not JobState.SUCCEEDED]
    refused = [a for rows in by_job.values() for a in rows if a["state"] != "SUCCEEDED"]
    assert refused, "no attempt met a directory planted as a link"
    assert all("not a directory" in (a["error"] or "") for a in refused), [
        dict(a) for a in refused]
    for j in result.jobs:
        assert {k: v for k, v in j.result.items() if k != "planted"} == dict.fromkeys(
            ("attempt", "a", "run", "runs", "code", "bundle"), 0o700), j.result

    # links planted in place of the workdir's own directories: the host refuses to start
    for name in ("runs", "code"):
        saved = work / f"{name}.saved"
        if (work / name).exists():
            (work / name).rename(saved)
        (work / name).symlink_to(outside)
        try:
            result = sshmr.run(Show(), ["x"], inventory=str(inv), runs_dir=str(tmp_path / name))
        finally:
            (work / name).unlink()
            if saved.exists():
                saved.rename(work / name)
        assert result.state == "no_hosts" and "not a directory" in result.message, result.message
        assert list(outside.iterdir()) == []
    assert NAMES
