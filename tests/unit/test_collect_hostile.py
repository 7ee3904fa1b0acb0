"""What resume and the late-result lookup read from a host, when the host lies: an attempt
it claims for a job it was not sent is not adopted; a result signed with another host's
key is corrupt; a commit marker that is not one, or a result larger than it says, is
refused. The host is this machine (``LocalTransport``, a real transport)."""

from __future__ import annotations

import hashlib
import json
import pickle
import sys

from sshmr.engine.collect import collect_open_attempts, read_attempt
from sshmr.engine.wire import host_key, job_mark
from sshmr.record.journal import Journal
from sshmr.remote import protocol
from sshmr.transport.local import LocalTransport

RUN = "20261204-000000-aa0000"
KEY = bytes(range(16))


def _master(tmp_path, jobs: int = 3) -> Journal:
    (tmp_path / "master").mkdir()
    journal = Journal(str(tmp_path / "master"), create=True)
    journal.add_jobs([(i, json.dumps(i)) for i in range(1, jobs + 1)])
    journal.set_meta(dispatch_key=KEY.hex())
    journal.flush()
    return journal


def _attempt(tmp_path, attempt: int, job_file: str | None, result: bytes = b"42") -> None:
    adir = tmp_path / "host" / "runs" / RUN / "a" / str(attempt)
    adir.mkdir(parents=True)
    (tmp_path / "host" / "runs" / RUN / protocol.AGENT_LOCK).write_bytes(b"")
    if job_file is not None:
        (adir / protocol.JOB_FILE).write_text(job_file)
    (adir / protocol.RESULT_FILE).write_bytes(result)
    (adir / protocol.DONE_FILE).write_text(json.dumps({
        "t": "done", "a": attempt, "status": "ok", "kind": "json",
        "sha": hashlib.sha256(result).hexdigest(), "size": len(result)}))


def _hosts(tmp_path) -> list:
    return [(LocalTransport("h0"), sys.executable, str(tmp_path / "host"), None)]


def _committed(journal: Journal) -> dict[int, str]:
    return dict(journal.db.execute("SELECT id, result FROM jobs WHERE state = 'SUCCEEDED'"))


def test_an_attempt_signed_for_its_job_is_adopted(tmp_path):
    journal = _master(tmp_path)
    _attempt(tmp_path, 40, f"2 {job_mark(KEY, 40, 2)}")
    collect_open_attempts(journal, _hosts(tmp_path), RUN, 3, 1 << 30)
    assert _committed(journal) == {2: "42"}


def test_a_host_cannot_claim_a_job_it_was_not_sent(tmp_path):
    journal = _master(tmp_path)
    _attempt(tmp_path, 40, "2")  # no mark (a job file of another version, or a forgery)
    _attempt(tmp_path, 41, f"3 {job_mark(KEY, 41, 2)}")  # the mark of another job
    _attempt(tmp_path, 42, f"1 {job_mark(b'another run', 42, 1)}")  # another run's key
    _attempt(tmp_path, 43, f"1 {'0' * 32}")
    collect_open_attempts(journal, _hosts(tmp_path), RUN, 3, 1 << 30)
    assert _committed(journal) == {}
    assert journal.db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0] == 0


def _pickled(tmp_path, attempt: int, signer: bytes) -> str:
    data = pickle.dumps((1, 2))
    adir = tmp_path / "a" / str(attempt)
    adir.mkdir(parents=True)
    (adir / protocol.RESULT_FILE).write_bytes(data)
    (adir / protocol.DONE_FILE).write_text(json.dumps({
        "a": attempt, "status": "ok", "kind": "pickle", "size": len(data),
        "sha": hashlib.sha256(data).hexdigest(),
        "sig": protocol.sign_result(signer, attempt, data)}))
    return str(adir)


def test_a_result_signed_with_another_hosts_key_is_corrupt(tmp_path):
    run_key = bytes(32)
    adir = _pickled(tmp_path, 5, host_key(run_key, "hostA"))  # host A planted it
    kind, meta, _ = read_attempt(LocalTransport("hostB"), adir, 1 << 30, run_key)
    assert kind == "corrupt" and "signature does not match" in meta["error"]
    assert read_attempt(LocalTransport("hostA"), adir, 1 << 30, run_key)[0] == "ok"


def test_a_marker_that_is_no_marker_or_a_result_larger_than_said_is_refused(tmp_path):
    adir = tmp_path / "a" / "6"
    adir.mkdir(parents=True)
    (adir / protocol.DONE_FILE).write_text(json.dumps({"a": 6, "status": "ok", "kind": "json",
                                                       "sha": "x", "size": {}}))
    kind, meta, _ = read_attempt(LocalTransport("h"), str(adir), 1 << 30)
    assert kind == "corrupt" and "unreadable commit marker" in meta["error"]
    (adir / protocol.RESULT_FILE).write_bytes(b"1" * 5000)
    (adir / protocol.DONE_FILE).write_text(json.dumps({
        "a": 6, "status": "ok", "kind": "json", "sha": "0" * 64, "size": 10}))
    kind, meta, _ = read_attempt(LocalTransport("h"), str(adir), 1 << 30)
    assert kind == "corrupt" and "more than the 10 bytes" in meta["error"]
    (adir / protocol.DONE_FILE).write_text(json.dumps({
        "a": 6, "status": "ok", "kind": "json", "sha": "0" * 64, "size": 5000}))
    kind, meta, _ = read_attempt(LocalTransport("h"), str(adir), 1000)
    assert kind == "corrupt" and "over max_result_size" in meta["error"]


def test_a_small_result_inside_the_commit_marker_is_read_and_checked(tmp_path):
    """A result of at most the inline limit is committed in done.json (``r``/``rb``), with
    no result file: read from there, and refused when it does not match its checksum."""
    adir = tmp_path / "a"
    adir.mkdir()
    transport = LocalTransport("h0")

    def marker(**fields) -> None:
        (adir / protocol.DONE_FILE).write_text(json.dumps(dict({
            "t": "done", "a": 7, "status": "ok", "kind": "json",
            "sha": hashlib.sha256(b"[1, 2]").hexdigest(), "size": 6}, **fields)))

    marker(r="[1, 2]")
    assert read_attempt(transport, str(adir), 1 << 20)[::2] == ("ok", b"[1, 2]")
    marker(r="[1, 3]")  # altered
    kind, meta, _ = read_attempt(transport, str(adir), 1 << 20)
    assert kind == "corrupt" and "checksum" in meta["error"]
    marker(kind="bytes", rb="not base64!")
    kind, meta, _ = read_attempt(transport, str(adir), 1 << 20)
    assert kind == "corrupt" and "undecodable inline result" in meta["error"]
    marker()  # no inline result and no result file
    kind, meta, _ = read_attempt(transport, str(adir), 1 << 20)
    assert kind == "corrupt" and "result missing" in meta["error"]
