"""A job for the clock-skew tests (shipped to the test hosts; stdlib only).

``Nap.execute`` takes a payload dict ``{"k": key, "d": side-effect dir, "sleep": s}``,
appends one line to ``<d>/<k>.launches`` (the format of ``jobs_faults.record_launch``, so
``checks.assert_nothing_lost`` counts its launches), sleeps and returns what the host's
clocks said: wall time (``time.time``, skewed by libfaketime) and monotonic time (not
skewed) at its start and end, and its worker's pid.

It sleeps with ``select`` rather than ``time.sleep``: under libfaketime with
``FAKETIME_DONT_FAKE_MONOTONIC=1``, CPython 3.11's ``time.sleep`` (an absolute
``clock_nanosleep`` on CLOCK_MONOTONIC) fails with EINVAL, a libfaketime bug.
"""

import fcntl
import json
import os
import select
import time

from sshmr import JobExecutor

TAG_VAR = "SSHD_CLUSTER_TAG"


def record_launch(spec):
    path = os.path.join(spec["d"], spec["k"] + ".launches")
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        number = len(f.read().splitlines()) + 1
        f.write(f"{number} {os.getpid()} {os.environ.get(TAG_VAR, '')} {time.time():.6f}\n")
        f.flush()
    return number


def nap(seconds):
    end = time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return
        select.select([], [], [], left)


class Nap(JobExecutor):
    def execute(self, payload):
        spec = json.loads(payload) if isinstance(payload, str) else payload
        n = record_launch(spec)
        wall0, mono0 = time.time(), time.monotonic()
        nap(spec.get("sleep", 0))
        return {"k": spec["k"], "n": n, "pid": os.getpid(), "wall0": wall0,
                "wall1": time.time(), "mono0": mono0, "mono1": time.monotonic()}
