"""Throttled sshd: connections refused by MaxStartups are retried and never count as job
attempts; MaxSessions=2 (one SFTP session + the agent's channel) is enough."""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from checks import (  # noqa: E402
    FAST,
    FAULT_JOB,
    assert_nothing_lost,
    events_of,
    host_index,
    payloads,
    result_of,
    start_cli,
    stop_process,
    the_run_dir,
    write_inputs,
)
from helpers import write_inventory  # noqa: E402
from jobs_faults import Fault  # noqa: E402

import sshmr  # noqa: E402


def _hold_unauthenticated(address: str, port: int) -> socket.socket:
    """A TCP connection that gets sshd's banner and says nothing: with MaxStartups 1:100:1
    sshd drops every other new connection while this one is open. (A connection of the
    fixture's start-up probe may still be closing: sshd then drops ours; try again.)"""
    deadline = time.time() + 20
    while True:
        sock = socket.create_connection((address, port), timeout=5)
        try:
            banner = sock.recv(256)
        except OSError:
            banner = b""
        if banner.startswith(b"SSH-2.0"):  # sshd has accepted and counts it
            return sock
        sock.close()
        assert time.time() < deadline, f"sshd on {address}:{port} never let us in"
        time.sleep(0.1)


def _drops(c, index: int) -> int:
    return (c.host_dir(index) / "sshd.log").read_text().count("past MaxStartups")


def _release_after_a_refusal(c, index: int, held: socket.socket) -> list[float]:
    """Close ``held`` once sshd has refused one of sshmr's connections (not after a fixed
    time: a loaded machine may take longer than that to connect at all)."""
    before = _drops(c, index)
    released: list[float] = []

    def wait_and_release() -> None:
        deadline = time.time() + 60
        while _drops(c, index) == before and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        released.append(time.time())
        held.close()

    threading.Thread(target=wait_and_release, daemon=True).start()
    return released


def test_connections_refused_by_maxstartups_are_not_attempts(fresh_cluster, tmp_path):
    """Through the CLI, so that what a user sees on stderr is checked too."""
    c = fresh_cluster(2, MaxStartups="1:100:1")
    effects = tmp_path / "effects"
    effects.mkdir()
    inv = write_inventory(c, tmp_path / "inv.yaml", slots=2)
    h0 = c.hosts[0]
    # Host 1's jobs wait until the run's agent runs on host 0 too, so host 0 is sure to
    # get work once it is let in; the jobs' ids and order of dispatch do not matter.
    inputs = write_inputs(tmp_path / "inputs.txt",
                          payloads(effects, 10, sleep=0.1, barrier=[h0.workdir]))
    held = _hold_unauthenticated(h0.address, h0.port)
    try:
        releases = _release_after_a_refusal(c, 0, held)
        cli = start_cli("run", "-i", str(inv), FAULT_JOB, str(inputs), "--max-retries", "0",
                        "--json", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
        try:
            code = cli.wait(90)
        finally:
            stop_process(cli)
    finally:
        held.close()
    assert releases, "sshd never refused sshmr's connection"
    released = releases[0]

    err = (tmp_path / "cli.err").read_text()
    assert code == 0, err
    assert "Traceback" not in err  # a refused connection is a one-line host error
    result = result_of(the_run_dir(tmp_path / "runs"))
    assert_nothing_lost(result, 0, effects, cluster=c)
    assert result.ok, result
    assert [j.attempts for j in result] == [1] * 10
    refused = [e for e in events_of(result.run_dir, "host_failed") if e["host"] == h0.address]
    assert refused, "sshd refused the first connection"
    assert f"sshmr: host {refused[0]['message']}" in err
    up = [e for e in events_of(result.run_dir, "host_up") if e["host"] == h0.address]
    assert len(up) == 1 and up[0]["ts"] > released
    assert {host_index(j.result["tag"]) for j in result} == {0, 1}
    drops = (c.host_dir(0) / "sshd.log").read_text().count("past MaxStartups")
    print(f"\nMaxStartups: {len(refused)} connection(s) refused ({drops} drops in sshd's log);"
          f" host 0 up {up[0]['ts'] - released:.2f}s after the slot was freed")
    assert drops >= len(refused)


def test_maxsessions_2_is_enough(fresh_cluster, tmp_path):
    c = fresh_cluster(1, MaxSessions=2)
    effects = tmp_path / "effects"
    effects.mkdir()
    inv = write_inventory(c, tmp_path / "inv.yaml", slots=2)
    # large payloads are pushed and large results fetched over the one SFTP session
    items = [dict(p, pad="y" * 100_000) for p in payloads(effects, 4, result_kb=100)]
    items += payloads(effects, 4, prefix="small", sleep=0.05)
    result = sshmr.run(Fault(), items, inventory=str(inv), runs_dir=str(tmp_path / "runs"),
                       **FAST)
    assert_nothing_lost(result, 3, effects, cluster=c)
    assert result.ok, result
    assert [j.attempts for j in result] == [1] * 8


def test_a_lone_throttled_host_is_retried_not_given_up(fresh_cluster, tmp_path):
    """The only host refuses us for a while: the run waits for it (reconnect backoff)
    instead of stopping with "no host usable"."""
    c = fresh_cluster(1, MaxStartups="1:100:1")
    effects = tmp_path / "effects"
    effects.mkdir()
    inv = write_inventory(c, tmp_path / "inv.yaml", slots=2)
    held = _hold_unauthenticated(c.hosts[0].address, c.hosts[0].port)
    try:
        releases = _release_after_a_refusal(c, 0, held)
        result = sshmr.run(Fault, payloads(effects, 4), inventory=str(inv), max_retries=0,
                           runs_dir=str(tmp_path / "runs"))
    finally:
        held.close()
    assert releases, "sshd never refused sshmr's connection"
    assert_nothing_lost(result, 0, effects, cluster=c)
    assert result.ok, result
    assert [j.attempts for j in result] == [1] * 4
    assert events_of(result.run_dir, "host_failed")  # it was refused at first
