"""The ``sshmr`` command line (click). Thin: parsing and printing around ``sshmr.api``.

One module per command group: ``app`` (the group and shared options), ``run`` (run,
resume), ``runs`` (status, results, show, report, cancel, runs), ``hosts`` (hosts, gc),
``fleet`` (hosts drain, undrain, add), ``replay``.

Exit codes: 0 every job succeeded; 1 some job failed or is unknown; 2 bad usage or
configuration; 3 no host usable; 130 interrupted or cancelled.
"""

from . import fleet, hosts, replay, run, runs  # noqa: F401 - their commands register on ``main``
from .app import EXIT, main

__all__ = ["EXIT", "main"]

