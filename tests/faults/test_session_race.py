"""A host must not be declared silent the moment it connects.

The master skips sessions that are not ``alive`` and declares an alive one lost when
``now - last_heard > host_silence``. ``alive`` is set by the connecting thread before the
master has processed "connected" (which is where the master refreshes ``last_heard``),
so the session itself must never be alive with a stale ``last_heard`` (0.0 on a first
connection, the previous connection's on a reconnect). Seen in the suite as
``host_down: no message from the host for 1.5s`` 0.2 s into a run, for a host that had
just connected. Here the connecting thread is held exactly in that window.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from checks import FAST  # noqa: E402
from jobs_faults import Fault  # noqa: E402

from sshmr.engine.bundle import build_bundle  # noqa: E402
from sshmr.engine.hostsession import HostSession  # noqa: E402
from sshmr.engine.target import code_of  # noqa: E402
from sshmr.transport.local import LocalTransport  # noqa: E402


def test_a_session_is_never_alive_with_a_stale_last_heard(tmp_path):
    config = {"max_living": 60.0, "hb_interval": FAST["heartbeat"], "master_grace": 5.0,
              "kill_grace": FAST["kill_grace"], "inline_limit": 65536}
    session = HostSession(LocalTransport("local"), python=sys.executable,
                          workdir=str(tmp_path / "work"), slots=1, run_id="r1",
                          bundle=build_bundle(code_of(Fault)), agent_config=config,
                          events=queue.SimpleQueue())
    in_window, go_on = threading.Event(), threading.Event()
    post = session._post

    def held_post(kind, gen, data):
        if kind == "connected":  # alive is set, the master has not seen "connected" yet
            in_window.set()
            go_on.wait(10)
        post(kind, gen, data)

    session._post = held_post
    for _ in range(2):  # a first connection, then a reconnection
        in_window.clear()
        go_on.clear()
        session.connect_async()
        try:
            assert in_window.wait(20), "the local agent did not start"
            assert session.alive
            silent_for = time.monotonic() - session.last_heard  # what Master._timers checks
            assert silent_for < FAST["host_silence"], silent_for
        finally:
            go_on.set()
        time.sleep(0.1)
        session.lost()  # the master gives up the connection ...
        session.last_heard -= 60  # ... which, by now, it had last heard long ago
    session.shutdown(True)
