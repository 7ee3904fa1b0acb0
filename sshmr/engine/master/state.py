"""What the master holds while a run goes on: the attempts in flight, results waiting to
be committed, what each host may release, host errors; and the journal flush that lets
hosts drop the attempt directories it made durable. See ``sshmr.engine.master``."""

from __future__ import annotations

import json
import os
import queue
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from ...jobs import Reason
from ...record.journal import Journal
from ...record.results import INPUT_FILE_KEY
from ...remote import protocol
from .. import scheduler as s
from ..config import RunConfig
from ..hostsession import HostSession
from ..wire import job_marker

FILE_PAYLOAD = '{"' + INPUT_FILE_KEY + '"'
# Attempt ids reserved in the journal at a time. A dispatch is committed before its run
# message is sent (``_apply``), so a crash loses none that reached a host; a resumed master
# still starts past the reservation, so it never reuses an id a lost master handed out.
ID_BLOCK = 1000
LATE_RECHECK = 2.0  # a host that came back: look for its lost attempts' results this often
STATUS_REASON = {
    "error": Reason.ERROR, "system": Reason.SYSTEM, "timeout": Reason.TIMEOUT,
    "max_living": Reason.MAX_LIVING, "worker_died": Reason.WORKER_DIED,
    "cancelled": Reason.CANCELLED, "speculation": Reason.SPECULATION, "exit": Reason.CANCELLED,
    "retired": Reason.MAX_LIVING, "host_lost": Reason.HOST_LOST,
    "not_started": Reason.NOT_STARTED,
}


class MasterState:
    """The master's state, shared by its loop, its inbound handlers and its actions."""

    def __init__(self, *, run_dir: str, journal: Journal, sessions: dict[str, HostSession],
                 scheduler: s.Scheduler, config: RunConfig, events: queue.SimpleQueue,
                 progress: Callable[[str], None] | None = None,
                 result_key: bytes | None = None,
                 new_session: Callable[[Any], HostSession] | None = None,
                 inventory_path: str | None = None,
                 host_pattern: str | None = None,
                 next_phase: Callable[[], list[int] | None] | None = None) -> None:
        self.run_dir = run_dir
        self.result_key = result_key  # function runs: pickled results must carry its HMAC
        self.journal = journal
        self.sessions = sessions
        self.sched = scheduler
        self.cfg = config
        self.q = events
        self.progress = progress
        self.inflight: dict[int, tuple[str, int, int]] = {}  # attempt -> (host, slot, job)
        self.details: dict[int, dict[str, Any]] = {}
        self.results: dict[int, tuple[str, bytes | str]] = {}  # bytes, or a staged file
        self.to_release: dict[str, list[int]] = defaultdict(list)
        self.reconnect_at: dict[str, float] = {}
        self.host_errors: dict[str, str] = {}
        self.host_slots: dict[str, int] = {}  # slots of each host that came up (checked)
        self.late: dict[int, str] = {}  # attempt -> host: a late result, to commit or discard
        self.late_seen: set[int] = set()  # lost attempts whose outcome was found on the host
        self.late_check: dict[str, float] = {}  # host -> when to look for late results
        self.late_until: dict[str, float] = {}  # host -> when no more late result can come
        self._host_said: dict[str, str] = {}  # the host state last told to ``progress``
        self.finished: s.Finished | None = None
        # Called when the scheduler finished every job (MapReduce): the next phase's job
        # ids, added to the journal (the run goes on with the same host sessions), or None.
        self.next_phase = next_phase
        self._phase_end: s.Finished | None = None  # a phase finished: run ``next_phase``
        self.new_session = new_session  # a session for a host that joins (see ``commands``)
        self.inventory_path = inventory_path  # --watch-inventory re-reads it
        self.host_pattern = host_pattern  # ... and selects the run's --hosts from it
        self._inv_seen: tuple[Any, str | None] = (None, None)  # (mtime, size), sha256
        self._inv_warned: str | None = None
        self.interrupts = 0
        self._looping = False  # a second Ctrl-C forces only while the loop runs
        self._timeout_json = json.dumps(config.fixed_timeout)
        self._sync = "true" if config.max_retries == 0 else "false"
        meta = journal.meta() if journal is not None else {}
        self.dispatch_key = bytes.fromhex(meta.get("dispatch_key", ""))  # see wire.job_mark
        self._job_mark = job_marker(self.dispatch_key)
        self._last = {"tick": 0.0, "flush": 0.0, "cancel": 0.0}
        self._outbox: dict[HostSession, list[bytes]] | None = None  # see _apply
        self._launched = False  # a Launch of the current _apply step (flush before sending)
        self._cleanup = True  # at the end, hosts remove the run dir (not if it may resume)
        self._reserved = 0  # attempt ids up to this are durably reserved (see _do_Launch)

    def _flush(self) -> None:
        if self.journal.abandoned:  # nothing more was committed: the hosts keep everything
            self.to_release.clear()
            return
        self.journal.flush()
        box = self._outbox  # inside ``_apply``: sent with the step's other messages
        for host, attempts in self.to_release.items():
            if attempts:
                data = protocol.encode({"t": "release", "a": attempts})
                if box is None:
                    self.sessions[host].send(data)
                else:
                    box.setdefault(self.sessions[host], []).append(data)
        self.to_release.clear()

    def _say_host(self, host: str, state: str, line: str) -> None:
        """Tell the progress callback, once per change of the host's state."""
        if self.progress and self._host_said.get(host) != state:
            self._host_said[host] = state
            self.progress(line)


def drop_staged(data: object) -> None:
    """Remove a staged result file that will not be committed."""
    if isinstance(data, str):
        try:
            os.unlink(data)
        except OSError:
            pass
