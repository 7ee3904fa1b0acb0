"""The user's side of a job: ``JobExecutor``. Standard library only (shipped to hosts)."""

from __future__ import annotations

from typing import Any, Optional

from .remote.resultfile import ResultFile

__all__ = ["JobExecutor", "ResultFile"]


class JobExecutor:
    """Subclass and implement :meth:`execute`: one job's work.

    ``execute(payload)`` returns a JSON-serialisable value, or ``bytes`` (kept as a
    raw file). ``setup()`` runs once per worker process before its first job.

    Class attributes may carry the job's policy; the inventory/config overrides them,
    then CLI flags or keyword arguments of :func:`sshmr.run`:

    - ``timeout``: seconds one attempt may run (None: no limit but ``max_living``)
    - ``max_retries``: extra attempts after a failure (0: never run a job twice)
    - ``max_living``: seconds a worker process lives before it retires
    """

    timeout: Optional[float] = None
    max_retries: Optional[int] = None
    max_living: Optional[float] = None

    def setup(self) -> None:
        """Called once per worker process, before its first job."""

    def execute(self, payload: Any) -> Any:
        """Do one job's work and return its result."""
        name = type(self).__name__
        raise NotImplementedError(f"{name}.execute(self, payload) is not implemented")

