"""A connection that drops during an SFTP transfer is an OSError, like any transfer failure.

paramiko reports a dropped connection as EOFError or SSHException; callers (resume's
collection, the master's I/O thread) handle OSError. The chaos run (seed 113) found a
resume whose host went away mid-collection end with click's bare "Aborted!" (an EOFError)
and the run left unfinished.
"""

from __future__ import annotations

from unittest import mock

import paramiko
import pytest
from helpers import write_inventory

from sshmr.inventory import load_inventory
from sshmr.transport.ssh import SshTransport


def test_sftp_on_a_connection_whose_host_died_raises_oserror(fresh_cluster, tmp_path):
    c = fresh_cluster(1)
    inv = load_inventory(str(write_inventory(c, tmp_path / "inv.yaml")))
    transport = SshTransport(inv.hosts[0], inv.known_hosts)
    transport.connect()
    try:
        path = f"{c.hosts[0].workdir}/probe"
        transport.put_bytes(b"x" * 1000, path)
        assert transport.get_bytes(path) == b"x" * 1000
        c.kill_host(0)  # the sshd and its session die: the connection drops
        for op in (lambda: transport.get_bytes(path), lambda: transport.put_bytes(b"y", path),
                   lambda: transport.exists(path)):
            with pytest.raises(OSError):
                op()
    finally:
        transport.close()


DROPPED = [EOFError(), paramiko.SSHException("Server connection dropped")]


@pytest.mark.parametrize("dropped", DROPPED)
def test_paramikos_dropped_connection_errors_come_out_as_oserror(fresh_cluster, tmp_path,
                                                                 dropped):
    """paramiko raises these when the connection goes while a request is on the wire (a
    race a test cannot time): injected into a real session's SFTP channel, when it sends a
    request or reads a reply."""
    c = fresh_cluster(1)
    inv = load_inventory(str(write_inventory(c, tmp_path / "inv.yaml")))
    transport = SshTransport(inv.hosts[0], inv.known_hosts)
    transport.connect()
    try:
        path = f"{c.hosts[0].workdir}/probe"
        transport.put_bytes(b"x", path)
        for op in (lambda: transport.get_bytes(path), lambda: transport.put_bytes(b"y", path),
                   lambda: transport.exists(path), lambda: transport.listdir("."),
                   lambda: transport.expand_user("~/x")):
            for name in ("recv", "sendall"):
                with mock.patch.object(paramiko.Channel, name, side_effect=dropped):
                    with pytest.raises(ConnectionResetError, match="lost during SFTP"):
                        op()
    finally:
        transport.close()
