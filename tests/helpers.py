"""Test helpers: inventories for a test cluster, running the CLI as a real subprocess."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
JOBS = Path(__file__).resolve().parent / "jobs"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def write_inventory(cluster: Any, path: Path, *, hosts: list[int] | None = None,
                    known_hosts: str | None = None, host_overrides: dict[int, dict] | None = None,
                    **defaults: Any) -> Path:
    """An inventory for ``cluster`` (all hosts, or those in ``hosts``) with overrides."""
    base = {"user": _user(), "slots": 4, "identity_file": str(cluster.client_key),
            "python": sys.executable}
    base.update(defaults)
    entries = []
    for h in cluster.hosts:
        if hosts is not None and h.index not in hosts:
            continue
        entry = {"host": h.address, "port": h.port, "workdir": h.workdir}
        entry.update((host_overrides or {}).get(h.index, {}))
        entries.append(entry)
    doc = {"known_hosts": known_hosts or str(cluster.known_hosts),
           "ssh_config": str(cluster.ssh_config), "defaults": base, "hosts": entries}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _user() -> str:
    import getpass

    return getpass.getuser()


def sshmr_cli(*args: str, cwd: Path, timeout: float = 120,
              stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m sshmr ARGS`` and return the completed process (text)."""
    env = dict(os.environ)
    env.pop("SSH_AUTH_SOCK", None)
    return subprocess.run([sys.executable, "-m", "sshmr", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, input=stdin)


def remote_files(cluster: Any, index: int) -> list[str]:
    """Every file under host ``index``'s workdir (relative paths)."""
    root = Path(cluster.hosts[index].workdir)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def in_pty(args: list[str], cwd: Path, timeout: float = 90,
            on_output: Callable[[str, subprocess.Popen], None] | None = None
            ) -> tuple[int, str, str]:
    """Run ``python -m sshmr ARGS`` on a 100x40 pseudo-terminal: its exit code, all it
    wrote, and that without escape sequences."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("SSH_AUTH_SOCK", "COLUMNS", "LINES")}
    env["TERM"] = "xterm-256color"
    proc = subprocess.Popen([sys.executable, "-m", "sshmr", *args], cwd=cwd, env=env,
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the terminal's other side is closed
                    data = b""
                if not data:
                    break
                chunks.append(data)
                if on_output:
                    on_output(b"".join(chunks).decode(errors="replace"), proc)
        else:
            raise AssertionError(f"sshmr {' '.join(args)} did not finish in {timeout}s")
        text = b"".join(chunks).decode(errors="replace")
        return proc.wait(15), text, ANSI.sub("", text)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
