"""Hostile input, pure logic: key file modes, host names, run ids, no-follow writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sshmr.errors import InventoryError, RunNotFound
from sshmr.inventory import key_file_problem, parse_inventory
from sshmr.record.runs import find_run
from sshmr.remote.protocol import open_private, private_dir, write_atomic
from sshmr.transport.local import LocalTransport

EVIL = ["'; touch pwned #", "$(id)", "`id`", "a\nb", "bad\udcff", "../x", "..", "-x", ""]


@pytest.mark.parametrize("mode,problem", [
    (0o600, None), (0o400, None), (0o700, None),
    (0o644, "is readable by others (mode 0644)"), (0o640, "is readable by others (mode 0640)"),
    (0o604, "is readable by others (mode 0604)"), (0o620, "is writable by others (mode 0620)"),
])
def test_key_file_problem_follows_openssh(tmp_path, mode, problem):
    key = tmp_path / "id key"
    key.write_text("x")
    key.chmod(mode)
    found = key_file_problem(str(key))
    if problem is None:
        assert found is None
    else:
        assert found == f"key file {key} {problem}; run `chmod 600 '{key}'`"
    assert key_file_problem(str(tmp_path / "missing")) is None


def test_inventory_refuses_an_open_key_file_with_its_line(tmp_path):
    key = tmp_path / "k"
    key.write_text("x")
    key.chmod(0o644)
    text = f"defaults:\n  identity_file: {key}\nhosts:\n  - a\n"
    with pytest.raises(InventoryError, match=r"^inv:2: defaults.identity_file: key file .* is"
                       r" readable by others \(mode 0644\); run `chmod 600 "):
        parse_inventory(text, "inv")
    key.chmod(0o600)
    assert parse_inventory(text, "inv").hosts[0].identity_files == (str(key),)


@pytest.mark.parametrize("name", ["$(id)", "`id`", "a;b", "a|b", "a&b", "a'b", 'a"b', "-oX",
                                  "a\\b", "a>b", "h\u00e9", "a{b}", "a(b)"])
def test_host_names_with_shell_metacharacters_are_refused(name):
    with pytest.raises(InventoryError, match=r"hosts\[0\].host: .* cannot be a host name"):
        parse_inventory("hosts:\n  - host: " + json.dumps(name) + "\n", "inv")


@pytest.mark.parametrize("name", ["web-1.example.com", "10.0.0.7", "::1", "fe80::1%eth0",
                                  "my_alias", "[::1]"])
def test_ordinary_host_names_are_accepted(name):
    assert parse_inventory(f'hosts:\n  - host: "{name}"\n', "inv").hosts[0].hostname == name


@pytest.mark.parametrize("user", ["$(id)", "`id`", "a;b", "a b", "-oProxyCommand=x", "a\nb",
                                  "a'b", "a|b"])
def test_user_names_with_shell_metacharacters_are_refused(user):
    text = "defaults:\n  user: " + json.dumps(user) + "\nhosts:\n  - h1\n"
    with pytest.raises(InventoryError, match=r"defaults.user: .* cannot be a user name"):
        parse_inventory(text, "inv")


@pytest.mark.parametrize("user", ["deploy", "first.last", "svc-mr_1", "DOMAIN\\bob", "a@b.org"])
def test_ordinary_user_names_are_accepted(user):
    text = "hosts:\n  - host: h1\n    user: " + json.dumps(user) + "\n"
    assert parse_inventory(text, "inv").hosts[0].user == user


@pytest.mark.parametrize("run_id", EVIL)
def test_hostile_run_ids_are_refused(tmp_path, run_id):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "journal.sqlite").write_bytes(b"")
    runs = tmp_path / "runs"
    runs.mkdir()
    with pytest.raises(RunNotFound, match="is not a run id"):
        find_run(str(runs), run_id)


def test_writes_never_follow_a_planted_symlink(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    work = tmp_path / "work"
    work.mkdir()
    for name in ("log", "result.tmp", "payload.json", "file"):
        (work / name).symlink_to(victim)
    os.close(open_private(str(work / "log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND))
    write_atomic(str(work / "result"), b"data", sync=True)
    t = LocalTransport()
    t.put_bytes(b"payload", str(work / "payload.json"))
    t.put_file(str(work / "result"), str(work / "file"))
    assert victim.read_text() == "precious"
    assert (work / "result").read_bytes() == b"data" and not (work / "log").is_symlink()
    assert (work / "file").read_bytes() == b"data"
    assert {oct(os.lstat(work / n).st_mode & 0o777) for n in ("log", "payload.json")} == {"0o600"}


def test_private_dirs_are_0700_and_refuse_links(tmp_path):
    private_dir(str(tmp_path / "a" / "b" / "c"))
    for p in ("a", "a/b", "a/b/c"):
        assert (tmp_path / p).stat().st_mode & 0o777 == 0o700
    private_dir(str(tmp_path / "a"))  # an existing directory is fine
    LocalTransport().makedirs(str(tmp_path / "m" / "n"))
    assert (tmp_path / "m").stat().st_mode & 0o777 == 0o700
    (tmp_path / "link").symlink_to(tmp_path / "a")
    (tmp_path / "file").write_text("")
    for bad in ("link", "file"):
        with pytest.raises(OSError, match="not a directory"):
            private_dir(str(tmp_path / bad))
        with pytest.raises(OSError, match="not a directory"):
            LocalTransport().mkdir_private(str(tmp_path / bad))


def test_overwrite_of_an_output_that_is_a_symlink_replaces_the_link_only(tmp_path):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
    from wordcount import WordCount

    import sshmr

    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "f").write_text("keep")
    (tmp_path / "out").symlink_to(precious)
    (tmp_path / "in.txt").write_text("a b a\n")
    result = sshmr.run(WordCount(), [str(tmp_path / "in.txt")], output=str(tmp_path / "out"),
                       overwrite=True, runs_dir=str(tmp_path / "runs"), slots=1)
    assert result.ok and (tmp_path / "out" / "_SUCCESS").exists()
    assert not (tmp_path / "out").is_symlink() and os.listdir(precious) == ["f"]
