"""Job classes for the fault-injection tests (shipped to the test hosts; stdlib only).

``Fault.execute`` takes a payload dict (or its JSON text, one per input line on the CLI)
whose keys switch on one misbehaviour each. Every job first appends one line to
``<d>/<k>.launches`` (``d``: a side-effect directory, ``k``: the job's key): the tests
count launches from these files, independently of sshmr's own bookkeeping. The test
"hosts" are sshd processes on this machine, so a job writes straight into the test's
tmp dir.

Payload keys (all optional but ``k`` and ``d``):

- ``sleep``: seconds to sleep; ``first_sleep``: seconds to sleep on the first launch only
- ``barrier``: host workdirs; wait until this run's agent runs on each of them
- ``die_first``: SIGKILL the worker itself on the first launch
- ``crash_env``: SIGKILL the worker when this environment variable is set (on a bad host)
- ``await_crashes``: wait until that many ``crash_env`` crashes are recorded in ``d``
- ``ignore_term``: the worker process ignores SIGTERM from now on (first launch only)
- ``term_child``: start a child process that ignores SIGTERM (first launch only)
- ``grandchild``: double-fork a grandchild that calls setsid() and sleeps (first launch)
- ``flood_mb``: print that many MiB to stdout and as many to stderr
- ``fail``: raise ValueError
- ``result_kb``: return that many KiB of bytes (see ``blob``) instead of a dict
- ``corrupt``: on the first launch, sabotage the on-disk commit of the result:
  ``checksum`` flips a byte of the committed ``result`` file before ``done.json`` is
  written (same size, wrong sha256); ``truncate`` empties it (the master reads 0 bytes).
  (A symlink planted as ``result.tmp`` no longer works: the worker never writes through
  one.)

Child processes record ``pid starttime label`` lines in ``<d>/<k>.pids``.
"""

import fcntl
import json
import os
import signal
import subprocess
import sys
import time

from sshmr import JobExecutor

TAG_VAR = "SSHD_CLUSTER_TAG"  # set by the test sshd in every session: names the host
WAIT_LIMIT = 20.0

_TERM_CHILD = r"""
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
with open("/proc/self/stat", "rb") as f:
    data = f.read()
start = int(data[data.rindex(b")") + 2:].split()[19])
with open(sys.argv[1], "a") as f:
    f.write("%d %d %s\n" % (os.getpid(), start, sys.argv[2]))
time.sleep(60)
"""

_CORRUPTER = r"""
import os, sys, time
adir = sys.argv[1]
result = os.path.join(adir, "result")
deadline = time.monotonic() + 20
while not os.path.exists(result):  # the worker renames result.tmp -> result when complete
    if time.monotonic() > deadline:
        sys.exit(1)
    time.sleep(0.001)
with open(result, "r+b") as f:
    if sys.argv[2] == "truncate":
        f.truncate(0)
    else:
        first = f.read(1)
        f.seek(0)
        f.write(bytes([first[0] ^ 0xFF]))
    f.flush()
    os.fsync(f.fileno())
# only now let the worker write done.json (and so answer "done"): it blocks on this FIFO
with open(os.path.join(adir, "done.json.tmp"), "rb") as fifo:
    fifo.read()
"""


def blob(size):
    return bytes(i % 251 for i in range(size))


def spec_of(payload):
    return json.loads(payload) if isinstance(payload, str) else payload


def host_tag():
    return os.environ.get(TAG_VAR, "")


def start_time(pid):
    """The process's start time in clock ticks (to tell a recycled pid apart)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    return int(data[data.rindex(b")") + 2:].split()[19])


def attempt_dir():
    """This attempt's directory on the host (the worker says it in SSHMR_ATTEMPT_DIR)."""
    return os.environ["SSHMR_ATTEMPT_DIR"]


def record_launch(spec):
    """Append this launch to ``<d>/<k>.launches``; return its number (1 = first)."""
    path = os.path.join(spec["d"], spec["k"] + ".launches")
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        number = len(f.read().splitlines()) + 1
        f.write(f"{number} {os.getpid()} {host_tag()} {time.time():.6f}\n")
        f.flush()
    return number


def _wait(predicate, what):
    deadline = time.monotonic() + WAIT_LIMIT
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("gave up waiting for " + what)
        time.sleep(0.01)


def _count_lines(path):
    try:
        with open(path) as f:
            return len(f.read().splitlines())
    except FileNotFoundError:
        return 0


