"""The code bundle: sshmr's remote runtime plus the user's code, content-addressed.

A host receives it once per version into ``WORKDIR/code/<sha256>/`` (0700): uploaded to
a temp directory, marked complete, then renamed into place, so a half-pushed bundle is
never used and two masters pushing at once do not collide.
"""

from __future__ import annotations

import base64
import hashlib
import json
import pickle
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..transport.base import Transport
from .target import Code

# What a host runs (standard library only; ARCHITECTURE.md: the remote and job API layers).
RUNTIME = (
    "__init__.py", "errors.py", "executor.py", "partition.py", "jobs.py", "function.py",
    "mapreduce/__init__.py", "mapreduce/job.py", "mapreduce/mrjob_task.py",
    "remote/__init__.py", "remote/protocol.py", "remote/agent.py", "remote/workers.py",
    "remote/worker.py", "remote/procs.py", "remote/resultfile.py", "remote/tasks.py",
    "remote/mrtask.py", "remote/sortmerge.py", "remote/mrfiles.py",
)
ENTRY = "sshmr_agent.py"
ENTRY_SOURCE = b'''"""sshmr host agent entry point (generated)."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def compile_once():
    """Where Python will not write bytecode (PYTHONDONTWRITEBYTECODE), compile this bundle,
    and only it, once: every later agent and worker loads it instead of compiling again."""
    tag = sys.implementation.cache_tag
    marker = os.path.join(HERE, ".compiled-%s" % tag)
    if tag is None or os.path.exists(marker):
        return
    import py_compile
    for top in ("sshmr", "user"):
        for root, _, names in os.walk(os.path.join(HERE, top)):
            for name in names:
                if name.endswith(".py"):
                    try:
                        py_compile.compile(os.path.join(root, name), doraise=True)
                    except Exception:  # a syntax error is reported by the import, as ever
                        pass
    try:
        open(marker, "x").close()
    except OSError:
        pass


if sys.dont_write_bytecode:
    compile_once()
from sshmr.remote.agent import main  # noqa: E402

sys.exit(main())
'''
COMPLETE = ".complete"


@dataclass(frozen=True)
class Bundle:
    files: dict[str, bytes]
    digest: str
    module: str
    cls_name: str
    state: str | None  # base64 pickle of the executor's __dict__, when given an instance

    def target_config(self, code_dir: str) -> dict:
        return {"path": f"{code_dir}/user", "module": self.module, "class": self.cls_name,
                "state": self.state}


def build_bundle(code: Code, instance: object | None = None, state: str | None = None) -> Bundle:
    """The runtime plus ``code``; ``instance`` state (or ``state``, when resuming) rides along."""
    package = Path(__file__).parent.parent  # sshmr/
    files = {f"sshmr/{name}": (package / name).read_bytes() for name in RUNTIME}
    files[ENTRY] = ENTRY_SOURCE
    files.update({f"user/{name}": data for name, data in code.files.items()})
    if instance is not None and vars(instance):
        state = base64.b64encode(pickle.dumps(vars(instance), protocol=4)).decode()
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    digest.update(json.dumps([code.module, code.cls_name, state]).encode())
    return Bundle(files, digest.hexdigest()[:32], code.module, code.cls_name, state)


def push_bundle(transport: Transport, bundle: Bundle, workdir: str) -> str:
    """Make sure ``workdir/code/<digest>`` holds the bundle; return that path."""
    transport.mkdir_private(f"{workdir}/code")  # never a symbolic link planted there
    dest = f"{workdir}/code/{bundle.digest}"
    if transport.exists(f"{dest}/{COMPLETE}"):
        return dest
    tmp = f"{dest}.tmp-{uuid.uuid4().hex[:8]}"
    dirs = sorted({str(Path(tmp, name).parent) for name in bundle.files})
    for d in dirs:
        transport.makedirs(d)
    for name, data in bundle.files.items():
        transport.put_bytes(data, f"{tmp}/{name}")
    transport.put_bytes(b"", f"{tmp}/{COMPLETE}")
    try:
        transport.rename(tmp, dest)
    except OSError:
        if not transport.exists(f"{dest}/{COMPLETE}"):
            raise
        transport.rmtree(tmp)  # another master pushed the same bundle first
    return dest
