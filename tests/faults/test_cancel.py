"""Cancel: Ctrl-C (SIGINT) of ``sshmr run``, and ``sshmr cancel`` from another process."""

from __future__ import annotations

import queue
import signal
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from checks import (  # noqa: E402
    FAULT_JOB,
    assert_nothing_lost,
    attempts_of,
    cli_output,
    launch_count,
    payloads,
    result_of,
    start_cli,
    states,
    stop_process,
    the_run_dir,
    wait_for,
    write_inputs,
)
from helpers import sshmr_cli, write_inventory  # noqa: E402

from sshmr import JobState  # noqa: E402
from sshmr.engine import scheduler as s  # noqa: E402
from sshmr.engine.config import RunConfig  # noqa: E402
from sshmr.engine.master import Master  # noqa: E402
from sshmr.record.journal import Journal  # noqa: E402


@pytest.mark.parametrize("how", ["sigint", "sshmr_cancel"])
def test_cancel_kills_running_jobs_and_cleans_the_hosts(cluster, tmp_path, how):
    effects = tmp_path / "effects"
    effects.mkdir()
    runs = tmp_path / "runs"
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[0, 1], slots=2)
    inputs = write_inputs(tmp_path / "inputs.txt", payloads(effects, 8, sleep=60))
    cli = start_cli("run", "-i", str(inv), FAULT_JOB, str(inputs), "--max-retries", "0",
                    "--runs-dir", str(runs), cwd=tmp_path)
    try:
        wait_for(lambda: launch_count(effects) == 4, 30, "4 running jobs")
        asked = time.monotonic()
        if how == "sigint":
            cli.send_signal(signal.SIGINT)
        else:
            run_id = the_run_dir(runs).name
            cancel = sshmr_cli("cancel", run_id, "--runs-dir", str(runs), cwd=tmp_path)
            assert cancel.returncode == 0, cancel.stderr
            assert f"cancel requested for run {run_id}" in cancel.stdout
        code = cli.wait(30)
        took = time.monotonic() - asked
    finally:
        stop_process(cli)
    assert code == 130, cli_output(tmp_path)
    print(f"\n{how} -> CLI exited 130 after {took:.2f}s")
    assert took < 3.0

    result = result_of(the_run_dir(runs))
    by_job = assert_nothing_lost(result, 0, effects, cluster=cluster)  # remote dirs gone too
    assert result.state == "cancelled"
    assert states(result) == {JobState.CANCELLED: 8}
    assert launch_count(effects) == 4
    ran = [rows for rows in by_job.values() if rows]
    assert len(ran) == 4
    assert all([(a["state"], a["reason"]) for a in rows] == [("FAILED", "cancelled")]
               for rows in ran)
    assert len(attempts_of(result.run_dir)) == 4
    # a cancelled run cannot be cancelled again
    again = sshmr_cli("cancel", result.run_id, "--runs-dir", str(runs), cwd=tmp_path)
    assert again.returncode == 2 and "is not running" in again.stderr


class _QuietHost:
    """A host session that accepts everything and says nothing."""

    name = "h"
    alive = False
    generation = 0
    run_dir = "/nowhere"

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.shut_down = False

    def connect_async(self) -> None:
        pass

    def send(self, data: bytes) -> bool:
        self.sent.append(data)
        return True

    def consumed(self) -> None:  # the master took one of its messages off the queue
        pass

    def shutdown(self, cleanup: bool) -> None:
        self.shut_down = cleanup


def test_a_forced_interrupt_ends_the_attempts_in_flight(tmp_path):
    """A second Ctrl-C raises KeyboardInterrupt out of the master loop (the CLI then marks
    the jobs CANCELLED): the attempts it had in flight must not stay RUNNING."""
    journal = Journal(str(tmp_path), create=True)
    journal.add_jobs([(1, '"a"'), (2, '"b"'), (3, '"c"')])
    host = _QuietHost()
    sched = s.Scheduler(["h"], max_retries=0)
    master = Master(run_dir=str(tmp_path), journal=journal, sessions={"h": host},
                    scheduler=sched, config=RunConfig(max_retries=0),
                    events=queue.SimpleQueue())
    up = [s.JobsAdded((1, 2, 3)), s.HostUp("h", 2), s.SlotUp(("h", 0), float("inf")),
          s.SlotUp(("h", 1), float("inf"))]
    calls = []

    def drain():
        calls.append(1)
        if len(calls) == 1:  # the jobs start ...
            return [("msg", "h", 0, {"t": "ack", "a": 1}), ("msg", "h", 0, {"t": "ack", "a": 2})]
        raise KeyboardInterrupt  # ... and the user insists

    master._drain = drain
    with pytest.raises(KeyboardInterrupt):
        master.run(up)
    assert sum(m.count(b'"t":"run"') for m in host.sent) == 2 and host.shut_down
    rows = journal.attempts()
    assert [(r["id"], r["state"], r["reason"]) for r in rows] == [
        (1, "FAILED", "cancelled"), (2, "FAILED", "cancelled")]
    assert journal.open_attempts() == [] and master.inflight == {}
    journal.close()
