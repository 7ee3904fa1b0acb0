"""``Worker``: the process that runs one slot's jobs, one at a time (stdlib only).

The host agent forks one Worker per slot in its own session (so a kill of its process
group takes every child with it). The worker imports the user's code, calls ``setup()``
once, then reads ``run`` messages from a pipe, runs ``execute(payload)`` in-process and
commits each result to the attempt directory before answering ``done``. A job that
raises is reported with its traceback and the worker carries on with the next job.
Its stdout/stderr go to the attempt's files, never to the control channel.
Given its host's ``result_key`` (function runs), a result JSON cannot carry exactly is
pickled (cloudpickle when the bundle has it) and signed with that key.
``max_living`` is enforced by the kernel too: ``SIGALRM`` ends the process even if
both the agent and the master are gone.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import signal
import sys
import time
import traceback
from typing import Any, Dict, Optional, Tuple

from . import protocol
from .resultfile import ResultFile
from .tasks import bind_runner

ALARM_MARGIN = 5.0


class Worker:
    """Runs jobs for one slot. ``max_living``: seconds before the process ends itself."""

    def __init__(
        self,
        executor: Any,  # a sshmr.JobExecutor
        max_living: Optional[float] = None,
        *,
        run_dir: str = ".",
        inline_limit: int = 65536,
        result_key: Optional[bytes] = None,
        slot: int = 0,
    ) -> None:
        bind_runner(executor)  # a MapReduce job's tasks run with the remote side's runner
        self.executor = executor
        self.max_living = max_living
        self.run_dir = run_dir
        # the host's workdir (run_dir is WORKDIR/runs/RUN_ID): named when its disk is full
        self.workdir = os.path.dirname(os.path.dirname(os.path.abspath(run_dir)))
        self.inline_limit = inline_limit
        self.result_key = result_key
        self.outputs = (protocol.output_path(run_dir, slot, "stdout"),
                        protocol.output_path(run_dir, slot, "stderr"))
        self._wrote = True  # the last job wrote to its stdout or stderr (or may have)
        self._saved: Optional[Tuple[int, int]] = None  # the worker's own stdout and stderr
        self._out_fds: Optional[Tuple[int, int]] = None  # the slot's output files, kept open

    # ---------------------------------------------------------------- serving

    def serve(self, rfd: int, wfd: int) -> None:
        """Answer ``run`` messages read from ``rfd`` until it closes."""
        if self.max_living:  # the agent retires us at max_living; this is the backstop
            signal.alarm(max(1, int(self.max_living + ALARM_MARGIN)))
        reader = os.fdopen(rfd, "rb", buffering=65536)
        try:
            self.executor.setup()
        except BaseException as exc:  # noqa: BLE001 - reported, then the worker ends
            self._send(wfd, {"t": "down", "error": _describe(exc), "tb": traceback.format_exc()})
            return
        self._send(wfd, {"t": "up"})
        for line in reader:
            msg = protocol.decode(line)
            if msg["t"] == "run":
                self._send(wfd, self.run_attempt(msg))

    def run_attempt(self, msg: Dict[str, Any]) -> Dict[str, Any]:
        """Run one attempt and commit its outcome to disk; return the ``done`` message."""
        attempt_id = msg["a"]
        adir = protocol.attempt_dir(self.run_dir, attempt_id)
        sync = bool(msg.get("sync"))
        started = time.monotonic()  # a duration: immune to wall-clock steps on the host
        meta: Dict[str, Any] = {"t": "done", "a": attempt_id, "status": "ok"}
        data = b""
        result_file = None  # execute() returned a ResultFile: its path
        self._wrote = False  # this attempt printed nothing yet (its job has not run)
        try:
            protocol.private_dir(adir)  # 0700; a planted symlink is refused
            if "j" in msg:  # a resumed master adopts an attempt whose dispatch it lost
                fd = os.open(os.path.join(adir, protocol.JOB_FILE), os.O_WRONLY | os.O_CREAT
                             | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
                try:
                    os.write(fd, ("%s %s" % (msg["j"], msg.get("js", ""))).encode())
                finally:
                    os.close(fd)
            payload = self._payload(msg, adir)
        except Exception as exc:  # noqa: BLE001
            meta.update(status="system", error="cannot read payload: " + _describe(exc))
            self._disk_full(exc, meta)
        else:
            result, meta = self._execute(payload, adir, meta)
            if meta["status"] == "ok" and isinstance(result, ResultFile):
                result_file, meta["kind"] = result.path, "bytes"
            elif meta["status"] == "ok":
                try:
                    data, meta["kind"] = _serialise(result, self.result_key)
                except Exception as exc:  # noqa: BLE001 - the job's failure, with the reason
                    meta.update(status="error", error=_unserialisable(exc, self.result_key))
                else:
                    if meta["kind"] == "pickle":
                        meta["sig"] = protocol.sign_result(self.result_key, attempt_id, data)
        meta["dur"] = round(time.monotonic() - started, 6)
        try:
            if meta["status"] == "ok" and result_file is not None:
                meta["sha"], meta["size"] = protocol.move_result_file(
                    result_file, os.path.join(adir, protocol.RESULT_FILE), sync)
                if meta["size"] <= self.inline_limit:
                    with open(os.path.join(adir, protocol.RESULT_FILE), "rb") as f:
                        data = f.read()
            elif meta["status"] == "ok":
                meta["sha"] = protocol.sha256(data)
                meta["size"] = len(data)
                if len(data) <= self.inline_limit:  # committed inside done.json, no file
                    _inline(meta, data)
                else:
                    protocol.write_atomic(os.path.join(adir, protocol.RESULT_FILE), data, sync)
            protocol.write_atomic(
                os.path.join(adir, protocol.DONE_FILE), json.dumps(meta).encode(), sync
            )
        except OSError as exc:
            meta = {"t": "done", "a": attempt_id, "status": "system",
                    "error": "cannot commit the result on the host: %s" % exc}
            self._disk_full(exc, meta)
        if meta["status"] == "ok" and meta["size"] <= self.inline_limit and not (
                "r" in meta or "rb" in meta):  # (a ResultFile's small result: also inline)
            _inline(meta, data)
        if self._wrote:  # (most jobs print nothing: no need to open both files again)
            meta["out"] = protocol.read_tail(self.outputs[0])
            meta["err"] = protocol.read_tail(self.outputs[1])
        else:
            meta["out"] = meta["err"] = ""
        return meta

    # -------------------------------------------------------------- internals

    def _payload(self, msg: Dict[str, Any], adir: str) -> Any:
        if "p" in msg:
            payload = msg["p"]
        else:
            with open(os.path.join(adir, protocol.PAYLOAD_FILE), "rb") as f:
                payload = json.loads(f.read())
        if isinstance(payload, dict) and protocol.FILE_MARK in payload:
            path = os.path.join(adir, payload.pop(protocol.FILE_MARK))
            return dict(payload, file=path) if payload else path  # extra keys: MapReduce
        return payload

    def _disk_full(self, exc: BaseException, meta: Dict[str, Any]) -> None:
        """The host's disk is full: say so, with the free space (a fault of the host)."""
        if protocol.is_disk_full(exc):
            meta.update(status="system", nospace=True, error=protocol.no_space(self.workdir))

    def _output_fds(self) -> Tuple[int, int]:
        """The slot's stdout and stderr files, opened once per worker (O_APPEND: a job's
        writes go to the end, which truncating them for the next attempt moves to 0)."""
        if self._out_fds is None:
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
            out = protocol.open_private(self.outputs[0], flags)
            try:
                err = protocol.open_private(self.outputs[1], flags)
            except OSError:
                os.close(out)
                raise
            self._out_fds = (out, err)
        return self._out_fds

    def _execute(self, payload: Any, adir: str, meta: Dict[str, Any]):
        self._wrote = True
        try:
            out, err = self._output_fds()
            os.ftruncate(out, 0)  # this attempt's output only
            os.ftruncate(err, 0)
        except OSError as exc:
            self._wrote = False  # the files may still hold the last attempt's output
            meta.update(status="system", error="cannot create the job's output files: %s" % exc)
            self._disk_full(exc, meta)
            return None, meta
        _flush_std()  # what is buffered is not this job's output
        if self._saved is None:  # kept for the worker's life: two syscalls fewer per job
            self._saved = os.dup(1), os.dup(2)
        saved = self._saved
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.environ[protocol.ATTEMPT_ENV] = adir
        result = None
        try:
            result = self.executor.execute(payload)
        except BaseException as exc:  # noqa: BLE001 - any exception is the job's failure
            if isinstance(exc, SystemExit) and exc.code in (None, 0):
                exc = RuntimeError("execute() called sys.exit(%r)" % (exc.code,))
            meta.update(status="error", error=_describe(exc), tb=traceback.format_exc())
            self._disk_full(exc, meta)  # the job ran out of disk: the host's fault
        finally:
            _flush_std()  # the job's output, into its files
            try:  # by the job or any child of it that still holds them: read_tail sees it
                self._wrote = bool(os.fstat(out).st_size or os.fstat(err).st_size)
            except OSError:
                self._wrote = True
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
        return result, meta

    @staticmethod
    def _send(wfd: int, msg: Dict[str, Any]) -> None:
        data = memoryview(protocol.encode(msg))
        while data:
            data = data[os.write(wfd, data):]


def _inline(meta: Dict[str, Any], data: bytes) -> None:
    """Carry a small result in the ``done`` message (and in ``done.json``)."""
    if meta["kind"] == "json":
        meta["r"] = data.decode()
    else:
        meta["rb"] = base64.b64encode(data).decode()


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def _serialise(result: Any, key: Optional[bytes] = None):
    if isinstance(result, (bytes, bytearray, memoryview)):
        return bytes(result), "bytes"
    if key is not None and not protocol.is_plain_json(result):
        try:
            import cloudpickle  # shipped in the bundle of function runs
        except ImportError:
            return pickle.dumps(result), "pickle"
        return cloudpickle.dumps(result), "pickle"
    return json.dumps(result, allow_nan=False).encode(), "json"


def _unserialisable(exc: Exception, key: Optional[bytes]) -> str:
    if key is not None:
        return "the result cannot be pickled (%s); return picklable values" % _describe(exc)
    return ("the result of execute() is not JSON-serialisable (%s); return dicts, lists, str,"
            " numbers, None or bytes" % exc)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return "%s: %s" % (type(exc).__name__, text[0]) if text else type(exc).__name__
