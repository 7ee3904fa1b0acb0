"""sshmr: run jobs and MapReduce over a fleet of plain SSH servers.

The public API is what ``__all__`` lists; everything else may change. Only the
stdlib-only names (JobExecutor, MapReduce, Partitioner, Worker, errors) are imported eagerly, so
this package also imports on a host that has nothing but ``python3``.

The packages are layers (``remote`` < the job API < ``inventory``, ``transport``, ``record``
< ``engine`` < ``mapreduce``, ``views`` < ``api`` < ``cli``, ``notebook``); which may import
which is ARCHITECTURE.md's table, checked by ``tests/unit/test_architecture.py``.
"""

from __future__ import annotations

from typing import Any

from .errors import (
    AuthenticationFailed,
    Cancelled,
    ConfigError,
    HostDiskFull,
    HostError,
    HostKeyChanged,
    HostKeyUnknown,
    HostUnreachable,
    InputError,
    InventoryError,
    JobFailed,
    JobNotFound,
    NoHostsAvailable,
    RemoteSetupFailed,
    ResultError,
    RunError,
    RunLocked,
    RunNotFound,
    RunsDirFull,
    SshmrError,
    TargetError,
)
from .executor import JobExecutor, ResultFile
from .jobs import JobState
from .mapreduce import MapReduce, MRStep
from .partition import InputFile, Partitioner
from .remote.worker import Worker

__version__ = "0.1.0"

_LAZY = {
    "run": "api",
    "resume": "api",
    "RunResult": "result",
    "JobResult": "result",
    "RunConfig": "engine.config",
    "load_inventory": "inventory",
    "Inventory": "inventory",
    "Host": "inventory",
}

__all__ = [
    "AuthenticationFailed", "Cancelled", "ConfigError", "HostError", "HostKeyChanged",
    "HostKeyUnknown", "HostUnreachable", "InputError", "InventoryError", "JobNotFound",
    "NoHostsAvailable", "RemoteSetupFailed", "ResultError", "RunError", "RunLocked",
    "RunNotFound", "SshmrError", "JobFailed", "HostDiskFull", "RunsDirFull",
    "TargetError", "JobExecutor", "JobState", "InputFile", "Partitioner", "Worker",
    "MapReduce", "MRStep", "ResultFile",
    *_LAZY, "__version__",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sshmr' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
