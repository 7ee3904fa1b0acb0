"""``ResultFile``: a job's result that is a file (stdlib only; ``sshmr.ResultFile``)."""

from __future__ import annotations

import os
from typing import Union


class ResultFile:
    """Return ``ResultFile(path)`` from ``execute`` to make a file the job's result (bytes)
    without reading it into memory: the worker moves it into the attempt's result and the
    master streams it to the run directory, checksummed like any result."""

    __slots__ = ("path",)

    def __init__(self, path: Union[str, "os.PathLike[str]"]) -> None:
        self.path = os.fspath(path)

    def __repr__(self) -> str:
        return "ResultFile(" + repr(self.path) + ")"
