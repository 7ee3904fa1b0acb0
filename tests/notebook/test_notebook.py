"""``examples/notebook.ipynb`` executed by nbclient in a real kernel, locally and against the
sshd test cluster: a closure over 1,000 items, objects both ways, a job that raises, an
interrupt (the kernel's SIGINT, as the stop button sends it) in the middle of a run followed
by a successful call, and nothing left behind (threads in the kernel, processes anywhere).
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import time
from pathlib import Path

import nbclient
import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers import REPO, write_inventory  # noqa: E402

NOTEBOOK = REPO / "examples" / "notebook.ipynb"
KERNEL = "sshmr-test"


@pytest.fixture
def kernel_env(tmp_path, monkeypatch):
    """A kernelspec for this interpreter (JUPYTER_PATH), sshmr importable from the checkout."""
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "sshmr test", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    monkeypatch.delenv("SSHMR_INVENTORY", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    return work


def _succeeded_in_latest_run(runs: Path, after: set[str]) -> int:
    new = sorted(set(os.listdir(runs)) - after) if runs.is_dir() else []
    if not new:
        return 0
    try:
        db = sqlite3.connect(f"file:{runs / new[-1] / 'journal.sqlite'}?mode=ro", uri=True)
        try:
            return db.execute("SELECT COUNT(*) FROM jobs WHERE state = 'SUCCEEDED'").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def execute_notebook(work: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    runs = work / "sshmr-runs"
    client = nbclient.NotebookClient(nb, kernel_name=KERNEL, timeout=300,
                                     resources={"metadata": {"path": str(work)}})
    interrupted: list[int] = []

    async def interrupt_mid_run(before: set[str]) -> None:
        """Interrupt the kernel once its run has committed some results (not all)."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = _succeeded_in_latest_run(runs, before)
            if done:
                interrupted.append(done)
                await client.km.interrupt_kernel()
                return
            await asyncio.sleep(0.05)

    tasks = []

    def on_cell_execute(cell, cell_index):
        if "interrupt" in cell.metadata.get("tags", []):
            # The runs that exist now, before the cell is sent: taken in the task instead, a
            # loaded machine may let the cell's own run start first, and the task would then
            # wait for the next cell's run and interrupt that one.
            before = set(os.listdir(runs)) if runs.is_dir() else set()
            tasks.append(asyncio.ensure_future(interrupt_mid_run(before)))

    client.on_cell_execute = on_cell_execute
    client.execute()
    assert interrupted, "the interrupt cell never got a result to interrupt"
    return nb


def _cell(nb: nbformat.NotebookNode, tag: str):
    return next(c for c in nb.cells if tag in c.metadata.get("tags", []))


def _error(cell) -> dict:
    errors = [o for o in cell.outputs if o.output_type == "error"]
    assert len(errors) == 1, cell.outputs
    return errors[0]


def check_outputs(nb: nbformat.NotebookNode, host_names: set[str]) -> None:
    raised = _error(_cell(nb, "raises"))
    assert raised.ename == "JobFailed"
    assert "job 14 (item 13) failed on host" in raised.evalue
    assert "ValueError: unlucky 13" in raised.evalue
    assert any(h in raised.evalue for h in host_names), raised.evalue
    assert "unlucky 13" in "\n".join(raised.traceback)  # the remote traceback is attached
    assert "RemoteTraceback" in "\n".join(raised.traceback)
    cancelled = _error(_cell(nb, "interrupt"))
    assert cancelled.ename == "Cancelled", cancelled
    assert "jobs had succeeded" in cancelled.evalue
    done = int(cancelled.evalue.split(": ")[1].split(" of ")[0])
    assert 0 < done < 200, cancelled.evalue  # interrupted mid-run
    after = "".join(o.get("text", "") for o in _cell(nb, "after-interrupt").outputs)
    assert " cancelled: " in after
    for tag in ("map", "objects", "returned", "after-interrupt", "clean"):
        assert not [o for o in _cell(nb, tag).outputs if o.output_type == "error"], tag


def _processes_mentioning(text: str) -> list[tuple[int, str]]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmd:
            found.append((int(pid), cmd))
    return found


def test_notebook_local(kernel_env):
    nb = execute_notebook(kernel_env)
    check_outputs(nb, {"local"})
    assert not _processes_mentioning(str(kernel_env)), "an agent or worker outlived the run"


def test_notebook_on_sshd_cluster(kernel_env, cluster, monkeypatch):
    inventory = write_inventory(cluster, kernel_env / "inventory.yaml", slots=4)
    monkeypatch.setenv("SSHMR_INVENTORY", str(inventory))
    nb = execute_notebook(kernel_env)
    check_outputs(nb, {h.address for h in cluster.hosts})
    # the cluster fixture fails the test if any process is left on any host
