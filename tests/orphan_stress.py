"""The orphan stress: many short runs on freshly restarted sshd hosts under CPU load, and
after each one a check that nothing of the run is left on any host.

Used by ``tests/faults/test_orphans.py`` (a short version, in CI) and by
``bench/bench_orphans.py`` (the long one, ``--rounds 500``). The entry points take turns:

* ``api``: ``sshmr.run(...)`` in a fresh Python process that exits right after it returns;
* ``cli``: ``sshmr run ...`` to the end;
* ``kill``: ``sshmr run`` SIGKILLed at a random moment (start-up, mid-run or shut-down);
* ``sigint``: ``sshmr run`` sent SIGINT (Ctrl-C) at a random moment.

Each round: every sshd is restarted (fresh hosts), then 100 short jobs run over 4 hosts x 4
slots while busy-loop processes load the CPU. Hosts start the agent through a wrapper
that first sleeps for 0 to 1.5 s on about half the rounds, like a slow login or a pyenv
shim. So some hosts connect while the run is already ending. Then every process on every
host must be gone within ``master_grace`` + ``MARGIN`` seconds. Leftovers are recorded and
killed by PID. The run's remote directories must be gone too, or be removed by ``sshmr gc``
(``--all`` after a SIGKILL: the run stays resumable).

Each host has its own home (``SshdCluster``'s default, ``own_homes=True``), as
separate servers have. With one shared home, every host's login shell runs the same rc
files; on this machine root's ``~/.bashrc`` runs ``pyenv rehash``, which takes one
machine-wide lock file. A shell frozen or killed while holding it (another test's
SIGSTOP or kill of *its* host) holds up every other host's login for up to 60 s: shells
that have not yet started sshmr's agent, outliving the master. That was the one leftover
in 500 rounds (round 491, a ``[?]`` on h3) before hosts got their own homes; the evidence
a failed round now records (every host process with its parent, state, wait channel and
open files, then how long each leftover lived on) showed it.
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

from helpers import JOBS, write_inventory

ENTRY_POINTS = ("api", "cli", "kill", "sigint")
MASTER_GRACE = 10.0  # the agents' default; no run here changes it
MARGIN = 2.0
EVIDENCE_WATCH = 30.0
QUIET = 0.5  # no process on any host for this long: the hosts are clean
JOB_COUNT = 100
TARGET = f"{JOBS}/jobs_orphans.py:Probe"
SLOW_PYTHON = """#!/bin/sh
# A slow login (like a pyenv shim) on about half the runs: 0 to 1.5 s, then python.
d=$(( $$ % 32 ))
if [ "$d" -lt 16 ]; then sleep "$((d / 10)).$((d % 10))"; fi
exec {python} "$@"
"""
API_SCRIPT = """\
import json, sys
sys.path.insert(0, {jobs!r})
import sshmr, jobs_orphans
items = json.load(open({items!r}))
res = sshmr.run(jobs_orphans.Probe(), items, inventory={inv!r}, runs_dir={runs!r},
                timeout=30, max_retries=2)
