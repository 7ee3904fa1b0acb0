"""``sshmr replay [RUN] JOB``: run one job of a run again on this machine, in this process.

The same payload (the journal's), the run's code snapshot (``RUN_DIR/code``), the same
executor with the state it was shipped with, its ``setup()``, the same task runner for a
MapReduce task: what a worker on the host did (``remote.worker``), minus the host. A file
payload (an input split) is copied from the master's input file when it is still there (a
MapReduce split is cut again from its input), else fetched from the attempt's host while
its run directory still holds it; a MapReduce
task runs in a scratch directory of its own, so nothing is written beside the input.

``portable_traceback`` is a traceback without the frame of whoever called ``execute`` (the
worker on the host, this module here) and with the code snapshot's location cut from file
names: a host's recorded traceback and a replay's then read the same.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import traceback
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from ..errors import JobNotFound, RunError
from ..record.journal import Journal
from ..record.results import INPUT_FILE_KEY
from ..remote import protocol
from ..remote.tasks import bind_runner
from ..remote.workers import load_executor

_CODE_PATH = re.compile(r'File "(?:[^"]*/code/[0-9a-f]{32}/user/|[^"]*/code/)([^"]*)"')
_CALLER = re.compile(r'  File "[^"]*/sshmr/(?:remote/worker|engine/replay)\.py", line \d+, in '
                     r'\w+\n(?:    .*\n)+?(?=  File |\w)')


_SPLIT = re.compile(r"(.*) bytes (\d+)-(\d+)")


@dataclass
class Replayed:
    ok: bool
    result: Any = None
    text: str = ""  # the result as the worker serialised it (JSON text), or the traceback
    kind: str = ""  # json, bytes, pickle, file (a MapReduce task's output)
    traceback: TracebackType | None = None
    recorded: dict[str, Any] | None = None  # the attempt replayed (journal row)


def portable_traceback(text: str) -> str:
    return _CODE_PATH.sub(r'File "\1"', _CALLER.sub("", text, count=1))


def replay(run_dir: str, job: int, attempt: int | None = None,
           scratch: str | None = None) -> Replayed:
    """Run job ``job`` of the run in ``run_dir`` (its attempt number ``attempt``'s payload
    file, when it had one on a host); the job's own output goes to stderr."""
    journal = Journal(run_dir, readonly=True)
    try:
        meta = journal.meta()
        row = journal.db.execute("SELECT payload FROM jobs WHERE id = ?", (job,)).fetchone()
        if row is None:
            raise JobNotFound(f"run {os.path.basename(run_dir)} has no job {job}; 'sshmr"
                              " results' lists its jobs")
        attempts = [dict(a) for a in journal.attempts(job)]
        hosts = {h["name"]: dict(h) for h in journal.hosts()}
    finally:
        journal.close()
    chosen = attempts[-1] if attempts else None
    if attempt is not None:
        chosen = next((a for a in attempts if a["number"] == attempt), None)
        if chosen is None:
            raise RunError(f"job {job} has no attempt {attempt} (it has {len(attempts)})")
    if "code_module" not in meta:
        raise RunError(f"run {os.path.basename(run_dir)} has no code snapshot to replay")
    scratch = scratch or tempfile.mkdtemp(prefix="sshmr-replay-")
    payload = _payload(json.loads(row[0]), run_dir, meta, chosen, hosts, scratch)
    executor = load_executor({"path": os.path.join(run_dir, "code"),
                              "module": meta["code_module"], "class": meta["code_class"],
                              "state": meta.get("code_state")})
    bind_runner(executor)
    with contextlib.redirect_stdout(sys.stderr):
        try:
            executor.setup()
            result = executor.execute(payload)
        except BaseException as exc:  # noqa: BLE001 - the job's failure, shown as on a host
            if isinstance(exc, KeyboardInterrupt):
                raise
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            return Replayed(False, text=portable_traceback(text), traceback=exc.__traceback__,
                            recorded=chosen)
    return _success(result, chosen)


def _success(result: Any, chosen: dict[str, Any] | None) -> Replayed:
    path = getattr(result, "path", None)
    if type(result).__name__ == "ResultFile" and isinstance(path, str):
        return Replayed(True, result, f"{path} ({os.path.getsize(path)} bytes)", "file",
                        recorded=chosen)
    if isinstance(result, (bytes, bytearray, memoryview)):
        return Replayed(True, bytes(result), "", "bytes", recorded=chosen)
    if protocol.is_plain_json(result):
        return Replayed(True, result, json.dumps(result, allow_nan=False), "json",
                        recorded=chosen)
    return Replayed(True, result, repr(result), "pickle", recorded=chosen)


def _payload(value: Any, run_dir: str, meta: dict[str, Any], chosen: dict[str, Any] | None,
             hosts: dict[str, dict[str, Any]], scratch: str) -> Any:
    """The payload as the worker saw it: an input file copied into ``scratch`` first."""
    if not (isinstance(value, dict) and INPUT_FILE_KEY in value):
        return value
    doc = dict(value)
    local = doc.pop(INPUT_FILE_KEY)
    name = os.path.basename(local)
    dest = os.path.join(scratch, name)
    if os.path.isfile(local):
        shutil.copyfile(local, dest)
    elif not _cut_again(doc.get("mr"), dest):
        _fetch(name, dest, meta, chosen, hosts, local)
    return dict(doc, file=dest) if doc else dest


def _cut_again(mr: Any, dest: str) -> bool:
    """A MapReduce split cut from a large input (``PATH bytes A-B``, see
    ``mapreduce.splits``) whose chunk the run removed: cut it again from its input."""
    m = _SPLIT.fullmatch(str((mr or {}).get("source", "")))
    if m is None or not os.path.isfile(m.group(1)):
        return False
    start, end = int(m.group(2)), int(m.group(3))
    with open(m.group(1), "rb") as f, open(dest, "wb") as out:
        f.seek(start)
        out.write(f.read(end - start))
    return True


def _fetch(name: str, dest: str, meta: dict[str, Any], chosen: dict[str, Any] | None,
           hosts: dict[str, dict[str, Any]], local: str) -> None:
    """The input file from the attempt's directory on its host, if it is still there."""
    from ..inventory import load_inventory
    from .config import RunConfig
    from .hostspec import entry, fleet_entries

    gone = RunError(f"the job's input file {local} is gone, and no host holds a copy; put it"
                    " back to replay the job")
    if chosen is None or not hosts.get(chosen["host"], {}).get("workdir"):
        raise gone
    config = RunConfig()
    inv = load_inventory(meta["inventory"]) if meta.get("inventory") else None
    entries = [entry(h, inv.known_hosts, config) for h in inv.hosts] if inv else []
    entries += fleet_entries(meta, config, {e[0].name for e in entries})
    found = [e for e in entries if e[0].name == chosen["host"]]
    if not found:
        raise gone
    t = found[0][0]
    remote_dir = f"{hosts[chosen['host']]['workdir']}/runs/{meta['run_id']}"
    try:
        t.connect()
        t.get_file(f"{protocol.attempt_dir(remote_dir, chosen['id'])}/{name}", dest)
    except Exception:  # noqa: BLE001 - any failure: the copy is not there
        raise gone from None
    finally:
        t.close()
