"""The chaos run's fault schedule (``tests/chaos_plan.py``): replayable and bounded."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chaos_plan import HOLD, KINDS, plan, timeline  # noqa: E402


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another():
    first = plan(42, 180, 4, 2)
    assert first == plan(42, 180, 4, 2)
    assert first != plan(43, 180, 4, 2)
    assert [f.describe() for f in first] == [f.describe() for f in plan(42, 180, 4, 2)]


def test_a_shorter_run_is_a_prefix_of_the_longer_one():
    long, short = plan(5, 180, 4, 2), plan(5, 60, 4, 2)
    assert long[:len(short)] == short and len(long) > len(short)


def test_about_one_fault_a_second_of_every_kind_on_valid_targets():
    faults = plan(7, 600, 4, 2)
    assert 400 <= len(faults) <= 800
    gaps = [b.at - a.at for a, b in zip(faults, faults[1:], strict=False)]
    assert min(gaps) >= 0.49 and max(gaps) <= 1.51
    assert {f.kind for f in faults} == set(KINDS)
    for f in faults:
        assert 0 <= f.target < (2 if f.kind == "kill_master" else 4)
        if f.kind in HOLD:
            low, high = HOLD[f.kind]
            assert low <= f.hold <= high
        else:
            assert f.hold == 0


def test_at_most_two_of_four_hosts_under_a_lasting_fault_never_two_on_one_host():
    faults = plan(11, 600, 4, 2)
    lasting = [f for f in faults if f.hold and f.kind != "kill_master"]
    for f in lasting:
        overlapping = [g for g in lasting if g.at <= f.at < g.at + g.hold + 1.0]
        assert len(overlapping) <= 2, [g.describe() for g in overlapping]
        assert [g for g in overlapping if g.target == f.target] == [f]


def test_every_lasting_fault_is_undone_after_it_was_done():
    steps = timeline(plan(3, 120, 4, 2))
    assert [s[0] for s in steps] == sorted(s[0] for s in steps)
    done: set[int] = set()
    for _, action, fault in steps:
        if action == "do":
            done.add(fault.index)
        else:
            assert fault.index in done
    assert sum(1 for s in steps if s[1] == "undo") == sum(1 for s in steps if s[2].hold
                                                          and s[1] == "do")
