"""Issue 22: what a new user hits first, end to end on real sshd hosts and the CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers import EXAMPLES, sshmr_cli, write_inventory  # noqa: E402


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
