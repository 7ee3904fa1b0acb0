"""Jobs for the hostile-input tests (shipped to the test hosts; stdlib only).

``Show`` returns what it was given: the payload, or for an input file pushed with
``--split files`` its name (as bytes, hex) and content (hex), so the test can check that
hostile names and bytes arrive intact.

``Planter`` is a job that plants symbolic links where sshmr will write next: for the
next attempt directories of its run it makes each a real directory holding links named
like every file sshmr writes there (``payload.json``, ``stdout``, ``result.tmp``, ...),
all pointing at ``victim``, or (every third one) makes the attempt directory itself a link
to the directory ``outside``. It returns the modes of the directories sshmr made.
"""

import os
import stat

from sshmr import JobExecutor

NAMES = ("payload.json", "stdout", "stderr", "result", "result.tmp", "done.json",
         "done.json.tmp")


class Show(JobExecutor):
    def execute(self, payload):
        if isinstance(payload, str) and os.path.isfile(payload) and "/a/" in payload:
            with open(payload, "rb") as f:
                data = f.read()
            return {"name": os.fsencode(os.path.basename(payload)).hex(), "data": data.hex()}
        return {"payload": payload}


def _mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


class Planter(JobExecutor):
    def execute(self, payload):
        spec = payload
        adir = os.environ["SSHMR_ATTEMPT_DIR"]  # this attempt's directory
        attempts = os.path.dirname(adir)
        run_dir = os.path.dirname(attempts)
        code = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        modes = {"attempt": _mode(adir), "a": _mode(attempts), "run": _mode(run_dir),
                 "runs": _mode(os.path.dirname(run_dir)), "code": _mode(os.path.dirname(code)),
                 "bundle": _mode(code)}
        if spec.get("plant"):
            me = int(os.path.basename(adir))
            planted = 0
            for n in range(me + 1, me + spec["plant"] + 1):
                target = os.path.join(attempts, str(n))
                if os.path.lexists(target):
                    continue  # already pushed (prefetch): sshmr made it, leave it
                if n % 3 == 0:
                    os.symlink(spec["outside"], target)
                else:
                    os.mkdir(target, 0o700)  # (only dirs sshmr makes are checked)
                    for name in NAMES:
                        os.symlink(spec["victim"], os.path.join(target, name))
                planted += 1
            for n in range(8):  # and where a (re)started worker of slot n puts its output
                for stream in ("stdout", "stderr"):
                    path = os.path.join(run_dir, f"slot-{n}.{stream}")
                    if not os.path.lexists(path):
                        os.symlink(spec["victim"], path)
            modes["planted"] = planted
        return modes


def square_pair(x):
    """A function run's function (``Cluster.map``), shipped by reference with this module;
    0.1 s, so that every host of a run gets some of the items."""
    import time

    time.sleep(0.1)
    return (x, x * x)


class SlowSquare(JobExecutor):
    """``int(payload) ** 2`` after 0.1 s: every host of a run gets some of the jobs."""

    def execute(self, payload):
        import time

        time.sleep(0.1)
        return int(payload) ** 2


class SlowBlob(JobExecutor):
    """``int(payload)`` bytes of binary data (a bytes result) after 0.1 s."""

    def execute(self, payload):
        import time

        time.sleep(0.1)
        return bytes(i % 251 for i in range(int(payload)))


def _wait_for(gate):
    """Until ``gate`` exists (the hostile host's slots are up, see tests/hostile_agent.py),
    at most 60 s: so every host of the run gets some of the jobs, loaded machine or not."""
    import time

    deadline = time.monotonic() + 60
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.05)


class GatedSquare(JobExecutor):
    """Payload ``"N GATE"``: ``N ** 2`` once GATE exists."""

    def execute(self, payload):
        n, gate = payload.split(" ", 1)
        _wait_for(gate)
        return int(n) ** 2


class GatedBlob(JobExecutor):
    """Payload ``"SIZE GATE"``: SIZE bytes of binary data once GATE exists."""

    def execute(self, payload):
        size, gate = payload.split(" ", 1)
        _wait_for(gate)
        return bytes(i % 251 for i in range(int(size)))


def gated_square_pair(item):
    """A function run's function: ``[x, GATE]`` -> ``(x, x * x)`` once GATE exists."""
    x, gate = item
    _wait_for(gate)
    return (x, x * x)
