"""Tests of the sshd cluster fixture itself (tests/sshd_cluster.py, tests/conftest.py)."""

from __future__ import annotations

import os
import pwd
import socket
import time
from pathlib import Path

import paramiko
import pytest
import sshd_cluster as sc
import yaml
from sshd_cluster import SshdCluster


def connect(cluster: SshdCluster, i: int, **kwargs) -> paramiko.SSHClient:
    """paramiko client to host ``i``, key auth, host key verified against known_hosts."""
    host = cluster.hosts[i]
    client = paramiko.SSHClient()
    client.load_host_keys(kwargs.pop("known_hosts", str(cluster.known_hosts)))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    params = dict(
        username=cluster.user,
        key_filename=str(cluster.client_key),
        look_for_keys=False,
        allow_agent=False,
        timeout=5,
        banner_timeout=5,
        auth_timeout=5,
    )
    params.update(kwargs)
    try:
        client.connect(host.address, port=host.port, **params)
    except BaseException:
        client.close()
        raise
    return client


def run(client: paramiko.SSHClient, command: str) -> tuple[int, str, str]:
    _, stdout, stderr = client.exec_command(command, timeout=15)
    out, err = stdout.read().decode(), stderr.read().decode()
    return stdout.channel.recv_exit_status(), out, err


