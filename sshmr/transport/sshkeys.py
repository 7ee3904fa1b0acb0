"""The keys of an SSH connection, checked the way OpenSSH checks them.

The host's key is verified against the inventory's known_hosts file (``[host]:port`` for
non-22 ports): an unknown host is refused unless ``accept_new`` (then its key is recorded,
like ``StrictHostKeyChecking=accept-new``); a changed or ``@revoked`` key is always
refused. The file is read by ``known_hosts`` (lines it cannot read are skipped, warned).
Our keys are the inventory's identity files (or ``~/.ssh``'s default ones), then the
agent's; a private key file others may read is refused before connecting, as OpenSSH does.
"""

from __future__ import annotations

import os
import threading

import paramiko

from ..errors import (
    AuthenticationFailed,
    HostKeyChanged,
    HostKeyRevoked,
    HostKeyUnknown,
    HostUnreachable,
)
from ..inventory import Host, key_file_problem
from . import known_hosts as known_hosts_file

DEFAULT_KEYS = ("id_ed25519", "id_ecdsa", "id_rsa")
_KNOWN_HOSTS_LOCK = threading.Lock()


def known_hosts_name(hostname: str, port: int) -> str:
    return hostname if port == 22 else f"[{hostname}]:{port}"


def refuse_open_key_files(h: Host) -> None:
    for path in h.identity_files or [os.path.expanduser(f"~/.ssh/{n}") for n in DEFAULT_KEYS]:
        problem = key_file_problem(path)
        if problem:
            raise AuthenticationFailed(h.name, problem)


def verify_host_key(t: paramiko.Transport, h: Host, known_hosts: str, accept_new: bool) -> None:
    """Check the server's key against ``known_hosts`` (see the module docstring)."""
    key = t.get_remote_server_key()
    name = known_hosts_name(h.hostname, h.port)
    with _KNOWN_HOSTS_LOCK:
        try:
            keys = known_hosts_file.load(known_hosts)
        except OSError as exc:
            raise HostKeyUnknown(h.name, f"cannot read {known_hosts}: {exc}") from None
        if keys.is_revoked(name, key):
            raise HostKeyRevoked(
                h.name, f"the {key.get_name()} key of {name} is marked @revoked in "
                f"{known_hosts}; nothing was sent. The host must get a new key")
        known = keys.keys_for(name)
        if not known:
            if not accept_new:
                raise HostKeyUnknown(
                    h.name, f"host key for {name} ({key.get_name()}) is not in "
                    f"{known_hosts}; check it and run with --accept-new-hosts to record"
                    " it (like ssh -o StrictHostKeyChecking=accept-new)")
            _record_key(known_hosts, name, key)
            return
        if key in known:
            return
        raise HostKeyChanged(
            h.name, f"REMOTE HOST IDENTIFICATION HAS CHANGED: the {key.get_name()} key of "
            f"{name} differs from {known_hosts}; nothing was sent. If the change is "
            f"expected, remove the old key with: ssh-keygen -R '{name}' -f {known_hosts}")


def _record_key(known_hosts: str, name: str, key: paramiko.PKey) -> None:
    os.makedirs(os.path.dirname(known_hosts) or ".", mode=0o700, exist_ok=True)
    line = f"{name} {key.get_name()} {key.get_base64()}\n"
    with open(known_hosts, "a", encoding="ascii") as f:
        f.write(line)


def authenticate(t: paramiko.Transport, h: Host) -> None:
    """Our keys, in order: the identity files (or the default ones), then the agent's."""
    files = list(h.identity_files)
    explicit = bool(files)
    if not files:
        files = [os.path.expanduser(f"~/.ssh/{n}") for n in DEFAULT_KEYS]
    tried: list[str] = []
    for path in files:
        if not os.path.exists(path):
            if explicit:
                raise AuthenticationFailed(
                    h.name, f"identity file {path} does not exist; fix identity_file in the"
                    " inventory or ssh_config")
            continue
        try:
            key = paramiko.PKey.from_path(path)
        except (paramiko.SSHException, OSError, ValueError) as exc:
            tried.append(f"{path} (unreadable: {exc})")
            continue
        if _try_key(t, h, key):
            return
        tried.append(path)
    if os.environ.get("SSH_AUTH_SOCK"):
        agent = paramiko.Agent()
        for key in agent.get_keys():
            if _try_key(t, h, key):
                return
            tried.append(f"agent key {key.get_fingerprint().hex()[:16]}")
        agent.close()
    raise AuthenticationFailed(
        h.name, f"no key accepted for {h.user}@{h.hostname}:{h.port} (tried: "
        f"{', '.join(tried) or 'no keys found'}); check identity_file and the host's"
        " authorized_keys")


def _try_key(t: paramiko.Transport, h: Host, key: paramiko.PKey) -> bool:
    try:
        t.auth_publickey(h.user, key)
    except paramiko.AuthenticationException:
        return False
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise HostUnreachable(h.name, f"connection lost during auth: {exc}") from None
    return t.is_authenticated()