class Fault(JobExecutor):
    """Misbehaves as its payload says; see the module docstring."""

    def execute(self, payload):
        spec = spec_of(payload)
        n = record_launch(spec)
        first = n == 1
        if spec.get("barrier"):
            self._barrier(spec["barrier"])
        if spec.get("crash_env") and os.environ.get(spec["crash_env"]):
            with open(os.path.join(spec["d"], "crashes"), "a") as f:
                f.write(f"{spec['k']} {host_tag()}\n")
            os.kill(os.getpid(), signal.SIGKILL)
        if spec.get("await_crashes"):
            crashes = os.path.join(spec["d"], "crashes")
            _wait(lambda: _count_lines(crashes) >= spec["await_crashes"], "the crashes")
        if first and spec.get("die_first"):
            os.kill(os.getpid(), signal.SIGKILL)
        if first and spec.get("ignore_term"):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if first and spec.get("term_child"):
            self._term_child(spec)
        if first and spec.get("grandchild"):
            self._grandchild(spec)
        if spec.get("flood_mb"):
            self._flood(spec["flood_mb"])
        seconds = spec.get("first_sleep") if first and "first_sleep" in spec else spec.get("sleep")
        started = time.time()
        if seconds:
            time.sleep(seconds)
        if spec.get("fail"):
            raise ValueError(f"job {spec['k']} fails on purpose")
        if spec.get("result_kb"):
            if first and spec.get("corrupt"):
                self._sabotage(spec["corrupt"])
            return blob(spec["result_kb"] * 1024)
        return {"k": spec["k"], "n": n, "pid": os.getpid(), "tag": host_tag(),
                "started": started, "ended": time.time()}

    # ------------------------------------------------------------ misbehaviours

    @staticmethod
    def _barrier(workdirs):
        run_id = os.path.basename(os.path.dirname(os.path.dirname(attempt_dir())))
        logs = [os.path.join(w, "runs", run_id, "agent.log") for w in workdirs]
        _wait(lambda: all(os.path.exists(p) for p in logs), "the agents of " + run_id)
        time.sleep(0.3)  # their workers come up a few ms after the agent

    @staticmethod
    def _term_child(spec):
        pids = os.path.join(spec["d"], spec["k"] + ".pids")
        before = _count_lines(pids)
        subprocess.Popen([sys.executable, "-c", _TERM_CHILD, pids, "child"])
        _wait(lambda: _count_lines(pids) > before, "the child's pid")

    @staticmethod
    def _grandchild(spec):
        pids = os.path.join(spec["d"], spec["k"] + ".pids")
        before = _count_lines(pids)
        child = os.fork()
        if child == 0:  # never return into the worker from a forked copy of it
            try:
                if os.fork() == 0:
                    os.setsid()
                    with open(pids, "a") as f:
                        f.write(f"{os.getpid()} {start_time(os.getpid())} grandchild\n")
                    time.sleep(60)
            finally:
                os._exit(0)
        os.waitpid(child, 0)
        _wait(lambda: _count_lines(pids) > before, "the grandchild's pid")

    @staticmethod
    def _flood(mb):
        line = ("x" * 1023 + "\n") * 1024  # 1 MiB
        for _ in range(mb):
            sys.stdout.write(line)
            sys.stderr.write(line)
        sys.stdout.write("end of stdout flood\n")
        sys.stderr.write("end of stderr flood\n")
        sys.stdout.flush()
        sys.stderr.flush()

    @staticmethod
    def _sabotage(how):
        adir = attempt_dir()
        if how not in ("truncate", "checksum"):
            raise ValueError(how)
        os.mkfifo(os.path.join(adir, "done.json.tmp"))
        subprocess.Popen([sys.executable, "-c", _CORRUPTER, adir, how], start_new_session=True)


class FailingSetup(Fault):
    """setup() fails where ``SSHMR_TEST_BAD_HOST`` is set (by a python wrapper); each
    failure is recorded in ``<effects_dir>/crashes`` (for ``await_crashes``)."""

    def __init__(self, effects_dir=None):
        self.effects_dir = effects_dir

    def setup(self):
        if os.environ.get("SSHMR_TEST_BAD_HOST"):
            if self.effects_dir:
                with open(os.path.join(self.effects_dir, "crashes"), "a") as f:
                    f.write(f"setup {host_tag()}\n")
            raise RuntimeError("this host is broken (SSHMR_TEST_BAD_HOST)")
