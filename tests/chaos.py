"""The seeded chaos run (issue 12): a mixed workload under random faults, then the history check.

Design: two *lanes* of successive ``sshmr run`` CLI masters share one sshd cluster for a
bounded time (new runs start in a lane until ``seconds`` have passed, then the last ones
finish). The ``retry`` lane runs ``max_retries 2`` runs of short and long jobs, jobs that
always raise, jobs that raise on their first launch only, and jobs whose results are
big enough to be downloaded; the ``once`` lane runs ``max_retries 0`` runs of short and
long jobs (some raise). Every job appends to its side-effect file before it does anything
(``tests/jobs/jobs_chaos.py``). Each master is a CLI subprocess, so ``kill_master`` is a
real kill -9, undone by ``sshmr resume``.

Meanwhile the faults of ``chaos_plan.plan(seed, ...)`` are done at their planned times
(kill -9 a worker; kill a host's sshd, restart it; partition a host, heal it; SIGSTOP a
host, SIGCONT it; fill a host's disk, free it; kill -9 a master, resume it), each recorded
with its time, kind, target and outcome. At the end every fault is undone, ``sshmr gc``
runs, and ``chaos_history.check`` checks the whole history (see there).

    chaos = Chaos(cluster, root, seed=7, seconds=90)   # cluster: SshdCluster or NetnsCluster
    report = chaos.run()                               # prints the seed first
    assert report.ok, report.explain()

Partitions need ``tests/netns_cluster.py`` (a ``NetnsCluster``) and disk faults need
``tests/diskfull.py`` (both root only); without them those faults are recorded as
``unavailable`` and the schedule stays the same.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos_plan import Planned, plan, timeline
from helpers import JOBS, write_inventory

TARGET = f"{JOBS}/jobs_chaos.py:Chaos"
MASTER_GRACE = 10.0  # the agents' default patience; the CLI runs keep every default
WIND_DOWN = 150.0  # seconds the last runs may take to end after the chaos stops
TIMEOUT = 30.0  # --timeout of every run
DISK_SIZE = "24m"


@dataclass
class Record:
    """One fault as it happened."""

    fault: Planned
    action: str  # do | undo
    at: float  # seconds after the start, when it was done
    outcome: str  # done, unavailable, or why nothing was done (no worker, no master)


@dataclass
class LaneRun:
    """One run of a lane: its inputs, its side effects, how its masters ended."""

    lane: str
    number: int
    max_retries: int
    effects: Path
    items: list[dict[str, Any]]
    run_dir: Path | None = None
    exits: list[int] = field(default_factory=list)  # of each master (run, then resumes)
    kills: int = 0
    resumes: int = 0
    ended: bool = False
    never_created: bool = False  # its master was killed before it created the run
    problems: list[str] = field(default_factory=list)


class Lane:
    """Successive CLI runs with one ``max_retries``; see the module docstring."""

    def __init__(self, chaos: Chaos, index: int, name: str, max_retries: int) -> None:
        self.chaos, self.index, self.name, self.max_retries = chaos, index, name, max_retries
        self.runs_dir = chaos.root / f"runs-{name}"
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.rng = random.Random(f"{chaos.seed}-lane-{name}")
        self.runs: list[LaneRun] = []
        self.proc: subprocess.Popen | None = None
        self.killed = False  # its master was killed; waiting for the resume
        self._known: set[str] = set()

    @property
    def idle(self) -> bool:
        return self.proc is None and not self.killed

    def start_run(self) -> None:
        n = len(self.runs) + 1
        effects = self.chaos.root / "effects" / f"{self.name}-{n}"
        effects.mkdir(parents=True)
        items = self._workload(effects, n)
        inputs = self.chaos.root / f"inputs-{self.name}-{n}.txt"
        inputs.write_text("".join(json.dumps(item) + "\n" for item in items))
        self.runs.append(LaneRun(self.name, n, self.max_retries, effects, items))
        self._known = {p.name for p in self.runs_dir.iterdir()}
        self._spawn(["run", "-i", str(self.chaos.inventory), TARGET, str(inputs),
                     "--max-retries", str(self.max_retries), "--timeout", str(TIMEOUT),
                     "--seed", str(self.rng.randrange(1 << 30))])

    def _workload(self, effects: Path, n: int) -> list[dict[str, Any]]:
        r, items = self.rng, []
        for i in range(self.chaos.jobs_per_run[self.name]):
            item: dict[str, Any] = {"k": f"{self.name}{n}-{i}", "d": str(effects),
                                    "v": r.randrange(10**6)}
            roll = r.random()
            item["sleep"] = round(r.uniform(2.0, 5.0) if roll < 0.2 else r.uniform(0.05, 0.4), 3)
            if self.max_retries and 0.2 <= roll < 0.32:
                item["fail"] = True
            elif self.max_retries and 0.32 <= roll < 0.42:
                item["fail_first"] = True
            elif not self.max_retries and 0.2 <= roll < 0.26:
                item["fail"] = True
            if 0.9 <= roll:
                item["pad"] = 96  # KiB: more than inline_limit, so it is downloaded
            items.append(item)
        return items

    def _spawn(self, args: list[str]) -> None:
        current = self.runs[-1]
        out = self.chaos.root / f"cli-{self.name}-{current.number}-{len(current.exits)}"
        with open(f"{out}.out", "wb") as o, open(f"{out}.err", "wb") as e:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sshmr", *args, "-q", "--json", "--runs-dir",
                 str(self.runs_dir)], cwd=self.chaos.root, env=self.chaos.env,
                stdin=subprocess.DEVNULL, stdout=o, stderr=e)
        self._err = Path(f"{out}.err")

    def _find_run_dir(self) -> Path | None:
        current = self.runs[-1]
        if current.run_dir is None:
            new = [p for p in self.runs_dir.iterdir()
                   if p.name not in self._known and (p / "journal.sqlite").exists()]
            current.run_dir = max(new) if new else None
        return current.run_dir

    def kill(self) -> str:
        if self.proc is None or self.proc.poll() is not None:
            return "no master running"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None
        current = self.runs[-1]
        current.kills += 1
        current.exits.append(-9)
        self.killed = True
        return f"killed the master of run {current.number}"

    def resume(self) -> str:
        if not self.killed:
            return "nothing to resume"
        self.killed = False
        current = self.runs[-1]
        if self._find_run_dir() is None:  # killed before the run existed: a new run
            current.ended = current.never_created = True
            return "the run was never created; next run"
        current.resumes += 1
        self._spawn(["resume", current.run_dir.name])
        return f"resumed run {current.number}"

    def poll(self) -> None:
        if self.proc is None:
            return
        code = self.proc.poll()
        if code is None:
            return
        self.proc = None
        current = self.runs[-1]
        current.exits.append(code)
        current.ended = True
        self._find_run_dir()
        err = self._err.read_text(errors="replace")
        if code == 2 and "already ended" in err and current.resumes:
            return  # killed after it recorded its end: resume says so, and that is right
        if code == 2 and "stopped before its jobs were" in err and current.resumes:
            current.never_created = True  # killed before its jobs were recorded: resume
            return  # says there is nothing to resume (a one-line error), and that is right
        if code not in (0, 1, 3) or "Traceback" in err:
            current.problems.append(f"master exited {code}: {err.strip()[-600:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.runs[-1].problems.append("the run did not end in time: its master was killed")
        self.proc = None


class Chaos:
    """See the module docstring."""

    def __init__(self, cluster: Any, root: Path, *, seed: int, seconds: float,
                 jobs_per_run: dict[str, int] | None = None, slots: int = 2,
                 disks: bool = True, log: Any = print) -> None:
        self.cluster, self.root, self.seed, self.seconds = cluster, Path(root), seed, seconds
        self.jobs_per_run = jobs_per_run or {"retry": 40, "once": 20}
        self.log = log
        self.root.mkdir(parents=True, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if k not in ("SSH_AUTH_SOCK",
                                                                     "SSH_AGENT_PID")}
        self.inventory = write_inventory(cluster, self.root / "inventory.yaml", slots=slots)
        self.lanes = [Lane(self, 0, "retry", 2), Lane(self, 1, "once", 0)]
        self.plan = plan(seed, seconds, len(cluster.hosts), len(self.lanes))
        self.records: list[Record] = []
        self.disks: dict[int, Any] = {}
        self._stopped: dict[int, list[tuple[int, int]]] = {}  # host -> (pid, start time)
        self._want_disks = disks
        self.t0 = 0.0
        self.wall = 0.0

    # ------------------------------------------------------------------ the run

    def run(self) -> Any:
        from chaos_history import check

        self.log(f"chaos seed {self.seed}: {len(self.plan)} faults planned over "
                 f"{self.seconds:g}s on {len(self.cluster.hosts)} hosts")
        try:
            self._setup_disks()
            self.t0 = time.monotonic()
            try:
                self._loop(timeline(self.plan))
            finally:
                self._undo_everything()
                for lane in self.lanes:
                    lane.stop()
            self.wall = time.monotonic() - self.t0
            return check(self)  # before the umount: gc must find what is on the small disks
        finally:
            self._teardown_disks()

    def _loop(self, steps: list[tuple[float, str, Planned]]) -> None:
        pending = list(steps)
        while True:
            now = time.monotonic() - self.t0
            while pending and pending[0][0] <= now:
                _, action, fault = pending.pop(0)
                self._perform(action, fault)
            for lane in self.lanes:
                lane.poll()
                if lane.idle and now < self.seconds:
                    lane.start_run()
            if not pending and now >= self.seconds and all(lane.idle for lane in self.lanes):
                return
            if now > self.seconds + WIND_DOWN:
                return  # Lane.stop records the runs that did not end
            time.sleep(0.05)

    def _perform(self, action: str, fault: Planned) -> None:
        at = time.monotonic() - self.t0
        try:
            outcome = getattr(self, f"_{action}_{fault.kind}")(fault.target)
        except Exception as exc:  # noqa: BLE001 - a harness failure is recorded, not hidden
            outcome = f"ERROR {type(exc).__name__}: {exc}"
        self.records.append(Record(fault, action, at, outcome))

    # ------------------------------------------------------------------ the faults

    def _do_kill_worker(self, i: int) -> str:
        workers = self._workers(i)
        if not workers:
            return "no worker"
        pid = random.Random(f"{self.seed}-{len(self.records)}").choice(workers)
        os.kill(pid, signal.SIGKILL)
        return f"killed worker pid {pid}"

    def _workers(self, i: int) -> list[int]:
        """Worker processes on host ``i``: sshmr agent processes whose parent is an agent."""
        agents = {pid for pid, cmd in self.cluster.descendants(i) if "sshmr_agent" in cmd}
        return sorted(pid for pid in agents if _ppid(pid) in agents)

    def _do_kill_sshd(self, i: int) -> str:
        self.cluster.kill_host(i)
        return "killed"

    def _undo_kill_sshd(self, i: int) -> str:
        self.cluster.start_host(i)
        return "restarted"

    def _do_partition(self, i: int) -> str:
        if not hasattr(self.cluster, "partition"):
            return "unavailable"
        self.cluster.partition(i)
        return "partitioned"

    def _undo_partition(self, i: int) -> str:
        if not hasattr(self.cluster, "heal"):
            return "unavailable"
        self.cluster.heal(i)
        return "healed"

    def _do_sigstop(self, i: int) -> str:
        if not self.cluster.alive(i):
            return "host down"
        procs = [self.cluster.hosts[i].pid] + [
            pid for pid, _ in self.cluster.descendants(i, include_sshd=True)]
        stopped = []
        for pid in procs:
            start = _start_time(pid)
            if start is not None:
                os.kill(pid, signal.SIGSTOP)
                stopped.append((pid, start))
        self._stopped[i] = stopped
        return f"stopped {len(stopped)} processes"

    def _undo_sigstop(self, i: int) -> str:
        stopped = self._stopped.pop(i, [])
        for pid, start in stopped:
            if _start_time(pid) == start:
                os.kill(pid, signal.SIGCONT)
        return f"continued {len(stopped)} processes"

    def _do_disk_full(self, i: int) -> str:
        if i not in self.disks:
            return "unavailable"
        self.disks[i].fill()
        return "filled"

    def _undo_disk_full(self, i: int) -> str:
        if i not in self.disks:
            return "unavailable"
        self.disks[i].free()
        return "freed"

    def _do_kill_master(self, lane: int) -> str:
        return self.lanes[lane].kill()

    def _undo_kill_master(self, lane: int) -> str:
        return self.lanes[lane].resume()

    def _undo_everything(self) -> None:
        """After an error mid-run: leave no host stopped, partitioned, down or full."""
        for i in list(self._stopped):
            self._undo_sigstop(i)
        for h in self.cluster.hosts:
            if hasattr(self.cluster, "partitioned") and self.cluster.partitioned(h.index):
                self.cluster.heal(h.index)
            self.cluster.start_host(h.index)
        for disk in self.disks.values():
            disk.free()

    # ------------------------------------------------------------------ disks

    def _setup_disks(self) -> None:
        if not self._want_disks or os.geteuid() != 0:
            return
        try:
            from diskfull import host_disk
        except ImportError:
            return
        for h in self.cluster.hosts:
            self.disks[h.index] = host_disk(self.cluster, h.index, DISK_SIZE)
            # A NetnsCluster's sshd has a copy of the mount table made when it started (and
            # "/" is not a shared mount here): only a restarted sshd sees the new tmpfs.
            self.cluster.kill_host(h.index)
            self.cluster.start_host(h.index)

    def _teardown_disks(self) -> None:
        for disk in self.disks.values():
            disk.umount()
        self.disks.clear()


def _ppid(pid: int) -> int | None:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
        return int(data[data.rindex(b")") + 2:].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _start_time(pid: int) -> int | None:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
        return int(data[data.rindex(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None
