"""Issue 12, fault 6: the run's key is revoked on a host mid-run.

Mid-job, host 0's sshd and everything it started are killed, and it is restarted reading
an empty ``authorized_keys``. The master's reconnect fails with an authentication error
naming the host and the key; an authentication failure is fatal for the host (it is
never retried: the host stays down for the rest of the run) and its jobs run on host 1.
The CLI runs with a pseudo-terminal as its stdin and controlling terminal: nothing may
ever prompt on it (no password, no passphrase) or wait for it.
"""

from __future__ import annotations

import fcntl
import os
import pty
import subprocess
import sys
import termios
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from checks import (  # noqa: E402
    FAULT_JOB,
    Background,
    assert_nothing_lost,
    events_of,
    host_index,
    hosts_of,
    launches,
    payloads,
    result_of,
    stop_process,
    the_run_dir,
    wait_for,
    write_inputs,
)
from helpers import write_inventory  # noqa: E402


def _cli_on_a_tty(args: list[str], cwd: Path) -> tuple[subprocess.Popen, int]:
    """``python -m sshmr ARGS`` in a session of its own whose controlling terminal (and
    stdin) is a new pty; returns the process and the pty's master end."""
    master, slave = pty.openpty()

    def take_tty() -> None:  # in the child: the pty becomes its controlling terminal
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    env = dict(os.environ)
    env.pop("SSH_AUTH_SOCK", None)
    with open(cwd / "cli.out", "wb") as out, open(cwd / "cli.err", "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "sshmr", *args], cwd=cwd, env=env,
                                stdin=slave, stdout=out, stderr=err, preexec_fn=take_tty)
    os.close(slave)
    return proc, master


def _read_all(fd: int) -> bytes:
    os.set_blocking(fd, False)
    data = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except (BlockingIOError, OSError):  # nothing (more), or the session's end (EIO)
            return data
        if not chunk:
            return data
        data += chunk


def test_revoked_key_fails_the_host_for_good_with_one_clear_error(fresh_cluster, tmp_path):
    c = fresh_cluster(2)
    effects = tmp_path / "effects"
    effects.mkdir()
    inv = write_inventory(c, tmp_path / "inv.yaml", slots=2)
    inputs = write_inputs(tmp_path / "inputs.txt", payloads(effects, 16, sleep=0.6))
    empty = tmp_path / "revoked_authorized_keys"
    empty.write_text("")
    revoked_at: list[float] = []

    def revoke_key_on_host_0() -> None:
        def busy_on_0() -> bool:
            return sum(1 for runs in launches(effects).values()
                       if any(host_index(r[2]) == 0 for r in runs)) >= 2
        wait_for(busy_on_0, 20, "jobs on host 0")
        revoked_at.append(time.time())
        c.kill_host(0)
        c.sshd_options["AuthorizedKeysFile"] = str(empty)  # read when h0's sshd starts
        c.start_host(0)

    cli, tty = _cli_on_a_tty(["run", "-i", str(inv), FAULT_JOB, str(inputs), "--max-retries",
                              "2", "--runs-dir", str(tmp_path / "runs")], tmp_path)
    fault = Background(revoke_key_on_host_0)
    fault.start()
    try:
        code = cli.wait(90)  # a prompt waiting for the terminal would hang here
        fault.join()
        on_tty = _read_all(tty)
    finally:
        stop_process(cli)
        os.close(tty)
    err = (tmp_path / "cli.err").read_text()
    assert code == 0, err
    assert on_tty == b"", f"something was written to the terminal: {on_tty!r}"

    result = result_of(the_run_dir(tmp_path / "runs"))
    by_job = assert_nothing_lost(result, 2, effects, cluster=c, dead_hosts=[0])
    assert result.ok, result
    h0 = c.hosts[0].address
    failed = [e for e in events_of(result.run_dir, "host_failed") if e["host"] == h0]
    assert len(failed) == 1, f"an authentication failure is never retried: {failed}"
    message = failed[0]["message"]
    assert h0 in message and str(c.client_key) in message and "no key accepted" in message
    assert hosts_of(result.run_dir)[h0]["state"] == "failed"
    ups = [e["ts"] for e in events_of(result.run_dir, "host_up") if e["host"] == h0]
    assert len(ups) == 1 and ups[0] < revoked_at[0], "the host never came back"
    # one clear line on stderr names the host and the key
    lines = [ln for ln in err.splitlines() if "no key accepted" in ln]
    assert len(lines) == 1 and h0 in lines[0] and str(c.client_key) in lines[0], err
    assert "Traceback" not in err and "assword" not in err and "assphrase" not in err
    lost = [a for rows in by_job.values() for a in rows if a["reason"] == "host_lost"]
    assert lost, "host 0 was killed while it ran jobs"
    for a in lost:
        assert by_job[a["job"]][-1]["host"] != h0
        assert by_job[a["job"]][-1]["state"] == "SUCCEEDED"
    down_for = failed[0]["ts"] - revoked_at[0]
    print(f"\nkey revoked -> host failed for good {down_for:.2f}s later (one attempt, no "
          f"retry): {message}")
