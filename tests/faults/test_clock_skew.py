"""Fault 7 of issue 12: the host agent's wall clock is an hour off, or jumps mid-run.

Each test host's ``python`` is a wrapper that runs the agent (and so its workers and the
jobs) under libfaketime (Debian's ``faketime`` package) with the wall clock offset by
what a file says (``FAKETIME_TIMESTAMP_FILE``, re-read on every call:
``FAKETIME_NO_CACHE``). CLOCK_MONOTONIC is left alone (``FAKETIME_DONT_FAKE_MONOTONIC``):
real clocks do not step it, and a constant offset on it would prove nothing. The test
writes ``+1h`` (ahead), ``-1h`` (behind), or keeps rewriting the file during the run so
the host's wall clock jumps back and forth by an hour while jobs run (an NTP step).

Every case must show: no premature timeout (jobs that finish in time succeed at their
first attempt), no missing or late one (a hanging job's attempts end within 0.5 s of
their deadline, timed by the master's clock), durations recorded as they really were
(never negative or an hour long), and every worker retired within ``max_living``
(measured by the host's monotonic clock). No prefetch: each attempt starts on an idle
worker, so the scheduler's check that a worker lives long enough for a timeout holds.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from checks import FAST, assert_nothing_lost, payloads  # noqa: E402
from helpers import write_inventory  # noqa: E402
from jobs_clock import Nap  # noqa: E402

import sshmr  # noqa: E402
from sshmr import JobState  # noqa: E402

TIMEOUT = 2.0
MAX_LIVING = 4.0
SHORT = 0.8  # seconds a finishing job sleeps: well inside TIMEOUT
JUMP_EVERY = 0.3  # seconds between wall-clock steps in the "jumping" case
HOUR = 3600.0
WRAPPER = """#!/bin/sh
# the sshmr agent under libfaketime: the wall clock offset by what {stamp} says
LD_PRELOAD={lib}
FAKETIME_TIMESTAMP_FILE={stamp}
FAKETIME_NO_CACHE=1
FAKETIME_DONT_FAKE_MONOTONIC=1
export LD_PRELOAD FAKETIME_TIMESTAMP_FILE FAKETIME_NO_CACHE FAKETIME_DONT_FAKE_MONOTONIC
exec {python} "$@"
"""


def libfaketime() -> str:
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
                   + glob.glob("/usr/lib/faketime/libfaketime.so.1"))
    if not found:
        pytest.fail("libfaketime not found: install Debian's faketime package (apt-get install"
                    " -y faketime; .ci/run does)", pytrace=False)
    return found[0]


def set_offset(stamp: Path, offset: str) -> None:
    """Atomically: libfaketime re-reads the file on every clock call."""
    tmp = stamp.with_suffix(".tmp")
    tmp.write_text(offset + "\n")
    os.replace(tmp, stamp)


class Jumper:
    """Steps the hosts' wall clock every JUMP_EVERY s until stopped: a process of its own,
    so a busy test process cannot hold the steps back, through five offsets in which no
    step (nor two, three or four in a row) leaves the clock where it was."""

    OFFSETS = ("+1h", "-1h", "+2h", "-2h", "+0")
    CODE = ("import os, sys, time\n"
            "stamp, every, offsets = sys.argv[1], float(sys.argv[2]), sys.argv[3:]\n"
            "n = 0\n"
            "while True:\n"
            "    time.sleep(every)\n"
            "    with open(stamp + '.tmp', 'w') as f:\n"
            "        f.write(offsets[n % len(offsets)] + '\\n')\n"
            "    os.replace(stamp + '.tmp', stamp)\n"
            "    n += 1\n"
            "    print(n, flush=True)\n")

    def __init__(self, stamp: Path) -> None:
        self.stamp = stamp
        self.proc: subprocess.Popen | None = None
        self.steps = 0

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", self.CODE, str(self.stamp),
                                      str(JUMP_EVERY), *self.OFFSETS], stdout=subprocess.PIPE,
                                     text=True)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.kill()
        out, _ = self.proc.communicate(timeout=10)
        self.steps = len(out.split())


@pytest.mark.parametrize("clock", ["ahead", "behind", "jumping"])
def test_skewed_host_clock_changes_no_timeout_duration_or_lifetime(cluster, tmp_path, clock):
    effects = tmp_path / "effects"
    effects.mkdir()
    stamp = tmp_path / "faketime"
    set_offset(stamp, {"ahead": "+1h", "behind": "-1h", "jumping": "+0"}[clock])
    wrapper = tmp_path / "python-faketime"
    wrapper.write_text(WRAPPER.format(lib=libfaketime(), stamp=stamp, python=sys.executable))
    wrapper.chmod(0o755)
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[0, 1], slots=2,
                          python=str(wrapper))
    items = payloads(effects, 12, prefix="short", sleep=SHORT)
    items += payloads(effects, 2, prefix="hang", sleep=30)
    jumper = Jumper(stamp)
    if clock == "jumping":
        jumper.start()
    try:
        result = sshmr.run(Nap(), items, inventory=str(inv), runs_dir=str(tmp_path / "runs"),
                           timeout=TIMEOUT, max_living=MAX_LIVING, max_retries=1, seed=7,
                           prefetch=0, **FAST)
    finally:
        jumper.stop()

    by_job = assert_nothing_lost(result, 1, effects, cluster=cluster)
    short, hang = result.jobs[:12], result.jobs[12:]

    # the fault was in effect: the jobs saw the skewed (or jumping) wall clock
    skews = [j.result["wall0"] - (by_job[j.job][0]["started"] or 0) for j in short]
    drift = [(j.result["wall1"] - j.result["wall0"]) - (j.result["mono1"] - j.result["mono0"])
             for j in short]
    if clock == "jumping":
        assert jumper.steps >= 5
        assert any(abs(d) > HOUR / 2 for d in drift), drift  # a step hit a running job
    else:
        sign = 1 if clock == "ahead" else -1
        assert all(abs(s - sign * HOUR) < 60 for s in skews), skews

    # no premature timeout: every finishing job succeeded at its first attempt
    assert [(j.state, j.attempts) for j in short] == [(JobState.SUCCEEDED, 1)] * 12, [
        (j.job, j.state.value, j.attempts, j.error) for j in short]
    # durations as they were, whatever the host's wall clock did meanwhile
    durations = [by_job[j.job][0]["duration"] for j in short]
    assert all(SHORT <= d < SHORT + 0.5 for d in durations), durations

    # no missing or late timeout: both attempts of each hanging job end at their deadline
    # (the agent's clock starts when it takes the job: the master's "started", its ack)
    # (a worker with just TIMEOUT of life left may take a hanging job: then max_living ends
    # it first, a little before its deadline; never later)
    late = []
    for j in hang:
        assert j.state is JobState.FAILED, (j.state, j.error)
        attempts = by_job[j.job]
        assert len(attempts) == 2 and all(a["state"] == "FAILED" for a in attempts)
        for a in attempts:
            assert a["reason"] in ("timeout", "max_living"), dict(a)
            ran = a["ended"] - (a["started"] + TIMEOUT)
            if a["reason"] == "timeout":
                late.append(ran)
            assert ran < 0.5, dict(a)
    assert late and all(-0.05 < x < 0.5 for x in late), late

    # max_living still bounds each worker (by the host's monotonic clock)
    spans = defaultdict(list)
    for j in short:
        spans[j.result["pid"]] += [j.result["mono0"], j.result["mono1"]]
    longest = max(max(v) - min(v) for v in spans.values())
    assert longest < MAX_LIVING, spans
    print(f"\nclock {clock}: timeout -> attempt ended "
          f"{', '.join(f'{x * 1000:.0f} ms' for x in late)}; job durations "
          f"{min(durations):.3f}-{max(durations):.3f}s for {SHORT}s naps; "
          f"{len(spans)} workers, longest span {longest:.2f}s (max_living {MAX_LIVING}s)"
          + (f"; {jumper.steps} wall-clock steps" if clock == "jumping" else ""))
