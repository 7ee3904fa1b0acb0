"""The scheduler: a pure state machine (events in, actions out, the clock passed in).

``Scheduler`` lives in ``core``; its vocabulary (events and actions) in ``events``, re-exported
here so callers write ``from sshmr.engine import scheduler as s`` and ``s.Launch``.
"""

from .core import Scheduler
from .events import (
    AddHost,
    AttemptEnded,
    AttemptFailed,
    AttemptStarted,
    AttemptSucceeded,
    CancelRequested,
    Commit,
    ConnectHost,
    Discard,
    DrainHost,
    Finished,
    GiveUp,
    HostDown,
    HostUp,
    JobsAdded,
    Kill,
    LateResult,
    Launch,
    QuarantineHost,
    ReconnectHost,
    RetireSlot,
    Slot,
    SlotDown,
    SlotUp,
    StartSlot,
    Tick,
    TimeoutChanged,
    UndrainHost,
)

__all__ = [
    "Scheduler", "AttemptEnded", "AttemptFailed", "AttemptStarted", "AttemptSucceeded",
    "CancelRequested", "Commit", "Discard", "Finished", "GiveUp", "HostDown", "HostUp",
    "JobsAdded", "Kill", "LateResult", "Launch", "QuarantineHost", "ReconnectHost",
    "RetireSlot", "Slot", "SlotDown", "SlotUp", "StartSlot", "Tick",
    "AddHost", "ConnectHost", "DrainHost", "TimeoutChanged", "UndrainHost",
]
