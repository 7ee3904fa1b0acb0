"""The master looks for a returned host's lost results only while one can still come.

A host lost mid-job and back again may hold results its cut-off agent committed later.
That agent ends its jobs by their timeout (or ``max_living``) with its own clock, so the
master looks every ``LATE_RECHECK`` seconds until then, once more after, and then stops:
a host killed with its jobs is not read over SFTP for the rest of a long run.
The session is a stand-in that records the lookups; the real lookup over SSH is
``tests/faults/test_network_partition.py``.
"""

from __future__ import annotations

import itertools
import queue

from sshmr.engine import scheduler as s
from sshmr.engine.config import RunConfig
from sshmr.engine.master import LATE_RECHECK, Master
from sshmr.jobs import AttemptState, Reason
from sshmr.record.journal import Journal


class _ReturnedHost:
    name = "h"
    alive = True
    generation = 0
    run_dir = "/nowhere"
    transport = None
    transport_slots = None
    workdir = "/nowhere"

    def __init__(self) -> None:
        self.lookups: list[float] = []
        self.last_heard = self.last_sent = 0.0
        self.now = 0.0

    def send(self, data: bytes) -> bool:
        return True

    def io(self, fn, tag) -> None:
        assert tag == ("late", 0)
        self.lookups.append(self.now)


def _master(tmp_path, **config) -> tuple[Master, _ReturnedHost]:
    journal = Journal(str(tmp_path), create=True)
    journal.add_jobs([(1, '"a"')])
    journal.dispatch(7, 1, 1, "h", 0)
    journal.end_attempt(7, AttemptState.FAILED, Reason.HOST_LOST.value, {})
    host = _ReturnedHost()
    cfg = RunConfig(**config)
    master = Master(run_dir=str(tmp_path), journal=journal, sessions={"h": host},
                    scheduler=s.Scheduler(["h"], max_retries=cfg.max_retries), config=cfg,
                    events=queue.SimpleQueue())
    return master, host


def _lookups_until(master: Master, host: _ReturnedHost, start: float, end: float) -> list[float]:
    """Run the master's timers every 0.1 s from ``start`` (the host reconnected then)."""
    host.last_heard = start
    master._on_connected(host, {"cpus": 1})
    t = start
    while t < end:
        host.now = host.last_heard = t  # the host keeps talking
        master._timers(t)
        t = round(t + 0.1, 6)
    return host.lookups


def test_lookups_stop_once_the_lost_jobs_timeout_has_passed(tmp_path):
    master, host = _master(tmp_path, timeout=5.0, max_living=60.0, kill_grace=2.0)
    found = _lookups_until(master, host, 100.0, 130.0)
    # every LATE_RECHECK s until 100 + 5 (timeout) + 2 (kill grace), then one last look
    assert found[0] == 100.0
    assert all(LATE_RECHECK <= b - a <= LATE_RECHECK + 0.11 for a, b in itertools.pairwise(found))
    assert found[-2] < 107.0 <= found[-1] < 107.0 + LATE_RECHECK + 0.11
    assert "h" not in master.late_check


def test_without_a_timeout_lookups_last_max_living(tmp_path):
    master, host = _master(tmp_path, max_living=10.0, kill_grace=2.0)
    found = _lookups_until(master, host, 100.0, 140.0)
    assert found[-2] < 112.0 <= found[-1] < 112.0 + LATE_RECHECK + 0.11


def test_a_host_back_again_looks_for_the_whole_window_again(tmp_path):
    master, host = _master(tmp_path, timeout=5.0, kill_grace=2.0)
    _lookups_until(master, host, 100.0, 120.0)
    assert "h" not in master.late_check
    found = _lookups_until(master, host, 200.0, 220.0)  # lost and back again
    assert [t for t in found if t >= 200.0][0] == 200.0
    assert found[-2] < 207.0 <= found[-1] < 207.0 + LATE_RECHECK + 0.11


def test_an_outcome_found_on_the_host_ends_the_lookups(tmp_path):
    master, host = _master(tmp_path, timeout=30.0)
    _lookups_until(master, host, 100.0, 100.05)
    assert master._on_late(host, {7: ("failed", {}, b"")}) == []  # its outcome is there
    host.now = host.last_heard = 102.5
    master._timers(102.5)
    assert host.lookups == [100.0]  # nothing left to look for: no SFTP read
    assert "h" not in master.late_check
