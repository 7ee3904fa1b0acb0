"""Issue 20: the journal's held-back per-job writes, the host side's cheaper file handling,
the handshake gate and the master's one-item-per-read batches. Pure logic, no SSH."""

from __future__ import annotations

import os
import queue
import threading
from collections import deque

from sshmr.engine.handshakes import MAX_HANDSHAKES, handshake_gate
from sshmr.engine.hostsession import HostSession
from sshmr.inventory import Host
from sshmr.jobs import AttemptState
from sshmr.record.journal import Journal
from sshmr.remote import protocol


def _journal(tmp_path) -> Journal:
    j = Journal(str(tmp_path), create=True)
    j.add_jobs([(1, '"a"'), (2, '"b"'), (3, '"c"')])
    j.flush()
    return j


def _row(j: Journal, attempt: int) -> tuple:
    return j.db.execute("SELECT state, reason, started IS NOT NULL, ended IS NOT NULL, error"
                        " FROM attempts WHERE id = ?", (attempt,)).fetchone()


def test_a_job_life_in_one_transaction_is_written_whole(tmp_path):
    j = _journal(tmp_path)
    j.dispatch(1, 1, 1, "h", 0)
    j.started(1)
    j.end_attempt(1, AttemptState.SUCCEEDED, None, {"dur": 0.1, "out": ""})
    j.commit_result(1, 1, "json", b'"A"')
    j.flush()
    reader = Journal(str(tmp_path), readonly=True)  # what another process sees
    assert reader.db.execute("SELECT state, started IS NOT NULL, ended IS NOT NULL, duration"
                             " FROM attempts WHERE id = 1").fetchone() == (
        "SUCCEEDED", 1, 1, 0.1)
    assert reader.db.execute("SELECT state, launches, result, result_attempt FROM jobs"
                             " WHERE id = 1").fetchone() == ("SUCCEEDED", 1, '"A"', 1)
    reader.close()
    j.close()


def test_held_back_writes_come_before_reads_and_other_writes(tmp_path):
    j = _journal(tmp_path)
    j.dispatch(1, 1, 1, "h", 0)
    j.dispatch(2, 2, 1, "h", 1)
    assert [r["id"] for r in j.open_attempts()] == [1, 2]  # a read settles them
    j.started(2)
    assert _row(j, 2) == ("RUNNING", None, 1, 0, None)
    # a started attempt that ends in the same transaction keeps its start time
    j.dispatch(3, 3, 1, "h", 2)
    j.started(3)
    j.end_attempt(3, AttemptState.FAILED, "error", {"error": "boom"})
    j.requeue(3)  # an ordinary write: after the held-back ones
    assert _row(j, 3) == ("FAILED", "error", 1, 1, "boom")
    assert j.db.execute("SELECT state, launches FROM jobs WHERE id = 3").fetchone() == (
        "PENDING", 1)
    # a dispatch taken back (never started) after its insert was held back
    j.dispatch(4, 1, 2, "h", 0)
    j.undispatch(4, requeued=False)
    assert j.db.execute("SELECT COUNT(*) FROM attempts WHERE id = 4").fetchone()[0] == 0
    assert j.max_attempt_id() == 4
    # an attempt never acknowledged ends without a start time
    j.end_attempt(1, AttemptState.FAILED, "host_lost", {})
    assert _row(j, 1) == ("FAILED", "host_lost", 0, 1, None)
    j.close()


def test_an_abandoned_journal_writes_nothing_held_back(tmp_path):
    j = _journal(tmp_path)
    j.dispatch(1, 1, 1, "h", 0)
    j.abandon()
    j.close()
    reader = Journal(str(tmp_path), readonly=True)
    assert reader.attempt_count() == 0
    reader.close()


def test_open_private_replaces_a_planted_link_without_following_it(tmp_path):
    target = tmp_path / "outside"
    target.write_text("keep")
    link = tmp_path / "stdout"
    link.symlink_to(target)
    fd = protocol.open_private(str(link))
    os.write(fd, b"job output")
    os.close(fd)
    assert target.read_text() == "keep" and not link.is_symlink()
    assert link.read_bytes() == b"job output"


def test_remove_dir_unlinks_files_and_links_never_their_targets(tmp_path):
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "precious").write_text("x")
    adir = tmp_path / "a" / "7"
    adir.mkdir(parents=True)
    for name in ("job", "stdout", "stderr", "result", "done.json"):
        (adir / name).write_text(name)
    (adir / "link").symlink_to(keep)
    protocol.remove_dir(str(adir))
    assert not adir.exists() and (keep / "precious").read_text() == "x"
    nested = tmp_path / "a" / "8"
    (nested / "sub" / "deeper").mkdir(parents=True)  # not an attempt's layout: rmtree
    (nested / "sub" / "deeper" / "f").write_text("f")
    protocol.remove_dir(str(nested))
    assert not nested.exists()
    protocol.remove_dir(str(tmp_path / "a" / "9"))  # gone already: quiet


def test_at_most_max_handshakes_at_once_to_one_sshd():
    class T:
        def __init__(self, hostname: str, port: int) -> None:
            self.host = Host(name=f"{hostname}:{port}", hostname=hostname, port=port,
                             user="u", identity_files=(), slots=None, python="python3",
                             workdir="~/w", proxy_jump=None, connect_timeout=5.0)

    gate = handshake_gate(T("10.9.8.7", 2222))
    assert gate is handshake_gate(T("10.9.8.7", 2222))  # two inventory names, one sshd
    assert gate is not handshake_gate(T("10.9.8.7", 2223))
    assert handshake_gate(object()) is None  # not SSH: no gate
    taken = 0
    while gate.acquire(blocking=False):
        taken += 1
    assert taken == MAX_HANDSHAKES
    for _ in range(taken):
        gate.release()


class _Agent:
    """An agent stream whose reads return prepared chunks, then EOF."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.leftover = b""

    def recv(self) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""

    def stderr(self) -> str:
        return ""


def _session(chunks: list[bytes]) -> tuple[HostSession, queue.SimpleQueue]:
    events: queue.SimpleQueue = queue.SimpleQueue()
    session = HostSession.__new__(HostSession)
    session.name, session.events, session.generation = "h", events, 1
    session.agent = _Agent(chunks)  # type: ignore[assignment]
    session._closing = False
    session._eof = threading.Event()
    session._room = threading.Condition()
    session._queued = 0
    session._queued_sizes = deque()
    return session, events


def test_one_queue_item_per_read_and_a_violation_after_what_came_first():
    acks = b"".join(protocol.encode({"t": "ack", "a": i}) for i in (1, 2, 3))
    session, events = _session([acks + b'{"t":"ack"', b',"a":4}\n{"t":"ack","a":"x"}\n'
                                + protocol.encode({"t": "ack", "a": 5})])
    session._read(1)
    items = []
    while not events.empty():
        items.append(events.get())
    assert [(kind, [m["a"] for m in data] if kind == "msgs" else None)
            for kind, _, _, data in items[:2]] == [("msgs", [1, 2, 3]), ("msgs", [4])]
    assert items[2][0] == "violation" and len(items) == 3  # ack 5 was never posted
    for _ in range(2):
        session.consumed()
    assert session._queued == 0
