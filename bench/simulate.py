"""Scheduler-only simulation: the pure state machine with no SSH, no journal, no threads.

HOSTS x SLOTS slots come up, JOBS jobs are added, and every Launch the scheduler returns
is answered with AttemptStarted and AttemptSucceeded, fed back in batches of one event per
busy slot (as the master's loop drains its queue), with a Tick every 0.1 s of simulated
time. Prints the scheduler's CPU time per event and per job, to show that its cost does
not grow with the fleet.

    python bench/simulate.py [--jobs 1000000] [--hosts 10 100 1000] [--slots 8]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sshmr.engine import scheduler as s  # noqa: E402


def simulate(hosts: int, slots: int, jobs: int, seed: int = 1) -> dict:
    names = [f"h{i}" for i in range(hosts)]
    sched = s.Scheduler(names, max_retries=3, timeout=60.0, seed=seed)
    now = 0.0
    events = 0
    t0 = time.process_time()
    out = sched.handle(now, *[s.HostUp(n, slots) for n in names])
    out = sched.handle(now, *[s.SlotUp(a.slot, float("inf")) for a in out
                              if isinstance(a, s.StartSlot)])
    events += hosts + hosts * slots
    out += sched.handle(now, s.JobsAdded(tuple(range(1, jobs + 1))))
    events += 1
    committed = 0
    finished = False
    next_tick = 0.1
    while not finished:
        launched = [a.attempt_id for a in out if type(a) is s.Launch]
        for a in out:
            kind = type(a)
            if kind is s.Commit:
                committed += 1
            elif kind is s.Finished:
                finished = True
        if finished:
            break
        now += 0.001
        batch: list[object] = [s.AttemptStarted(i) for i in launched]
        batch += [s.AttemptSucceeded(i) for i in launched]
        if now >= next_tick:
            next_tick = now + 0.1
            batch.append(s.Tick())
        if not batch:
            raise RuntimeError("simulation stalled: nothing running, not finished")
        events += len(batch)
        out = sched.handle(now, *batch)
    cpu = time.process_time() - t0
    if committed != jobs:
        raise RuntimeError(f"simulation committed {committed} of {jobs} jobs")
    return {"hosts": hosts, "slots": slots, "jobs": jobs, "events": events,
            "cpu_s": round(cpu, 3), "us_per_event": round(cpu * 1e6 / events, 3),
            "us_per_job": round(cpu * 1e6 / jobs, 3)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=1_000_000)
    p.add_argument("--hosts", type=int, nargs="+", default=[10, 100, 1000])
    p.add_argument("--slots", type=int, default=8)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    rows = []
    for h in args.hosts:
        r = simulate(h, args.slots, args.jobs)
        rows.append(r)
        print(f"{h:5d} hosts x {args.slots} slots, {args.jobs} jobs: {r['events']} events, "
              f"{r['cpu_s']:.2f} s CPU, {r['us_per_event']:.2f} us/event, "
              f"{r['us_per_job']:.2f} us/job", flush=True)
    if args.json:
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
