"""SshTransport's files over its own SFTP client, against real sshd: sizes around the
request sizes, the limits of issue 18, errors that leave a session usable, several
transfers at once over a few SFTP sessions, long directories, and files as created."""

from __future__ import annotations

import os
import stat
import threading

import pytest
from helpers import write_inventory

from sshmr.inventory import load_inventory
from sshmr.transport.base import TooLarge
from sshmr.transport.sftp_pool import SFTP_SESSIONS
from sshmr.transport.ssh import SshTransport


@pytest.fixture
def ssh(cluster, tmp_path):
    inv = load_inventory(str(write_inventory(cluster, tmp_path / "inv.yaml", hosts=[0])))
    transport = SshTransport(inv.hosts[0], inv.known_hosts)
    transport.connect()
    work = tmp_path / "remote"  # the cluster's hosts are this machine
    work.mkdir()
    yield transport, str(work)
    transport.close()


SIZES = [0, 1, 32767, 32768, 261119, 261120, 261121, (5 << 20) + 3]


@pytest.mark.parametrize("size", SIZES)
def test_files_go_and_come_back_whole(ssh, tmp_path, size):
    t, work = ssh
    data = os.urandom(size)
    src = tmp_path / "src"
    src.write_bytes(data)
    t.put_bytes(data, f"{work}/a")
    t.put_file(str(src), f"{work}/b")
    assert open(f"{work}/a", "rb").read() == data == open(f"{work}/b", "rb").read()
    assert stat.S_IMODE(os.stat(f"{work}/b").st_mode) == 0o600
    for limit in (None, size):
        assert t.get_bytes(f"{work}/a", limit=limit) == data
        t.get_file(f"{work}/b", str(tmp_path / "back"), limit=limit)
        assert (tmp_path / "back").read_bytes() == data


def test_more_than_the_limit_is_too_large_and_the_session_goes_on(ssh, tmp_path):
    t, work = ssh
    t.put_bytes(b"x" * 100_000, f"{work}/f")
    for limit in (0, 99_999):
        with pytest.raises(TooLarge):
            t.get_bytes(f"{work}/f", limit=limit)
        with pytest.raises(TooLarge):
            t.get_file(f"{work}/f", str(tmp_path / "g"), limit=limit)
    assert t.get_bytes(f"{work}/f", limit=100_000) == b"x" * 100_000
    assert t._sftp.open == 1  # the same session all along


def test_a_file_whose_size_the_host_does_not_tell_is_read_to_its_end(ssh):
    t, _ = ssh
    status = t.get_bytes("/proc/self/status")  # of the sftp-server: its size says 0
    assert b"\nPid:" in status and len(status) > 100
    assert t.get_bytes("/proc/self/status", limit=len(status) + 1000).startswith(b"Name:")
    with pytest.raises(TooLarge):
        t.get_bytes("/proc/self/status", limit=10)


def test_errors_say_what_paramiko_said_and_keep_the_session(ssh):
    t, work = ssh
    with pytest.raises(FileNotFoundError):
        t.get_bytes(f"{work}/missing")
    with pytest.raises(FileNotFoundError):
        t.put_bytes(b"x", f"{work}/no/such/dir/f")
    with pytest.raises(OSError):
        t.rename(f"{work}/missing", f"{work}/other")
    assert not t.exists(f"{work}/missing")
    t.makedirs(f"{work}/d1/d2/d3")
    assert os.path.isdir(f"{work}/d1/d2/d3")
    os.symlink(f"{work}/d1", f"{work}/link")
    with pytest.raises(NotADirectoryError):
        t.mkdir_private(f"{work}/link")
    assert t.home().startswith("/")
    assert t._sftp.open == 1


def test_many_names_in_a_directory(ssh):
    t, work = ssh
    names = {f"n{i:04d}" for i in range(450)}  # several READDIR replies
    for name in names:
        open(f"{work}/{name}", "w").close()
    assert set(t.listdir(work)) == names


def test_transfers_at_once_share_a_few_sessions(ssh, tmp_path):
    t, work = ssh
    blobs = {i: os.urandom((1 << 20) + i) for i in range(12)}
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            t.put_bytes(blobs[i], f"{work}/p{i}")
            assert t.get_bytes(f"{work}/p{i}", limit=len(blobs[i])) == blobs[i]
            t.get_file(f"{work}/p{i}", str(tmp_path / f"q{i}"), limit=len(blobs[i]))
            assert (tmp_path / f"q{i}").read_bytes() == blobs[i]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in blobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert 1 <= t._sftp.open <= SFTP_SESSIONS


def test_a_closed_transport_is_an_error_and_a_new_connection_works(ssh):
    t, work = ssh
    t.put_bytes(b"old", f"{work}/f")
    t.close()
    with pytest.raises(Exception, match="closed"):
        t.get_bytes(f"{work}/f")
    t.connect()
    assert t.get_bytes(f"{work}/f") == b"old"


def test_a_host_that_takes_fewer_sessions_shares_those_it_took(fresh_cluster, tmp_path):
    c = fresh_cluster(1, MaxSessions=2)
    inv = load_inventory(str(write_inventory(c, tmp_path / "inv.yaml")))
    t = SshTransport(inv.hosts[0], inv.known_hosts)
    t.connect()
    work = c.hosts[0].workdir
    blob = os.urandom(3 << 20)
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            t.put_bytes(blob, f"{work}/m{i}")
            assert t.get_bytes(f"{work}/m{i}", limit=len(blob)) == blob
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        assert t._sftp.open <= 2
    finally:
        t.close()
