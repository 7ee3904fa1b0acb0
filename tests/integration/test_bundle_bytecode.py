"""A host whose Python writes no bytecode (PYTHONDONTWRITEBYTECODE, common in container
images) still compiles sshmr's bundle only once: the agent compiles the bundle, and only it,
the first time it starts there; later agents (and their forked workers) load the bytecode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from helpers import JOBS  # noqa: E402

from sshmr.engine.bundle import ENTRY, build_bundle, push_bundle  # noqa: E402
from sshmr.engine.target import code_of  # noqa: E402
from sshmr.transport.local import LocalTransport  # noqa: E402

sys.path.insert(0, str(JOBS))
from jobs_faults import Fault  # noqa: E402


def _start_agent(code_dir: str, run_dir: Path, env: dict) -> None:
    cfg = {"run_dir": str(run_dir), "target": build_bundle(code_of(Fault)).target_config(code_dir),
           "max_living": 60, "hb_interval": 0.2, "master_grace": 10, "kill_grace": 0.5}
    proc = subprocess.Popen([sys.executable, "-u", f"{code_dir}/{ENTRY}", json.dumps(cfg)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    try:
        assert json.loads(proc.stdout.readline())["t"] == "ready"
    finally:
        proc.stdin.close()  # the master is gone: the agent exits
        proc.wait(30)


def _bytecode(code_dir: str) -> dict[str, int]:
    found = {}
    for root, _, names in os.walk(code_dir):
        for name in names:
            if name.endswith(".pyc"):
                path = os.path.join(root, name)
                found[os.path.relpath(path, code_dir)] = os.stat(path).st_mtime_ns
    return found


def test_an_agent_compiles_its_bundle_once_where_python_writes_no_bytecode(tmp_path):
    code_dir = push_bundle(LocalTransport(), build_bundle(code_of(Fault)), str(tmp_path))
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    jobs_cache = JOBS / "__pycache__"
    before = sorted(jobs_cache.iterdir()) if jobs_cache.exists() else []

    _start_agent(code_dir, tmp_path / "run1", env)
    first = _bytecode(code_dir)
    tag = sys.implementation.cache_tag
    assert f"sshmr/remote/__pycache__/agent.{tag}.pyc" in first
    assert f"sshmr/remote/__pycache__/mrtask.{tag}.pyc" in first  # imported by workers only
    assert f"user/__pycache__/jobs_faults.{tag}.pyc" in first
    assert os.path.exists(f"{code_dir}/.compiled-{tag}")
    # only the bundle: the user's own source tree got no bytecode from the agent
    assert (sorted(jobs_cache.iterdir()) if jobs_cache.exists() else []) == before

    _start_agent(code_dir, tmp_path / "run2", env)
    assert _bytecode(code_dir) == first  # nothing compiled again
