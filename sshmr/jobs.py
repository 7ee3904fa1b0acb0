"""Job and attempt vocabulary shared by the scheduler, the journal and the reports."""

from __future__ import annotations

from enum import Enum


class JobState(str, Enum):
    """Where a job is. The last four are final: every job ends in exactly one of them."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    UNKNOWN = "UNKNOWN"  # only with max_retries=0: dispatched, outcome cannot be known
    CANCELLED = "CANCELLED"

    @property
    def final(self) -> bool:
        return self not in (JobState.PENDING, JobState.RUNNING)


class AttemptState(str, Enum):
    """One launch of a job on one worker slot."""

    DISPATCHED = "DISPATCHED"  # journaled, sent to the host, not yet acknowledged
    RUNNING = "RUNNING"  # the worker acknowledged it
    SUCCEEDED = "SUCCEEDED"  # its result is the job's committed result
    DISCARDED = "DISCARDED"  # a verified result that arrived after another one won
    FAILED = "FAILED"  # see the attempt's reason

    @property
    def final(self) -> bool:
        return self not in (AttemptState.DISPATCHED, AttemptState.RUNNING)


class Reason(str, Enum):
    """Why an attempt failed."""

    ERROR = "error"  # the job raised, or returned something that cannot be serialised
    TIMEOUT = "timeout"  # ran past its timeout and was killed
    WORKER_DIED = "worker_died"  # the worker process died or its channel closed
    HOST_LOST = "host_lost"  # the host became unreachable while the attempt ran
    CORRUPT = "corrupt"  # the result failed its checksum or could not be decoded
    SYSTEM = "system"  # sshmr itself failed on the host (disk full, push failed, ...)
    MAX_LIVING = "max_living"  # the worker reached max_living while running it
    CANCELLED = "cancelled"  # the run was cancelled or halted
    SPECULATION = "speculation"  # a speculative copy lost the race and was killed
    NOT_STARTED = "not_started"  # queued at the host agent, never started: not a launch

    @property
    def host_fault(self) -> bool:
        """Failures that count towards quarantining the host (a lost host reconnects
        with backoff instead; a job that raises or times out is the job's fault)."""
        return self in (Reason.WORKER_DIED, Reason.CORRUPT, Reason.SYSTEM)

    @property
    def outcome_unknown(self) -> bool:
        """The job may have run to completion (or half-way) without us knowing."""
        return self in (Reason.WORKER_DIED, Reason.HOST_LOST)
