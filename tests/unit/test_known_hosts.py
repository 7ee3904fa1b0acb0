"""The known_hosts reader (issue 22): unreadable lines are skipped with one warning naming
the file and line, ``@revoked`` keys are kept apart, ``@cert-authority`` is skipped, and
host patterns match the way OpenSSH matches them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import subprocess

import paramiko

from sshmr.transport import known_hosts


def _keys(tmp_path):
    made = []
    for i in range(2):
        path = tmp_path / f"k{i}"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
                       check=True, capture_output=True)
        made.append(paramiko.Ed25519Key.from_private_key_file(str(path)))
    return made


def _line(names: str, key: paramiko.PKey, marker: str = "") -> str:
    return f"{marker + ' ' if marker else ''}{names} {key.get_name()} {key.get_base64()}\n"


def test_bad_lines_are_skipped_and_warned_once_by_file_and_line(tmp_path, capsys):
    a, b = _keys(tmp_path)
    path = tmp_path / "known_hosts"
    path.write_text(
        "# a comment\n\n"
        + _line("*.example.com", a, "@cert-authority")
        + "garbage\n"
        + "[h]:2222 ssh-ed25519 not*base64!\n"
        + "[h]:2222 ssh-frob AAAAB3NzaC1yc2E=\n"
        + _line("[h]:2222", a)
        + _line("*", b, "@revoked"))
    found = known_hosts.load(str(path))
    assert [n for n, _ in found.skipped] == [3, 4, 5, 6]
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 4
    assert err[0].startswith(f"sshmr: warning: {path} line 3: @cert-authority")
    assert "not supported" in err[0] and err[0].endswith("; skipped")
    assert err[1].startswith(f"sshmr: warning: {path} line 4: not a known_hosts line")
    assert "line 5: not a known_hosts line (its key is not base64)" in err[2]
    assert "line 6: key type 'ssh-frob' is not supported" in err[3]
    assert found.keys_for("[h]:2222") == [a]
    assert found.keys_for("h") == [] and found.keys_for("[h]:22") == []
    assert found.is_revoked("[h]:2222", b) and not found.is_revoked("[h]:2222", a)
    known_hosts.load(str(path))  # read again (a reconnect): no second warning
    assert capsys.readouterr().err == ""


def test_patterns_wildcards_negation_and_hashed_names(tmp_path):
    (a, _) = _keys(tmp_path)
    salt = os.urandom(20)
    digest = hmac.new(salt, b"[10.0.0.7]:2200", hashlib.sha1).digest()
    hashed = f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"
    path = tmp_path / "kh"
    path.write_text(_line("web-?,!web-3,db*", a) + _line(hashed, a))
    found = known_hosts.load(str(path))
    assert found.skipped == []
    assert found.keys_for("web-1") == [a] and found.keys_for("WEB-2") == [a]
    assert found.keys_for("web-3") == [] and found.keys_for("web-10") == []
    assert found.keys_for("db.example.com") == [a]
    assert found.keys_for("[10.0.0.7]:2200") == [a] and found.keys_for("10.0.0.7") == []


def test_missing_file_is_empty_and_home_is_shown_as_tilde(tmp_path):
    assert known_hosts.load(str(tmp_path / "none")).keys == []
    home = os.path.expanduser("~")
    assert known_hosts.shown_path(os.path.join(home, ".ssh", "known_hosts")) == (
        "~/.ssh/known_hosts")
