"""The scheduler's vocabulary: events (what happened) and actions (what to do next).

Small frozen dataclasses. The master turns what hosts say into events, feeds them to
``Scheduler.handle`` and carries out the actions it gets back.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...jobs import JobState, Reason

Slot = tuple[str, int]

# ---------------------------------------------------------------------------- events


@dataclass(slots=True, frozen=True)
class JobsAdded:
    job_ids: tuple[int, ...]
    # The first jobs of a new phase (MapReduce: reduce after map), added once the run
    # finished the last one: the run goes on, and the runtimes measured so far (adaptive
    # timeout, prefetch, speculation) are forgotten, as the new jobs are of another kind.
    new_phase: bool = False


@dataclass(slots=True, frozen=True)
class HostUp:
    host: str
    slots: int


@dataclass(slots=True, frozen=True)
class HostDown:
    host: str
    reason: str
    fatal: bool = False  # e.g. host key changed: never reconnect


@dataclass(slots=True, frozen=True)
class SlotUp:
    slot: Slot
    expires_at: float  # when the worker retires (its max_living), on our clock


@dataclass(slots=True, frozen=True)
class SlotDown:
    slot: Slot
    reason: str
    failed_start: bool = False  # the worker never came up (job code or setup() failed)


@dataclass(slots=True, frozen=True)
class AttemptStarted:
    attempt_id: int


@dataclass(slots=True, frozen=True)
class AttemptSucceeded:
    attempt_id: int  # its result is verified and readable


@dataclass(slots=True, frozen=True)
class LateResult:
    attempt_id: int  # ended as host_lost; its verified result was found on the host later


@dataclass(slots=True, frozen=True)
class AttemptFailed:
    attempt_id: int
    reason: Reason
    slot_alive: bool = True  # the worker is still up and free (e.g. the job raised)


@dataclass(slots=True, frozen=True)
class Tick:
    pass


@dataclass(slots=True, frozen=True)
class CancelRequested:
    reason: str = "cancelled"


@dataclass(slots=True, frozen=True)
class DrainHost:
    host: str  # running attempts finish; nothing new goes to it; its idle workers retire


@dataclass(slots=True, frozen=True)
class UndrainHost:
    host: str


@dataclass(slots=True, frozen=True)
class AddHost:
    host: str  # a host joins the run (the master has a session for it); a drained one undrains


# --------------------------------------------------------------------------- actions


@dataclass(slots=True, frozen=True)
class Launch:
    attempt_id: int
    job_id: int
    slot: Slot
    number: int  # 1 for the first launch of the job, 2 for its first retry, ...
    timeout: float | None = None  # adaptive timeouts: the one this attempt runs with


@dataclass(slots=True, frozen=True)
class Kill:
    attempt_id: int
    slot: Slot
    reason: Reason


@dataclass(slots=True, frozen=True)
class Commit:
    attempt_id: int
    job_id: int


@dataclass(slots=True, frozen=True)
class Discard:
    attempt_id: int
    job_id: int


@dataclass(slots=True, frozen=True)
class AttemptEnded:
    """An attempt failed; the job is re-queued (``retry``) or has been given up."""

    attempt_id: int
    job_id: int
    reason: Reason
    retry: bool


@dataclass(slots=True, frozen=True)
class GiveUp:
    job_id: int
    state: JobState  # FAILED, UNKNOWN or CANCELLED
    reason: str


@dataclass(slots=True, frozen=True)
class StartSlot:
    slot: Slot


@dataclass(slots=True, frozen=True)
class RetireSlot:
    slot: Slot  # the worker is idle and too close to max_living: replace it


@dataclass(slots=True, frozen=True)
class ReconnectHost:
    host: str
    at: float


@dataclass(slots=True, frozen=True)
class QuarantineHost:
    host: str
    reason: str


@dataclass(slots=True, frozen=True)
class ConnectHost:
    host: str  # a host that joined: connect to it


@dataclass(slots=True, frozen=True)
class TimeoutChanged:
    seconds: float  # the adaptive timeout's new value (see ``timeouts``)
    median: float | None  # the median runtime it follows (None: too few successes yet)


@dataclass(slots=True, frozen=True)
class Finished:
    state: str  # "done", "cancelled", "halted", "no_hosts"
    message: str = ""