def wait_for(predicate, timeout: float = 5.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def port_refuses(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def sleeps(cluster: SshdCluster, i: int | None, arg: str) -> list[int]:
    return [pid for pid, cmd in cluster.descendants(i) if cmd == f"sleep {arg}"]


# --------------------------------------------------------------------------- layout


def test_layout_inventory_and_known_hosts(sshd_cluster: SshdCluster) -> None:
    c = sshd_cluster
    assert [h.name for h in c.hosts] == ["h0", "h1", "h2", "h3"]
    assert len({(h.address, h.port) for h in c.hosts}) == 4
    assert len({h.host_key_pub for h in c.hosts}) == 4
    for h in c.hosts:
        assert h.address.startswith("127.0.0.")
        assert h.pid is not None and pid_alive(h.pid)
        assert h.host_key_pub.startswith("ssh-ed25519 AAAA")
        assert Path(h.workdir).is_dir()
        assert Path(h.workdir).stat().st_mode & 0o777 == 0o700
        assert Path(h.workdir) == c.root / h.name / "work"
    assert c.client_key.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert c.ssh_config.read_text() == ""

    known = c.known_hosts.read_text().splitlines()
    assert known == [f"[{h.address}]:{h.port} {h.host_key_pub}" for h in c.hosts]

    inv = yaml.safe_load(c.inventory.read_text())
    assert inv["known_hosts"] == str(c.known_hosts)
    assert inv["ssh_config"] == str(c.ssh_config)
    assert inv["defaults"]["user"] == pwd.getpwuid(os.geteuid()).pw_name
    assert inv["defaults"]["slots"] == 4
    assert inv["defaults"]["identity_file"] == str(c.client_key)
    assert Path(inv["defaults"]["python"]).exists()
    assert inv["hosts"] == [
        {"host": h.address, "port": h.port, "workdir": h.workdir} for h in c.hosts
    ]


def test_write_inventory_overrides_defaults(sshd_cluster: SshdCluster, tmp_path: Path) -> None:
    other = sshd_cluster.write_inventory(tmp_path / "inv.yaml", slots=1, python=None)
    data = yaml.safe_load(other.read_text())
    assert data["defaults"]["slots"] == 1 and "python" not in data["defaults"]
    assert yaml.safe_load(sshd_cluster.inventory.read_text())["defaults"]["slots"] == 4
    assert sshd_cluster.write_inventory(slots=2) == sshd_cluster.inventory
    assert yaml.safe_load(sshd_cluster.inventory.read_text())["defaults"]["slots"] == 2
    # the autouse hygiene fixture restores the default inventory after this test


def test_sshd_config_has_key_only_auth_and_overrides(fresh_cluster) -> None:
    c = fresh_cluster(1, MaxSessions=2, LogLevel="DEBUG1")
    text = c.config_path(0).read_text()
    assert "MaxSessions 2\n" in text and "MaxSessions 100" not in text
    assert "LogLevel DEBUG1\n" in text
    for line in ("PasswordAuthentication no", "UsePAM no", "Subsystem sftp internal-sftp"):
        assert line + "\n" in text
    # MaxSessions 2 is really in force: a third session on one connection is refused
    client = connect(c, 0)
    try:
        transport = client.get_transport()
        a, b = transport.open_session(), transport.open_session()
        with pytest.raises(paramiko.ChannelException):
            transport.open_session(timeout=5)
        a.close()
        b.close()
    finally:
        client.close()


# --------------------------------------------------------------------------- ssh access


@pytest.mark.parametrize("i", range(4))
def test_host_accepts_client_key_and_runs_commands(sshd_cluster: SshdCluster, i: int) -> None:
    client = connect(sshd_cluster, i)
    try:
        status, out, err = run(client, 'echo $HOME; python3 -c "print(1)"')
    finally:
        client.close()
    assert status == 0, err
    # each host has a home of its own (no rc files), like a separate server
    assert out.splitlines() == [str(sshd_cluster.host_dir(i) / "home"), "1"]


def test_host_key_is_verified(sshd_cluster: SshdCluster, tmp_path: Path) -> None:
    c = sshd_cluster
    h0, h1 = c.hosts[0], c.hosts[1]
    wrong = tmp_path / "known_hosts_wrong"  # h0's address with h1's key
    wrong.write_text(f"[{h0.address}]:{h0.port} {h1.host_key_pub}\n")
    with pytest.raises(paramiko.BadHostKeyException):
        connect(c, 0, known_hosts=str(wrong))
    empty = tmp_path / "known_hosts_empty"
    empty.write_text("")
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        connect(c, 0, known_hosts=str(empty))


def test_password_auth_is_refused(sshd_cluster: SshdCluster) -> None:
    with pytest.raises(paramiko.BadAuthenticationType) as info:
        connect(sshd_cluster, 0, key_filename=None, password="secret")
    assert info.value.allowed_types == ["publickey"]


def test_unknown_client_key_is_refused(sshd_cluster: SshdCluster) -> None:
    other = paramiko.RSAKey.generate(2048)  # not in authorized_keys
    with pytest.raises(paramiko.AuthenticationException):
        connect(sshd_cluster, 1, key_filename=None, pkey=other)


def test_sftp_put_and_get_in_workdir(sshd_cluster: SshdCluster, tmp_path: Path) -> None:
    host = sshd_cluster.hosts[2]
    local = tmp_path / "payload.bin"
    payload = os.urandom(100_000)
    local.write_bytes(payload)
    remote = f"{host.workdir}/payload.bin"
    client = connect(sshd_cluster, 2)
    try:
        with client.open_sftp() as sftp:
            sftp.put(str(local), remote)
            assert sftp.stat(remote).st_size == len(payload)
            back = tmp_path / "back.bin"
            sftp.get(remote, str(back))
            sftp.remove(remote)
    finally:
        client.close()
    assert back.read_bytes() == payload
    assert not Path(remote).exists()


# --------------------------------------------------------------------------- processes


def test_descendants_sees_exec_sleep_until_it_ends(sshd_cluster: SshdCluster) -> None:
    c = sshd_cluster
    assert c.descendants() == []
    client = connect(c, 1)
    try:
        _, stdout, _ = client.exec_command("echo $SSHD_CLUSTER_TAG; exec sleep 0.7")
        assert stdout.readline().strip() == c.tag(1)
        pids = wait_for(lambda: sleeps(c, 1, "0.7"), what="sleep in descendants(1)")
        assert sleeps(c, None, "0.7") == pids
        assert sleeps(c, 0, "0.7") == []
        assert stdout.channel.recv_exit_status() == 0
    finally:
        client.close()
    wait_for(lambda: c.descendants() == [], timeout=3, what="descendants() to be empty")
    assert not pid_alive(pids[0])


def test_detached_orphan_is_found_and_reaped(fresh_cluster) -> None:
    c = fresh_cluster(1)
    client = connect(c, 0)
    try:
        status, _, err = run(client, "setsid nohup sleep 31 </dev/null >/dev/null 2>&1 &")
    finally:
        client.close()
    assert status == 0, err
    # the session is over and the sleep was reparented out of the sshd tree
    pids = wait_for(lambda: sleeps(c, 0, "31"), what="detached sleep in descendants()")
    leftovers = c.reap_leftovers(timeout=0.2)
    assert [(h, p) for h, p, cmd in leftovers if cmd == "sleep 31"] == [("h0", pids[0])]
    assert not pid_alive(pids[0])
    assert c.descendants() == []


def test_kill_host_and_start_host(fresh_cluster) -> None:
    c = fresh_cluster(2)
    h0 = c.hosts[0]
    old_pid, old_port = h0.pid, h0.port
    client = connect(c, 0)
    try:
        chan = client.get_transport().open_session()
        chan.exec_command("sleep 30")
        sleep_pid = wait_for(lambda: sleeps(c, 0, "30"), what="sleep 30 on h0")[0]

        c.kill_host(0)

        assert h0.pid is None and not c.alive(0)
        assert not pid_alive(old_pid)
        assert not pid_alive(sleep_pid)
        assert port_refuses(h0.address, h0.port)
        assert c.descendants(0) == []
        wait_for(lambda: chan.closed or not client.get_transport().is_active(), what="eof")
    finally:
        client.close()

    other = connect(c, 1)  # h1 is unaffected
    try:
        assert run(other, "echo ok")[1] == "ok\n"
    finally:
        other.close()

    c.start_host(0)
    assert c.alive(0) and h0.pid not in (None, old_pid) and h0.port == old_port
    again = connect(c, 0)  # same address, port and host key
    try:
        assert run(again, "echo back")[1] == "back\n"
    finally:
        again.close()


def test_session_cluster_host_is_revived_after_a_test_kills_it(sshd_cluster: SshdCluster) -> None:
    # kills h3 of the shared cluster; the hygiene fixture must restart it (checked below)
    sshd_cluster.kill_host(3)
    assert port_refuses(sshd_cluster.hosts[3].address, sshd_cluster.hosts[3].port)


def test_session_cluster_host_was_revived(sshd_cluster: SshdCluster) -> None:
    assert all(sshd_cluster.alive(h.index) for h in sshd_cluster.hosts)
    client = connect(sshd_cluster, 3)
    client.close()


def test_stop_kills_everything_and_context_manager(tmp_path: Path) -> None:
    t0 = time.monotonic()
    with SshdCluster(tmp_path / "c", 3) as c:
        started = time.monotonic() - t0
        client = connect(c, 2)
        try:
            client.exec_command("sleep 32")
            sleep_pid = wait_for(lambda: sleeps(c, 2, "32"), what="sleep 32")[0]
        finally:
            client.close()
        sshd_pids = [h.pid for h in c.hosts]
    assert started < 5, f"cluster start took {started:.2f} s"
    assert not pid_alive(sleep_pid)
    assert not any(pid_alive(p) for p in sshd_pids)
    assert all(port_refuses(h.address, h.port) for h in c.hosts)
    assert c.descendants() == []


def test_falls_back_to_127_0_0_1_when_other_loopback_addresses_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class OnlyLocalhost(socket.socket):
        def bind(self, address):
            if address[0] != "127.0.0.1":
                raise OSError(99, "Cannot assign requested address")
            return super().bind(address)

    class FakeSocketModule:
        AF_INET, SOCK_STREAM = socket.AF_INET, socket.SOCK_STREAM
        create_connection = staticmethod(socket.create_connection)
        socket = OnlyLocalhost

    monkeypatch.setattr(sc, "socket", FakeSocketModule)
    with SshdCluster(tmp_path / "c", 2) as c:
        assert [h.address for h in c.hosts] == ["127.0.0.1", "127.0.0.1"]
        assert c.hosts[0].port != c.hosts[1].port
        for i in range(2):
            client = connect(c, i)
            try:
                assert run(client, "echo $SSHD_CLUSTER_TAG")[1] == c.tag(i) + "\n"
            finally:
                client.close()


def test_missing_sshd_fails_with_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sc, "SSHD_CANDIDATES", ())
    with pytest.raises(sc.SshdNotFound, match="openssh-server"):
        SshdCluster(tmp_path / "c", 1).start()
