"""Ansible inventories and ``--hosts`` end to end on the real sshd cluster: a run through
``sshmr run -i hosts.ini --hosts GROUP`` gives jobs to the selected hosts only; the Ansible
YAML form through ``sshmr.run(hosts=...)``; ``~/.ssh/config`` aliases without ``-i``."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "jobs"))

import jobs_basic  # noqa: E402
from helpers import EXAMPLES, sshmr_cli  # noqa: E402

import sshmr  # noqa: E402


def _hostline(cluster, i: int) -> str:
    h = cluster.hosts[i]
    return (f"h{i} ansible_host={h.address} ansible_port={h.port}"
            f" sshmr_workdir={h.workdir}")


def write_ini(cluster, path: Path) -> Path:
    """h0, h1 in [web]; h2, h3 in [db]; both under [prod:children]; connection settings
    from [all:vars] (key, user, python, the cluster's known_hosts and ssh_config)."""
    lines = ["[web]", _hostline(cluster, 0), _hostline(cluster, 1), "",
             "[db]", _hostline(cluster, 2), _hostline(cluster, 3), "",
             "[prod:children]", "web", "db", "",
             "[web:vars]", "sshmr_slots=2", "",
             "[all:vars]", f"ansible_user={cluster.user}",
             f"ansible_ssh_private_key_file={cluster.client_key}",
             f"sshmr_python={sys.executable}", "sshmr_slots=1",
             f"sshmr_known_hosts={cluster.known_hosts}", f"sshmr_ssh_config={cluster.ssh_config}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def _runs_on_host(cluster, i: int) -> list[str]:
    runs = Path(cluster.hosts[i].workdir) / "runs"
    return sorted(os.listdir(runs)) if runs.is_dir() else []


def test_cli_run_with_ini_inventory_and_hosts_group(cluster, tmp_path):
    inv = write_ini(cluster, tmp_path / "hosts.ini")
    listed = sshmr_cli("hosts", "-i", str(inv), "--hosts", "web", "--list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()] == ["h0", "h1"]
    assert "slots 2" in listed.stdout and "groups web,prod" in listed.stdout
    before = {i: _runs_on_host(cluster, i) for i in range(4)}
    proc = sshmr_cli("run", "-i", str(inv), "--hosts", "web", f"{EXAMPLES}/squares.py:Square",
                     f"{EXAMPLES}/numbers.txt", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["succeeded"] == summary["jobs"] == 100
    results = [json.loads(line) for line in
               sshmr_cli("results", cwd=tmp_path).stdout.splitlines()]
    assert len(results) == 100 and all(r["state"] == "SUCCEEDED" for r in results)
    used = {r["host"] for r in results}
    assert used and used <= {"h0", "h1"}, used  # web hosts only (which: up to the load)
    status = json.loads(sshmr_cli("status", "--json", cwd=tmp_path).stdout)
    assert sorted(h["name"] for h in status["hosts"]) == ["h0", "h1"]
    for i in (2, 3):  # the db hosts were never even set up for this run
        assert _runs_on_host(cluster, i) == before[i]
    hosts = sshmr_cli("hosts", "-i", str(inv), "--hosts", "prod:!h1:!h3", "--json",
                      cwd=tmp_path)
    assert hosts.returncode == 0, hosts.stderr
    assert [r["host"] for r in json.loads(hosts.stdout)] == ["h0", "h2"]
    assert all(r["ok"] for r in json.loads(hosts.stdout))


def test_bad_host_pattern_is_a_one_line_error_and_nothing_runs(cluster, tmp_path):
    inv = write_ini(cluster, tmp_path / "hosts.ini")
    proc = sshmr_cli("run", "-i", str(inv), "--hosts", "webb", f"{EXAMPLES}/squares.py:Square",
                     f"{EXAMPLES}/numbers.txt", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"sshmr: error: {inv}: --hosts 'webb': no group or host"
                                  " matches 'webb'")
    assert proc.stderr.count("\n") == 1 and not (tmp_path / "sshmr-runs").exists()


def test_api_run_with_ansible_yaml_inventory_and_hosts(cluster, tmp_path):
    def host(i: int) -> dict:
        h = cluster.hosts[i]
        return {"ansible_host": h.address, "ansible_port": h.port, "sshmr_workdir": h.workdir}

    inv = tmp_path / "hosts.yml"
    inv.write_text(json.dumps({"all": {
        "vars": {"ansible_user": cluster.user, "ansible_ssh_private_key_file":
                 str(cluster.client_key), "sshmr_python": sys.executable, "sshmr_slots": 2,
                 "sshmr_known_hosts": str(cluster.known_hosts),
                 "sshmr_ssh_config": str(cluster.ssh_config)},
        "children": {"web": {"hosts": {"h0": host(0), "h1": host(1)}},
                     "db": {"hosts": {"h2": host(2), "h3": host(3)}}}}}, indent=1))
    result = sshmr.run(jobs_basic.Square(), [str(i) for i in range(40)], inventory=str(inv),
                       hosts="db:h0:!h3", runs_dir=str(tmp_path / "runs"))
    assert result.ok and result.results == [i * i for i in range(40)]
    used = {job.host for job in result.jobs}
    assert used and used <= {"h0", "h2"}, used
    from sshmr.record.journal import Journal  # the selection is recorded, for resume

    journal = Journal(result.run_dir, readonly=True)
    try:
        meta = journal.meta()
        run_hosts = sorted(dict(h)["name"] for h in journal.hosts())
    finally:
        journal.close()
    assert meta["host_pattern"] == "db:h0:!h3" and meta["inventory"] == str(inv)
    # the hosts the master talked to: only selected ones (a host still connecting when the
    # 40 quick jobs are done has no row; it did in a loaded CI run)
    assert run_hosts and set(run_hosts) <= {"h0", "h2"}, run_hosts


def test_ssh_config_aliases_without_inventory(cluster, tmp_path):
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    key = home / ".ssh" / "id_cluster"
    shutil.copy(cluster.client_key, key)
    key.chmod(0o600)
    shutil.copy(cluster.known_hosts, home / ".ssh" / "known_hosts")
    config = "".join(f"Host node{i}\n  HostName {h.address}\n  Port {h.port}\n"
                     for i, h in enumerate(cluster.hosts))
    config += f"Host *\n  User {cluster.user}\n  IdentityFile {key}\n"
    (home / ".ssh" / "config").write_text(config)
    env_home = os.environ["HOME"]
    os.environ["HOME"] = str(home)  # sshmr_cli passes the environment on
    try:
        proc = sshmr_cli("run", "--hosts", "node1:node3", f"{EXAMPLES}/squares.py:Square",
                         f"{EXAMPLES}/numbers.txt", "--json", cwd=tmp_path)
        bad = sshmr_cli("hosts", "--hosts", "nodes*", cwd=tmp_path)
    finally:
        os.environ["HOME"] = env_home
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["succeeded"] == 100
    results = [json.loads(line) for line in
               sshmr_cli("results", cwd=tmp_path).stdout.splitlines()]
    used = {r["host"] for r in results}
    assert used and used <= {"node1", "node3"}, used
    status = json.loads(sshmr_cli("status", "--json", cwd=tmp_path).stdout)
    assert sorted(h["name"] for h in status["hosts"]) == ["node1", "node3"]
    assert bad.returncode == 2 and "no group or host matches 'nodes*'" in bad.stderr
    assert "hosts: node0, node1, node2, node3" in bad.stderr
