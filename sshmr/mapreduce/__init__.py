"""MapReduce on the engine.

``job`` holds the user's side (``MapReduce``, ``MRStep``; standard library only, shipped to
hosts, like ``mrjob_task``); ``driver`` runs a job's steps and phases on the engine,
``splits`` cuts its input and ``mrjob_adapter`` runs unmodified mrjob jobs. Only the user's
side is imported here, so this package imports on a host with nothing but ``python3``.
"""

from .job import MapReduce, MRStep, step_functions

__all__ = ["MapReduce", "MRStep", "step_functions"]
