"""Corrupt results are rejected (and retried), never committed, never unpickled.

End to end, a job sabotages the on-disk commit of its own result on its first launch
(see ``Fault._sabotage``): a byte of the committed ``result`` file is flipped after the
worker computed its sha256 (``checksum``), or ``result`` ends up pointing at /dev/null
(``truncate``). The result is larger than the inline limit, so the master fetches the
file over SFTP and must notice. Inline results cannot be damaged on the host after the
fact; the master's checks on them are unit-tested below.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pickle
import queue
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from checks import FAST, assert_nothing_lost, payloads  # noqa: E402
from helpers import write_inventory  # noqa: E402
from jobs_faults import Fault, blob  # noqa: E402

import sshmr  # noqa: E402
from sshmr import JobState  # noqa: E402
from sshmr.engine import scheduler as s  # noqa: E402
from sshmr.engine.config import RunConfig  # noqa: E402
from sshmr.engine.master import Master  # noqa: E402
from sshmr.jobs import Reason  # noqa: E402
from sshmr.remote.protocol import check_result  # noqa: E402


class _Evil:
    """Unpickling this creates ``path``: proof that something unpickled it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def _meta(data: bytes, kind: str = "json") -> dict:
    return {"t": "done", "a": 1, "status": "ok", "kind": kind, "size": len(data),
            "sha": hashlib.sha256(data).hexdigest()}


@pytest.fixture
def evil(tmp_path):
    marker = tmp_path / "unpickled"
    data = pickle.dumps(_Evil(str(marker)), protocol=0)  # protocol 0 is ASCII text
    pickle.loads(data)  # the control: it does work when unpickled ...
    assert marker.is_dir()
    marker.rmdir()  # ... so its absence later means nothing unpickled it
    return marker, data


GOOD = json.dumps({"answer": [1, 2, 3]}).encode()


@pytest.mark.parametrize("case,data,problem", [
    ("truncated", GOOD[:-3], f"result is {len(GOOD) - 3} bytes, expected {len(GOOD)}"),
    ("empty", b"", f"result is 0 bytes, expected {len(GOOD)}"),
    ("extended", GOOD + b" ", f"result is {len(GOOD) + 1} bytes, expected {len(GOOD)}"),
    ("altered", GOOD.replace(b"1", b"7"), "result checksum mismatch"),
])
def test_check_result_rejects_damaged_data(case, data, problem):
    assert check_result(_meta(GOOD), GOOD) is None
    assert check_result(_meta(GOOD), data) == problem


def test_check_result_rejects_missing_metadata_bad_json_and_unknown_kinds(evil):
    marker, pickled = evil
    meta = _meta(GOOD)
    assert check_result({k: v for k, v in meta.items() if k != "sha"}, GOOD) is not None
    assert check_result({k: v for k, v in meta.items() if k != "size"}, GOOD) is not None
    assert check_result(_meta(b"{not json"), b"{not json") == "result is not valid JSON"
    assert check_result(_meta(pickled), pickled) == "result is not valid JSON"
    # only a function run (it has a result key) accepts a pickle, and only signed with it
    assert "accepts none" in check_result(_meta(pickled, "pickle"), pickled)
    assert "without a signature" in check_result(_meta(pickled, "pickle"), pickled, b"k" * 32)
    assert "unknown result kind" in check_result(_meta(pickled, "marshal"), pickled)
    assert check_result(_meta(pickled, "bytes"), pickled) is None  # opaque bytes: fine
    assert not marker.exists()


def _master(tmp_path: Path) -> Master:
    m = Master(run_dir=str(tmp_path), journal=None, sessions={}, scheduler=None,
               config=RunConfig(), events=queue.SimpleQueue())
    m.inflight[1] = ("h", 0, 1)
    return m


class _Session:
    name = "h"
    run_dir = "/nowhere"


@pytest.mark.parametrize("how", ["inline_r", "inline_rb", "fetched"])
@pytest.mark.parametrize("case", ["truncated", "altered", "pickle_as_json", "pickle_kind",
                                  "sha_of_other_data"])
def test_master_rejects_corrupt_results_as_corrupt(tmp_path, evil, how, case):
    marker, pickled = evil
    meta = _meta(GOOD)
    data = GOOD
    if case == "truncated":
        data = GOOD[:10]
    elif case == "altered":
        data = GOOD.replace(b"2", b"9")
    elif case == "pickle_as_json":  # a pickle whose checksum is right, declared as JSON
        meta, data = _meta(pickled), pickled
    elif case == "pickle_kind":  # a kind the master must never accept, whatever it is
        meta, data = _meta(pickled, "pickle"), pickled
    elif case == "sha_of_other_data":
        meta = dict(_meta(GOOD), sha=hashlib.sha256(pickled).hexdigest())
    m = _master(tmp_path)
    if how == "inline_r":
        events = m._on_done(_Session(), dict(meta, r=data.decode()))
    elif how == "inline_rb":
        events = m._on_done(_Session(), dict(meta, rb=base64.b64encode(data).decode()))
    else:
        events = m._on_io(_Session(), (("fetch", 1), (meta, data)))
    assert events == [s.AttemptFailed(1, Reason.CORRUPT, slot_alive=True)]
    assert m.details[1]["error"].startswith("corrupt result: ")
    assert m.results == {}  # nothing to commit
    assert not marker.exists()


def test_master_takes_verified_results_as_data(tmp_path, evil):
    marker, pickled = evil
    m = _master(tmp_path)
    assert m._verified(1, _meta(GOOD), GOOD) == s.AttemptSucceeded(1)
    assert m._verified(2, _meta(pickled, "bytes"), pickled) == s.AttemptSucceeded(2)
    assert m.results == {1: ("json", GOOD), 2: ("bytes", pickled)}  # kept raw
    assert not marker.exists()


@pytest.mark.parametrize("sabotage,error", [
    ("checksum", "corrupt result: result checksum mismatch"),
    ("truncate", "corrupt result: result is 0 bytes, expected 204800"),
])
def test_corrupt_result_on_disk_is_rejected_and_the_job_retried(cluster, tmp_path, sabotage,
                                                                error):
    effects = tmp_path / "effects"
    effects.mkdir()
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[2, 3], slots=1)
    items = payloads(effects, 1, result_kb=200, corrupt=sabotage)
    items += payloads(effects, 3, prefix="ok", result_kb=100)
    result = sshmr.run(Fault(), items, inventory=str(inv), runs_dir=str(tmp_path / "runs"),
                       max_retries=2, **FAST)

    by_job = assert_nothing_lost(result, 2, effects, cluster=cluster)
    assert result.ok, result
    assert result.results == [blob(200 * 1024)] + [blob(100 * 1024)] * 3
    bad, good = by_job[1]
    assert (bad["state"], bad["reason"], bad["error"]) == ("FAILED", "corrupt", error)
    assert good["state"] == "SUCCEEDED"
    assert [j.attempts for j in result] == [2, 1, 1, 1]
    assert result.jobs[0].state is JobState.SUCCEEDED
    print(f"\n{sabotage}: corrupt result rejected {(bad['ended'] - bad['started']) * 1000:.0f}"
          f" ms after the attempt started; retry committed "
          f"{(good['ended'] - bad['ended']) * 1000:.0f} ms later")
