"""How many SSH handshakes the master runs at once against one sshd.

Hosts connect in parallel (each on its own thread), but at most ``MAX_HANDSHAKES`` at
once to one sshd (one address and port, or one jump host: several inventory hosts may be
one sshd through ssh_config): sshd's ``MaxStartups`` (default 10:30:100) starts dropping
unauthenticated connections beyond 10. A handshake holds its sshd's gate from the TCP
connect to the end of authentication.
"""

from __future__ import annotations

import threading
from typing import Any

MAX_HANDSHAKES = 10
_gates: dict[tuple[Any, ...], threading.BoundedSemaphore] = {}
_lock = threading.Lock()


def handshake_gate(transport: object) -> threading.BoundedSemaphore | None:
    """The semaphore bounding handshakes to ``transport``'s sshd (None: not SSH)."""
    host = getattr(transport, "host", None)
    if host is None or not hasattr(host, "hostname"):
        return None
    key = (getattr(host, "proxy_jump", None), host.hostname, getattr(host, "port", 22))
    with _lock:
        return _gates.setdefault(key, threading.BoundedSemaphore(MAX_HANDSHAKES))
