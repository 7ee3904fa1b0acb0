"""Commands to a running master through its run directory: ``RUN_DIR/commands/`` (0700).

``sshmr hosts drain|undrain|add`` writes one small JSON file there atomically (a temp file,
then a rename: the master never reads half a command). The master looks at the directory at
its tick, carries each command out, journals it, writes the answer (``ID.answer``, also
atomically) and removes the command; the CLI waits for the answer, prints it and removes
it. A command the master never answers (it died) stays; a resumed master carries it out.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable
from typing import Any

from ..remote.protocol import write_atomic

DIR = "commands"
SUFFIX = ".json"
ANSWER = ".answer"


def _dir(run_dir: str) -> str:
    return os.path.join(run_dir, DIR)


def send(run_dir: str, op: str, **args: Any) -> str:
    """Queue command ``op`` for the run's master; its id."""
    path = _dir(run_dir)
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    cid = f"{time.time_ns():020d}-{secrets.token_hex(4)}"
    write_atomic(os.path.join(path, cid + SUFFIX), json.dumps({"op": op, **args}).encode(),
                 sync=False)
    return cid


def pending(run_dir: str) -> list[tuple[str, dict[str, Any] | None]]:
    """The queued commands, oldest first: (id, command, or None if unreadable)."""
    try:
        names = sorted(n for n in os.listdir(_dir(run_dir)) if n.endswith(SUFFIX))
    except OSError:
        return []
    out: list[tuple[str, dict[str, Any] | None]] = []
    for name in names:
        try:
            with open(os.path.join(_dir(run_dir), name), "rb") as f:
                doc = json.loads(f.read(65536))
        except (OSError, ValueError):
            doc = None
        out.append((name[:-len(SUFFIX)], doc if isinstance(doc, dict) else None))
    return out


def answer(run_dir: str, cid: str, ok: bool, message: str) -> None:
    """The master's answer to command ``cid``; the command is done."""
    write_atomic(os.path.join(_dir(run_dir), cid + ANSWER),
                 json.dumps({"ok": ok, "message": message}).encode(), sync=False)
    try:
        os.unlink(os.path.join(_dir(run_dir), cid + SUFFIX))
    except OSError:
        pass


def wait_answer(run_dir: str, cid: str, timeout: float,
                alive: Callable[[], bool] = lambda: True) -> dict[str, Any] | None:
    """The answer to ``cid`` (and it is removed), or None after ``timeout`` seconds or
    once ``alive()`` says the master is gone."""
    path = os.path.join(_dir(run_dir), cid + ANSWER)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(path, "rb") as f:
                doc = json.loads(f.read())
        except (OSError, ValueError):
            if time.monotonic() > deadline or not alive():
                return None
            time.sleep(0.05)
            continue
        os.unlink(path)
        return doc
