"""Test helpers: inventories for a test cluster, running the CLI as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
JOBS = Path(__file__).resolve().parent / "jobs"


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
