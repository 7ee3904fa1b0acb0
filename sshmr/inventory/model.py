"""The inventory's records: ``Host`` (one resolved entry) and ``Inventory`` (a parsed file),
the defaults every field falls back to, and OpenSSH's rule for private key files."""

from __future__ import annotations

import os
import re
import shlex
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
DEFAULT_SSH_CONFIG = "~/.ssh/config"
DEFAULT_PORT = 22
DEFAULT_PYTHON = "python3"
DEFAULT_WORKDIR = "~/.sshmr"
DEFAULT_CONNECT_TIMEOUT = 10.0

TOP_KEYS = ("defaults", "known_hosts", "ssh_config", "hosts", "groups")
FIELD_KEYS = ("port", "user", "identity_file", "slots", "python", "workdir", "connect_timeout")
HOST_KEYS = ("host", *FIELD_KEYS)
USER_METACHARS = frozenset("'`\";&<>|(){}$")  # OpenSSH's valid_ruser refuses these
HOST_NAME = re.compile(r"[A-Za-z0-9_.:%+\[\]-]+")  # DNS names, IPv4/6 (+ zone), aliases


def key_file_problem(path: str) -> str | None:
    """Why OpenSSH would refuse the private key file ``path``: it is ours and others may
    read or write it. None if it is fine or does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid != os.getuid() or not mode & 0o077:
        return None
    how = "readable" if mode & 0o044 else "writable"
    return (f"key file {path} is {how} by others (mode {mode:04o}); run "
            f"`chmod 600 {shlex.quote(path)}`")


@dataclass(frozen=True)
class Host:
    """One resolved inventory entry. ``name`` is the unique key used everywhere else."""

    name: str
    hostname: str
    port: int
    user: str
    identity_files: tuple[str, ...]
    slots: int | None  # None means "auto": the host's CPU count, resolved by the master
    python: str
    workdir: str
    proxy_jump: str | None
    connect_timeout: float


@dataclass(frozen=True)
class Inventory:
    """A parsed inventory: an sshmr YAML file, an Ansible inventory (INI or YAML), or the
    ``Host`` aliases of ``~/.ssh/config`` (``kind`` says which). ``groups`` maps each group
    name to the names of its hosts (children's hosts included, inventory order); ``pattern``
    is the ``--hosts`` selection that chose ``hosts`` from the file (None: all of them)."""

    path: str
    hosts: tuple[Host, ...]
    known_hosts: str
    ssh_config: str | None
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    kind: str = "sshmr"  # "sshmr", "ansible-ini", "ansible-yaml" or "ssh_config"
    pattern: str | None = None
