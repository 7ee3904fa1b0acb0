"""What a compromised host sends, checked on the master without SSH: protocol messages
(``engine/wire.py``) and pickled function results (``record/safe_pickle.py``)."""

from __future__ import annotations

import base64
import collections
import datetime
import decimal
import fractions
import os
import pickle
import subprocess
import sys
import uuid

import cloudpickle
import pytest

from sshmr.engine.wire import (
    MAX_SLOTS,
    ProtocolViolation,
    check_done,
    check_message,
    host_key,
    job_mark,
    printable,
)
from sshmr.record import safe_pickle

SHA = "ab" * 32


# ------------------------------------------------------------------------ messages

@pytest.mark.parametrize("msg,why", [
    ({"t": "ack", "a": "../../etc"}, "'a' is"),
    ({"t": "ack", "a": True}, "'a' is"),
    ({"t": "ack", "a": 2 ** 70}, "'a' is"),
    ({"t": "up", "slot": -1}, "'slot' is"),
    ({"t": "up", "slot": 0, "life": float("nan")}, "'life' is"),
    ({"t": "down", "slot": 0, "exit": {"a": 1}}, "'exit' is"),
    ({"t": "done", "a": 1, "status": "ok", "kind": "marshal", "sha": SHA, "size": 1},
     "unknown result kind"),
    ({"t": "done", "a": 1, "status": "ok", "kind": "json", "sha": "x", "size": 1}, "'sha' is"),
    ({"t": "done", "a": 1, "status": "ok", "kind": "json", "sha": SHA, "size": -5}, "'size'"),
    ({"t": "done", "a": 1, "status": "pwned"}, "unknown attempt status"),
    ({"t": "done", "a": 1, "status": "error", "error": ["x"]}, "'error' is"),
    ({"t": "done", "a": 1, "status": "error", "q": "yes"}, "'q' is"),
    ({"t": "exec", "cmd": "rm -rf /"}, "unknown message type"),
    ({"t": "ready", "cpus": 0}, "'cpus' is"),
])
def test_malformed_messages_are_violations(msg, why):
    with pytest.raises(ProtocolViolation, match=why):
        check_message(msg)


def test_clean_messages_keep_only_known_fields_with_printable_text():
    msg = check_message({"t": "done", "a": 3, "status": "error", "exit": 1, "extra": "x" * 10,
                         "error": "boom \x1b[2J\x1b]0;owned\x07 \u202egnp.exe",
                         "tb": "line\n\ttab\r\x00", "out": "\ud800"})
    assert "extra" not in msg
    assert msg["error"] == "boom \\x1b[2J\\x1b]0;owned\\x07 \\u202egnp.exe"
    assert msg["tb"] == "line\n\ttab\\r\\x00"  # newlines and tabs stay; the rest is shown
    assert msg["out"] == "\\ud800"  # a lone surrogate SQLite could not store
    msg["out"].encode("utf-8")


def test_long_texts_are_cut_and_a_claimed_cpu_count_is_capped():
    msg = check_message({"t": "done", "a": 1, "status": "error", "tb": "x" * 10**6,
                         "error": "e" * 10**6})
    assert len(msg["tb"]) < 70_000 and msg["tb"].startswith("[... ")
    assert len(msg["error"]) < 9_000 and msg["error"].endswith("characters cut]")
    assert check_message({"t": "ready", "cpus": 10**9, "python": "3.11"})["cpus"] == MAX_SLOTS


def test_commit_markers_are_checked_like_done_messages():
    good = {"a": 4, "status": "ok", "kind": "pickle", "sha": SHA, "size": 10, "sig": "s"}
    assert check_done(good)["sig"] == "s"
    with pytest.raises(ProtocolViolation):
        check_done(dict(good, size="10"))


def test_printable_escapes_controls_and_keeps_text():
    assert printable("héllo wörld ✓ 日本") == "héllo wörld ✓ 日本"
    assert printable("a\x1b[31mred\x9b") == "a\\x1b[31mred\\x9b"


def test_keys_and_marks_are_per_host_and_per_pair():
    run = os.urandom(32)
    assert host_key(run, "a") != host_key(run, "b")
    assert host_key(run, "a") == host_key(run, "a")
    assert job_mark(b"k", 5, 1) != job_mark(b"k", 5, 2) != job_mark(b"k", 6, 1)


