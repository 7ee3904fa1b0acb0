"""Issue 13: nothing sshmr starts outlives it, through every entry point, under stress.

The cause found: a host agent told to exit (or to retire a worker) right after it forked
that worker sent ``killpg`` to a process group that did not exist yet, since the child had
not yet run ``setsid()``. It then blocked for ever in ``waitpid``, and its workers lived on.
The worker did not see its pipe close either, because later siblings held its write end.
On a busy machine, a host that connects while the run is ending gets ``start`` x slots,
then ``exit``, in one read.
The guards now in place are tested here one by one. Then comes the short version of the
stress (``tests/orphan_stress.py``; the long one is ``bench/bench_orphans.py``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers import JOBS  # noqa: E402
from orphan_stress import ENTRY_POINTS, Stress  # noqa: E402

from sshmr.engine.bundle import ENTRY, build_bundle, push_bundle  # noqa: E402
from sshmr.engine.target import code_of  # noqa: E402
from sshmr.remote import procs  # noqa: E402
from sshmr.transport.local import LocalTransport  # noqa: E402

sys.path.insert(0, str(JOBS))
from jobs_faults import Fault  # noqa: E402

ROUNDS_PER_ENTRY = 2


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in (b"Z", b"X")


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    return [p for p in pids if _alive(p)]


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(x) for x in f.read().split()]


class _Agent:
    """A host agent run locally, spoken to directly over its pipes."""

    def __init__(self, work: Path, **config: object) -> None:
        bundle = build_bundle(code_of(Fault))
        code_dir = push_bundle(LocalTransport(), bundle, str(work))
        cfg = {"run_dir": str(work / "run"), "target": bundle.target_config(code_dir),
               "max_living": 60, "hb_interval": 0.2, "master_grace": 10, "kill_grace": 0.5}
        cfg.update(config)
        self.proc = subprocess.Popen([sys.executable, "-u", f"{code_dir}/{ENTRY}",
                                      json.dumps(cfg)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, start_new_session=True)
        assert json.loads(self.proc.stdout.readline())["t"] == "ready"

    def send(self, *msgs: dict) -> None:
        self.proc.stdin.write(b"".join(json.dumps(m).encode() + b"\n" for m in msgs))
        self.proc.stdin.flush()

    def read_until(self, kind: str, timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = json.loads(self.proc.stdout.readline())
            if msg["t"] == kind:
                return msg
        raise AssertionError(f"no {kind!r} from the agent")

    def workers(self) -> list[int]:
        return _children(self.proc.pid)

    def stop(self) -> None:  # by PID: the agent, then whatever it forked
        pids = self.workers() if self.proc.poll() is None else []
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_worker_killed_before_it_has_its_own_session_is_still_killed():
    """The mechanism of the race: a child that has not yet called setsid() is in no
    process group of its own; killpg alone misses it and waitpid then blocks."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        procs.signal_worker(child.pid, signal.SIGKILL)
        assert child.wait(5) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_an_agent_told_to_exit_as_it_forks_its_workers_exits(tmp_path):
    """start x 4 then exit in one read, 20 times on a loaded CPU (it hung 2 times in 30)."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(3)]
    try:
        for i in range(20):
            agent = _Agent(tmp_path / f"w{i}")
            try:
                agent.send(*[{"t": "start", "slot": s} for s in range(4)],
                           {"t": "exit", "cleanup": True})
                assert agent.proc.wait(10) == 0, f"round {i}: the agent did not exit"
            finally:
                agent.stop()
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def test_workers_die_with_their_agent_even_mid_job(tmp_path):
    agent = _Agent(tmp_path)
    try:
        agent.send({"t": "start", "slot": 0}, {"t": "start", "slot": 1})
        agent.read_until("up")
        agent.read_until("up")
        agent.send({"t": "run", "slot": 0, "a": 1, "timeout": None,
                    "p": {"k": "long", "d": str(tmp_path), "sleep": 30}})
        agent.read_until("ack")
        workers = agent.workers()
        assert len(workers) == 2
        agent.proc.kill()  # no chance to clean up
        agent.proc.wait(10)
        assert _wait_gone(workers, 3) == []  # the one busy in a 30 s job too
    finally:
        agent.stop()


def test_an_agent_that_lost_its_master_starts_no_worker_and_exits(tmp_path):
    """Silence (not EOF) makes the master lost while a job runs; a ``start`` that arrives
    afterwards must not give the agent an idle worker to live on with."""
    agent = _Agent(tmp_path, master_grace=0.5)
    try:
        agent.send({"t": "start", "slot": 0})
        agent.read_until("up")
        agent.send({"t": "run", "slot": 0, "a": 1, "timeout": None,
                    "p": {"k": "job", "d": str(tmp_path), "sleep": 1.5}})
        time.sleep(1.0)  # no heartbeat: the master is lost; the job goes on
        agent.send({"t": "start", "slot": 1}, {"t": "start", "slot": 2})
        assert agent.proc.wait(10) == 0  # once the job is done, although stdin is open
    finally:
        agent.stop()


def test_a_worker_sees_eof_when_its_agent_dies_without_the_kernel_helping(tmp_path):
    """No worker holds another worker's pipe: with the agent gone, every idle worker's
    pipe closes (the guard where PR_SET_PDEATHSIG is not available)."""
    agent = _Agent(tmp_path)
    try:
        agent.send(*[{"t": "start", "slot": s} for s in range(3)])
        for _ in range(3):
            agent.read_until("up")
        for pid in agent.workers():
            fds = os.listdir(f"/proc/{pid}/fd")
            pipes = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in fds]
            assert sum(p.startswith("pipe:") for p in pipes) == 2, pipes  # its own two
    finally:
        agent.stop()


def test_no_process_outlives_a_run_under_stress(fresh_cluster, tmp_path):
    cluster = fresh_cluster(4)  # own homes (the default): see orphan_stress
    with Stress(cluster, tmp_path / "stress", seed=13) as stress:
        for _ in range(ROUNDS_PER_ENTRY):
            for entry in ENTRY_POINTS:
                stress.round(entry)
    summary = stress.summary()
    print("\n" + json.dumps(summary, indent=1))
    assert stress.failures() == []
    assert summary["rounds"] == ROUNDS_PER_ENTRY * len(ENTRY_POINTS)
