"""The chaos run's fault schedule: a pure function of the seed (the replay property).

``plan(seed, seconds, n_hosts, n_lanes)`` draws, from ``random.Random(seed)`` alone, one
fault about every second (gaps of 0.5 to 1.5 s) until ``seconds``: its kind, its target
(a host index, or a lane index for ``kill_master``), when it starts and how long it holds
before it is undone (sshd restarted, link healed, SIGCONT, disk freed, master resumed).
At most ``n_hosts - 2`` hosts (at least 1) are under a lasting fault at any moment, so runs
keep making progress; a host fault drawn when none is free becomes a ``kill_worker``, and
a ``kill_worker`` hits a host under no lasting fault when there is one.
Nothing about the machine enters the draw: kinds that cannot be done here (no network
namespaces, not root) are still planned, and the harness records them as unavailable.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

KINDS = ("kill_worker", "kill_sshd", "partition", "sigstop", "disk_full", "kill_master")
HOLD = {  # seconds a lasting fault holds before it is undone (uniform in the range)
    "kill_sshd": (1.0, 8.0),
    "partition": (2.0, 10.0),  # about half of them outlast host_silence (5 s)
    "sigstop": (1.0, 9.0),
    "disk_full": (2.0, 6.0),
    "kill_master": (0.3, 4.0),  # until ``sshmr resume``
}
HOST_KINDS = ("kill_worker", "kill_sshd", "partition", "sigstop", "disk_full")


@dataclass(frozen=True)
class Planned:
    index: int
    at: float  # seconds after the start of the chaos
    kind: str
    target: int  # host index; lane index for kill_master
    hold: float  # 0 for kill_worker

    def describe(self) -> str:
        what = f"lane {self.target}" if self.kind == "kill_master" else f"host {self.target}"
        hold = f" for {self.hold:.1f}s" if self.hold else ""
        return f"#{self.index} t={self.at:6.2f}s {self.kind} {what}{hold}"


def plan(seed: int, seconds: float, n_hosts: int, n_lanes: int) -> list[Planned]:
    rng = random.Random(seed)
    busy_until = [0.0] * n_hosts
    max_busy = max(1, n_hosts - 2)
    faults: list[Planned] = []
    t = rng.uniform(0.5, 1.5)
    while t < seconds:
        kind = rng.choice(KINDS)
        hold = round(rng.uniform(*HOLD[kind]), 2) if kind in HOLD else 0.0
        if kind == "kill_master":
            target = rng.randrange(n_lanes)
        else:
            free = [i for i in range(n_hosts) if busy_until[i] <= t]
            lasting = n_hosts - len(free)
            if kind != "kill_worker" and (not free or lasting >= max_busy):
                kind, hold = "kill_worker", 0.0
            target = rng.choice(free) if free else rng.randrange(n_hosts)
            if hold:
                busy_until[target] = t + hold + 1.0  # a second of calm after the undo
        faults.append(Planned(len(faults) + 1, round(t, 2), kind, target, hold))
        t += rng.uniform(0.5, 1.5)
    return faults


def timeline(faults: list[Planned]) -> list[tuple[float, str, Planned]]:
    """(time, "do" | "undo", fault), in the order the harness performs them."""
    steps = [(f.at, "do", f) for f in faults]
    steps += [(round(f.at + f.hold, 2), "undo", f) for f in faults if f.hold]
    return sorted(steps, key=lambda s: (s[0], s[1] == "do", s[2].index))