print(type(res).__name__, res.ok, len(res.jobs))
"""


@dataclass
class Round:
    number: int
    entry: str
    seconds: float = 0.0  # the entry point's own run time
    signal_at: float | None = None  # kill/sigint: seconds after start
    exit: int | None = None
    clean_after: float = 0.0  # seconds from the master's end until no process was left
    leftovers: list[tuple[str, int, str]] = field(default_factory=list)
    # for a round with leftovers: what each host process was at the deadline (all of the
    # host's processes, sshd included) and how much longer each leftover lived
    evidence: list[str] = field(default_factory=list)
    gc_removed: int = 0  # remote run dirs that only ``sshmr gc`` removed
    dirs_left: list[str] = field(default_factory=list)  # not even gc removed them
    problem: str | None = None  # a wrong exit status or output
    early_interrupt: bool = False  # SIGINT landed outside sshmr's handler (start-up or exit)

    @property
    def ok(self) -> bool:
        return not (self.leftovers or self.dirs_left or self.problem)


class Stress:
    """``with Stress(cluster, root) as stress: stress.round("kill")`` etc."""

    def __init__(self, cluster: Any, root: Path, *, seed: int = 0, hogs: int = 2) -> None:
        self.cluster = cluster
        self.root = Path(root)
        self.rng = random.Random(seed)
        self.hog_count = hogs
        self.hogs: list[subprocess.Popen] = []
        self.runs = self.root / "runs"
        self.inv = self.root / "inventory.yaml"
        self.inputs = self.root / "inputs.txt"
        self.items = self.root / "items.json"
        self.env = {k: v for k, v in os.environ.items() if k not in ("SSH_AUTH_SOCK",)}
        self.typical = 3.0  # seconds a CLI run takes (a running mean): where signals land
        self.rounds: list[Round] = []

    def __enter__(self) -> Stress:
        self.root.mkdir(parents=True, exist_ok=True)
        wrapper = self.root / "slow-python"
        wrapper.write_text(SLOW_PYTHON.format(python=sys.executable))
        wrapper.chmod(0o755)
        write_inventory(self.cluster, self.inv, python=str(wrapper))
        items = [{"i": i, "sleep": round(self.rng.uniform(0, 0.02), 4)} for i in range(JOB_COUNT)]
        self.items.write_text(json.dumps(items))
        self.inputs.write_text("".join(json.dumps(item) + "\n" for item in items))
        for _ in range(self.hog_count):
            self.hogs.append(subprocess.Popen([sys.executable, "-c", "while True: pass"],
                                              stdin=subprocess.DEVNULL, start_new_session=True))
        return self

    def __exit__(self, *exc: object) -> None:
        for hog in self.hogs:  # by PID, ours only
            hog.kill()
            hog.wait()
        self.hogs.clear()

    # ------------------------------------------------------------------ a round

    def round(self, entry: str) -> Round:
        r = Round(len(self.rounds) + 1, entry)
        self.rounds.append(r)
        for h in self.cluster.hosts:  # fresh hosts: nothing of ours can run on them now
            self.cluster.kill_host(h.index)
            self.cluster.start_host(h.index)
        started = time.monotonic()
        if entry == "api":
            self._finish(r, self._spawn([sys.executable, "-c", API_SCRIPT.format(
                jobs=str(JOBS), items=str(self.items), inv=str(self.inv), runs=str(self.runs))]))
        elif entry == "cli":
            self._finish(r, self._spawn(self._cli()))
        else:
            proc = self._spawn(self._cli())
            r.signal_at = self.rng.uniform(0.0, 1.2 * self.typical)
            try:
                proc.wait(r.signal_at)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL if entry == "kill" else signal.SIGINT)
            self._finish(r, proc)
        r.seconds = time.monotonic() - started
        if entry == "cli" and r.exit == 0:
            self.typical = 0.8 * self.typical + 0.2 * r.seconds
        self._check_hosts(r)
        self._check_dirs(r)
        return r

    def _cli(self) -> list[str]:
        return [sys.executable, "-m", "sshmr", "run", "-i", str(self.inv), "--runs-dir",
                str(self.runs), TARGET, str(self.inputs), "--timeout", "30", "--max-retries", "2",
                "-q", "--json"]

    def _spawn(self, argv: list[str]) -> subprocess.Popen:
        return subprocess.Popen(argv, cwd=self.root, env=self.env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def _finish(self, r: Round, proc: subprocess.Popen) -> None:
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            r.problem = "the master did not end within 120 s"
        r.exit = proc.returncode
        text = (out + err).decode(errors="replace").strip()
        expected = {"api": {0}, "cli": {0}, "kill": {0, -signal.SIGKILL}, "sigint": {0, 130}}
        if r.entry == "sigint" and (r.exit == -signal.SIGINT or (r.exit == 1 and text.endswith(
                "KeyboardInterrupt"))):  # in Python's start-up or exit, not sshmr's handler
            r.early_interrupt = True
        elif r.problem is None and r.exit not in expected[r.entry]:
            r.problem = f"exit status {r.exit}: {text[-500:]}"
        elif r.entry == "api" and r.exit == 0 and "RunResult True 100" not in text:
            r.problem = f"unexpected output: {text[-500:]}"

    def _check_hosts(self, r: Round) -> None:
        """Every process on every host ends within master_grace + MARGIN of the master.

        "Ended" means no process found for ``QUIET`` s in a row, so one that appears late
        (a connection landing after the master ended) is still seen. What is left at the
        deadline is the round's leftovers; they are watched a while (evidence), then killed.
        """
        t0 = time.monotonic()
        deadline = t0 + MASTER_GRACE + MARGIN
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            now = time.monotonic()
            if self.cluster.descendants():
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= QUIET:
                break
            time.sleep(0.05)
        r.clean_after = (quiet_since or time.monotonic()) - t0
        r.leftovers = [(h.name, pid, cmd) for h in self.cluster.hosts
                       for pid, cmd in self.cluster.descendants(h.index)]
        if r.leftovers:
            r.evidence = self._evidence()
        self.cluster.reap_leftovers(timeout=0)  # kills (by PID) whatever is still there

    def _evidence(self) -> list[str]:
        """Every process of the hosts (sshd included), then how long the leftovers lived on.

        Leftovers are watched for up to ``EVIDENCE_WATCH`` s more before they are killed,
        so a report says whether a process was stuck or only slow, and what it waited on.
        """
        lines = [_describe(pid) for pid in sorted(self.cluster._collect(
            range(len(self.cluster.hosts))))]
        watched = {pid: cmd for pid, cmd in self.cluster.descendants()}
        t0 = time.monotonic()
        while watched and time.monotonic() - t0 < EVIDENCE_WATCH:
            time.sleep(0.1)
            alive = {pid for pid, _ in self.cluster.descendants()}
            for pid in [p for p in watched if p not in alive]:
                lines.append(f"pid {pid} ended {time.monotonic() - t0:.1f}s after the deadline")
                del watched[pid]
        lines += [f"pid {pid} still alive {EVIDENCE_WATCH:.0f}s after the deadline: "
                  f"{_describe(pid)}" for pid in watched]
        return lines

    def _check_dirs(self, r: Round) -> None:
        if not self._remote_run_dirs():
            return
        gc = [sys.executable, "-m", "sshmr", "gc", "-i", str(self.inv), "--runs-dir",
              str(self.runs)] + (["--all"] if r.entry == "kill" else [])
        before = len(self._remote_run_dirs())
        subprocess.run(gc, cwd=self.root, env=self.env, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=120)
        r.dirs_left = self._remote_run_dirs()
        r.gc_removed = before - len(r.dirs_left)

    def _remote_run_dirs(self) -> list[str]:
        found = []
        for h in self.cluster.hosts:
            runs = Path(h.workdir, "runs")
            if runs.is_dir():
                found += [f"{h.name}:{p.name}" for p in sorted(runs.iterdir())]
        return found

    # ------------------------------------------------------------------ summary

    def summary(self) -> dict[str, Any]:
        by_entry: dict[str, Any] = {}
        for entry in ENTRY_POINTS:
            mine = [r for r in self.rounds if r.entry == entry]
            if not mine:
                continue
            by_entry[entry] = {
                "rounds": len(mine),
                "with_leftovers": sum(1 for r in mine if r.leftovers),
                "leftover_processes": sum(len(r.leftovers) for r in mine),
                "dirs_removed_by_gc": sum(r.gc_removed for r in mine),
                "dirs_left": sum(len(r.dirs_left) for r in mine),
                "problems": sum(1 for r in mine if r.problem),
                "interrupted_outside_handler": sum(r.early_interrupt for r in mine),
                "exits": _count(str(r.exit) for r in mine),
                "median_s": round(sorted(r.seconds for r in mine)[len(mine) // 2], 2),
                "max_clean_after_s": round(max(r.clean_after for r in mine), 2),
            }
        return {"rounds": len(self.rounds), "failed_rounds": sum(not r.ok for r in self.rounds),
                "by_entry": by_entry}

    def failures(self) -> list[str]:
        lines = []
        for r in self.rounds:
            if r.ok:
                continue
            what = []
            if r.leftovers:
                what.append("left running: " + "; ".join(
                    f"{host} pid {pid} {cmd[:80]}" for host, pid, cmd in r.leftovers))
            if r.dirs_left:
                what.append(f"remote run dirs not even gc removed: {r.dirs_left}")
            if r.problem:
                what.append(r.problem)
            at = f" (signal at {r.signal_at:.2f}s)" if r.signal_at is not None else ""
            lines.append(f"round {r.number} {r.entry}{at}: " + " | ".join(what))
            lines += [f"    {line}" for line in r.evidence]
        return lines


def _describe(pid: int) -> str:
    """``pid ppid state age wchan cmdline fds`` of one process, read from /proc."""
    def read(name: str) -> str:
        try:
            return Path(f"/proc/{pid}/{name}").read_bytes().replace(b"\0", b" ").decode(
                errors="replace").strip()
        except OSError:
            return "?"
    stat = read("stat")
    try:
        fields = stat[stat.rindex(")") + 2:].split()
        ppid, state = fields[1], fields[0]
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - int(fields[19]) / os.sysconf(
            "SC_CLK_TCK")
    except ValueError:
        ppid, state, age = "?", "?", float("nan")
    try:
        fds = " ".join(sorted(f"{fd}->{os.readlink(f'/proc/{pid}/fd/{fd}')}"
                              for fd in os.listdir(f"/proc/{pid}/fd")))
    except OSError:
        fds = "?"
    return (f"pid {pid} ppid {ppid} {state} age {age:.1f}s wchan {read('wchan')} "
            f"cmd {read('cmdline')[:160] or '[' + read('comm') + ']'} fds {fds}")


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out
