"""``FunctionExecutor``: the job class of function runs (``sshmr.notebook``). Stdlib only.

It is shipped to the hosts with the runtime. Its state names a file of the bundle's user
code directory holding the cloudpickled function (a file, not the agent's command line: a
closure over a large global may be large); the bundle carries cloudpickle too, so a host
needs nothing installed. Payloads that JSON cannot carry exactly arrive pickled, as
``{PICKLED_KEY: base64}`` (the master, i.e. the user, is trusted by the hosts).
``pickle_results`` asks the engine for HMAC keys (one per host and run): results that JSON
cannot carry are then pickled and signed by the worker, and verified by the master before
it loads them (``sshmr.record.safe_pickle``).
"""

from __future__ import annotations

import base64
import os
import pickle
import sys
from collections.abc import Callable
from typing import Any, Optional

from .executor import JobExecutor

PICKLED_KEY = "$sshmr_pickled"


class FunctionExecutor(JobExecutor):
    """Calls ``fn(item)`` for each job; ``fn`` comes from ``fn_file`` in the code directory."""

    pickle_results = True

    def __init__(self, fn_file: str, name: str, python: str) -> None:
        self.fn_file = fn_file  # the file name, looked up on sys.path (the user code dir)
        self.name = name  # for messages
        self.python = python  # "3.11": cloudpickled code only loads on the same minor version
        self._fn: Optional[Callable[[Any], Any]] = None

    def setup(self) -> None:
        here = "{}.{}".format(*sys.version_info[:2])
        if here != self.python:
            raise RuntimeError(
                f"{self.name} was pickled by Python {self.python} but this host runs Python"
                f" {here}: functions defined in a notebook need the same Python minor version;"
                " set python: in the inventory")
        for folder in sys.path:
            path = os.path.join(folder or ".", self.fn_file)
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    self._fn = pickle.loads(f.read())
                return
        raise RuntimeError(f"{self.fn_file} is missing from the code bundle")

    def execute(self, payload: Any) -> Any:
        if self._fn is None:
            self.setup()
        assert self._fn is not None
        if type(payload) is dict and len(payload) == 1 and PICKLED_KEY in payload:
            payload = pickle.loads(base64.b64decode(payload[PICKLED_KEY]))
        return self._fn(payload)
