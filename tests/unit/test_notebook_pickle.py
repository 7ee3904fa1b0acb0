"""Function runs: cloudpickle round trips through the real worker code in a fresh process
(which has none of the "notebook" definitions), and the HMAC that guards unpickling."""

from __future__ import annotations

import base64
import json
import os
import pickle
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from sshmr.engine.bundle import build_bundle
from sshmr.errors import JobFailed
from sshmr.function import PICKLED_KEY
from sshmr.notebook.shipping import encode_item, ship_function
from sshmr.remote import protocol

REPO = Path(__file__).resolve().parents[2]

NOTEBOOK_CELL = '''
offset = 7
class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y
    def swapped(self):
        return Point(self.y, self.x)

def closure(x):
    return x * x + offset

swap = lambda p: p.swapped()

def uses_class(n):
    return [Point(i, n) for i in range(n)], (n, "tuple")
'''

WORKER = '''
import base64, json, pickle, sys
sys.path.insert(0, sys.argv[1])
from sshmr.function import FunctionExecutor
from sshmr.remote.worker import Worker
cfg = json.loads(sys.stdin.read())
ex = FunctionExecutor.__new__(FunctionExecutor)
ex.__dict__.update(pickle.loads(base64.b64decode(cfg["state"])))
assert "Point" not in sys.modules["__main__"].__dict__
ex.setup()
w = Worker(ex, run_dir=sys.argv[2], result_key=bytes.fromhex(cfg["key"]))
for i, p in enumerate(cfg["payloads"], 1):
    print(json.dumps(w.run_attempt({"t": "run", "a": i, "p": p})), flush=True)
'''


@pytest.fixture
def notebook():
    """Definitions made the way a notebook cell makes them: in ``__main__``, not importable."""
    namespace = {"__name__": "__main__"}
    exec(compile(NOTEBOOK_CELL, "<cell>", "exec"), namespace)
    return namespace


def run_in_worker(tmp_path: Path, fn, items: list) -> tuple[bytes, list[tuple[dict, bytes]]]:
    executor, code = ship_function(fn)
    user = tmp_path / "user"
    for name, data in code.files.items():
        (user / name).parent.mkdir(parents=True, exist_ok=True)
        (user / name).write_bytes(data)
    key = secrets.token_bytes(32)
    config = {"state": build_bundle(code, executor).state, "key": key.hex(),
              "payloads": [encode_item(x) for x in items]}
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", WORKER, str(user), str(tmp_path / "run")],
                          input=json.dumps(config), capture_output=True, text=True, env=env,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    out = []
    for line in proc.stdout.splitlines():
        meta = json.loads(line)
        assert meta["status"] == "ok", meta
        data = meta["r"].encode() if "r" in meta else base64.b64decode(meta["rb"])
        out.append((meta, data))
    return key, out


def decode(meta: dict, data: bytes, key: bytes):
    assert protocol.check_result(meta, data, key) is None
    return pickle.loads(data) if meta["kind"] == "pickle" else json.loads(data)


def test_closure_over_a_notebook_global(tmp_path, notebook):
    key, out = run_in_worker(tmp_path, notebook["closure"], [0, 3, 10])
    assert [m["kind"] for m, _ in out] == ["json"] * 3  # plain JSON stays JSON, unsigned
    assert [decode(m, d, key) for m, d in out] == [7, 16, 107]


def test_lambda_on_notebook_objects(tmp_path, notebook):
    point = notebook["Point"]
    key, out = run_in_worker(tmp_path, notebook["swap"], [point(1, 2), point(3, 4)])
    results = [decode(m, d, key) for m, d in out]
    assert [m["kind"] for m, _ in out] == ["pickle", "pickle"]
    assert all(type(r) is point for r in results)  # the notebook's own class comes back
    assert [(r.x, r.y) for r in results] == [(2, 1), (4, 3)]


def test_function_using_a_notebook_class(tmp_path, notebook):
    key, out = run_in_worker(tmp_path, notebook["uses_class"], [2])
    points, pair = decode(*out[0], key)
    assert pair == (2, "tuple")  # a tuple stays a tuple
    assert [(p.x, p.y) for p in points] == [(0, 2), (1, 2)]
    assert all(type(p) is notebook["Point"] for p in points)


def test_hmac_rejects_tampered_wrong_key_other_attempt_and_unsigned(tmp_path, notebook):
    key, out = run_in_worker(tmp_path, notebook["swap"], [notebook["Point"](1, 2)])
    meta, data = out[0]
    assert protocol.check_result(meta, data, key) is None
    tampered = data[:-2] + bytes([data[-2] ^ 1]) + data[-1:]
    forged = dict(meta, sha=protocol.sha256(tampered))  # checksum fixed up: only HMAC is left
    assert "signature does not match" in protocol.check_result(forged, tampered, key)
    assert "signature does not match" in protocol.check_result(meta, data,
                                                               secrets.token_bytes(32))
    assert "signature does not match" in protocol.check_result(dict(meta, a=meta["a"] + 1),
                                                               data, key)
    assert "accepts none" in protocol.check_result(meta, data, None)
    unsigned = {k: v for k, v in meta.items() if k != "sig"}
    assert "without a signature" in protocol.check_result(unsigned, data, key)


def test_items_json_when_exact_else_pickled():
    assert encode_item({"a": [1, 2.5, None, True]}) == {"a": [1, 2.5, None, True]}
    for item in [(1, 2), {1: "a"}, {"a"}, float("nan"), {PICKLED_KEY: "x"}, b"raw"]:
        encoded = encode_item(item)
        assert list(encoded) == [PICKLED_KEY]
        decoded = pickle.loads(base64.b64decode(encoded[PICKLED_KEY]))
        assert decoded == item or (item != item and decoded != decoded)
    shared = [1]
    assert not protocol.is_plain_json([shared, shared])
    cyclic: list = []
    cyclic.append(cyclic)
    assert not protocol.is_plain_json(cyclic)


def test_job_failed_pickles_and_names_item_and_host():
    exc = JobFailed(3, (1, 2), "h1", "ValueError: no", "Traceback ...", 2)
    again = pickle.loads(pickle.dumps(exc))
    assert str(again) == str(exc) == "job 3 (item (1, 2)) failed on host h1: ValueError: no"
    assert again.remote_traceback == "Traceback ..." and again.attempts == 2