# ------------------------------------------------------------------------ pickles

class _Boom:
    """Pickles as a call of ``fn(*args)``: what a hostile host would send."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


@pytest.fixture
def canary(tmp_path):
    path = tmp_path / "pwned"
    yield path
    assert not path.exists(), "a pickled result ran code on the master"


@pytest.mark.parametrize("make", [
    lambda c: _Boom(os.system, f"touch {c}"),
    lambda c: _Boom(subprocess.call, ["touch", str(c)]),
    lambda c: _Boom(eval, f"open({str(c)!r}, 'w')"),
    lambda c: _Boom(exec, f"open({str(c)!r}, 'w')"),
    lambda c: _Boom(open, str(c), "w"),
    lambda c: _Boom(getattr, subprocess.Popen, "wait"),
    lambda c: [_Boom(os.system, f"touch {c}"), 1, "x"],
])
def test_a_hostile_pickle_runs_nothing_on_the_master(canary, make):
    data = pickle.dumps(make(canary))
    value = safe_pickle.loads(data)
    assert "not loaded" in repr(value)


def test_a_hostile_cloudpickled_function_never_runs(canary):
    """Made in a fresh interpreter, as a host would: functions and a class by value whose
    every hook would touch the canary."""
    code = f"""
import base64, os, sys, cloudpickle
def evil(path={str(canary)!r}):
    open(path, "w").close()
class Sneaky:
    def __repr__(self):
        return evil() or "x"
    def __del__(self):
        evil()
    def __setstate__(self, state):
        evil()
    def __reduce__(self):
        return (evil, ())
class Plain:
    def __eq__(self, other):
        return evil()
sys.stdout.write(base64.b64encode(cloudpickle.dumps([evil, Sneaky(), Plain(), evil()])).decode())
sys.stdout.flush()
os._exit(0)
"""
    made = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    canary.unlink()  # the maker ran evil() itself; loading must not
    value = safe_pickle.loads(base64.b64decode(made.stdout))
    repr(value)
    assert all("not loaded" in repr(v) for v in value[:3])
    _ = value[2] == value[2]
    del value


def test_honest_results_come_back_exactly():
    values = [(1, 2), {3, 4}, frozenset({5}), 1.5, float("inf"), b"\x00", bytearray(b"x"),
              complex(1, 2), datetime.datetime(2026, 12, 4, 5, 6), datetime.timedelta(3),
              decimal.Decimal("1.10"), fractions.Fraction(1, 3), uuid.UUID(int=7),
              collections.OrderedDict(a=1), collections.Counter("aab"),
              collections.deque([1]), ValueError("bad"), {"k": (None, True)}, range(3)]
    back = safe_pickle.loads(cloudpickle.dumps(values))
    assert back[:-3] == values[:-3]
    assert type(back[-3]) is ValueError and back[-3].args == ("bad",)
    assert back[-2:] == values[-2:]


def test_classes_the_master_sent_come_back_as_themselves():
    class Point:  # defined here: cloudpickle sends it by value and tracks it
        def __init__(self, x):
            self.x = x

    cloudpickle.dumps(lambda: Point)  # the master ships a function that uses the class
    back = safe_pickle.loads(cloudpickle.dumps([Point(3)]))
    assert type(back[0]) is Point and back[0].x == 3


def test_classes_of_the_runs_own_code_come_back_by_reference():
    sys.modules["sshmr_test_usermod"] = mod = type(sys)("sshmr_test_usermod")
    try:
        exec("class Rec:\n    def __init__(self, v):\n        self.v = v\n", mod.__dict__)
        mod.Rec.__module__ = "sshmr_test_usermod"
        data = pickle.dumps(mod.Rec(5))
        assert type(safe_pickle.loads(data, {"sshmr_test_usermod"})) is mod.Rec
        assert "not loaded" in repr(safe_pickle.loads(data))  # not the run's code: inert
    finally:
        del sys.modules["sshmr_test_usermod"]


def test_a_broken_pickle_is_refused_with_a_reason():
    with pytest.raises(safe_pickle.RefusedPickle, match="cannot be unpickled"):
        safe_pickle.loads(b"\x80\x05garbage")
