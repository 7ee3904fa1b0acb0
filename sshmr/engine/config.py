"""Run configuration as one validated value object, and how its layers merge.

Precedence, lowest first: built-in defaults < the JobExecutor's class attributes
(``timeout``, ``max_retries``, ``max_living``) < CLI flags or keyword arguments.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .timeouts import Adaptive, parse_timeout

DEFAULT_MAX_RETRIES = 3
DEFAULT_MAX_LIVING = 6 * 3600.0
DEFAULT_MAX_RESULT_SIZE = 1 << 30


@dataclass(frozen=True)
class RunConfig:
    """Every knob of a run, with its default. Times are seconds."""

    # per attempt: seconds, or "PCT%[:FLOOR[:CEILING]]" (adaptive, see ``engine.timeouts``);
    # None: bounded only by max_living
    timeout: float | str | None = None
    max_retries: int = DEFAULT_MAX_RETRIES  # 0: a job is never launched twice
    max_living: float = DEFAULT_MAX_LIVING  # a worker process retires after this long
    slots: int | None = None  # per host; overrides the inventory (local: cpu count)
    seed: int | None = None  # random assignment of jobs to slots
    accept_new_hosts: bool = False
    heartbeat: float = 1.0  # both ways, master <-> host agent
    host_silence: float = 5.0  # no message from a host for this long: host lost
    master_grace: float = 10.0  # the agent's patience before it assumes the master is gone
    kill_grace: float = 2.0  # SIGTERM -> SIGKILL
    inline_limit: int = 64 * 1024  # results up to this size ride on the control channel
    max_result_size: int = DEFAULT_MAX_RESULT_SIZE  # a larger result fails, is not fetched
    quarantine_after: int = 5  # host-caused failures in a row before a host is quarantined
    host_retries: int = 2  # failed reconnects (1 s, 2 s, ... backoff) before a host is down
    reconnect_backoff: tuple[float, float] = (1.0, 30.0)  # first and longest reconnect delay
    halt_on_failures: int | float | None = None  # int count, or float fraction of jobs
    speculate: float | None = None  # copy a straggler at this multiple of the median runtime
    prefetch: int = 2  # jobs queued at a host behind each busy slot (none with max_retries 0)
    watch_inventory: bool = False  # re-read the inventory when it changes: hosts join, drain

    def __post_init__(self) -> None:
        fixed, _ = parse_timeout(self.timeout, self.max_living)  # a one-line error if bad
        if fixed is not None:  # "300" or "5m": seconds
            object.__setattr__(self, "timeout", fixed)
        if fixed is not None and fixed <= 0:
            raise ConfigError(f"timeout must be > 0 seconds, got {self.timeout}")
        if self.max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.max_living <= 0:
            raise ConfigError(f"max_living must be > 0 seconds, got {self.max_living}")
        if fixed is not None and fixed > self.max_living:
            raise ConfigError(f"timeout ({self.timeout}s) is longer than max_living "
                              f"({self.max_living}s): no worker could finish such a job")
        if self.speculate is not None and self.max_retries == 0:
            raise ConfigError("speculation runs a job twice: it cannot be used with"
                              " max_retries 0")
        if self.speculate is not None and self.speculate < 1:
            raise ConfigError(f"speculate must be >= 1 (a multiple of the median runtime), got"
                              f" {self.speculate}")
        if self.slots is not None and self.slots < 1:
            raise ConfigError(f"slots must be >= 1, got {self.slots}")
        if self.max_result_size < self.inline_limit:
            raise ConfigError(f"max_result_size must be at least {self.inline_limit} bytes, got"
                              f" {self.max_result_size}")
        if self.prefetch < 0:
            raise ConfigError(f"prefetch must be >= 0 (jobs queued per busy slot), got"
                              f" {self.prefetch}")

    @property
    def fixed_timeout(self) -> float | None:
        """The timeout in seconds; None when there is none or it is adaptive."""
        return parse_timeout(self.timeout, self.max_living)[0]

    @property
    def adaptive_timeout(self) -> Adaptive | None:
        return parse_timeout(self.timeout, self.max_living)[1]

    @property
    def longest_timeout(self) -> float | None:
        """The longest an attempt may be given: the fixed timeout or the adaptive ceiling."""
        fixed, adaptive = parse_timeout(self.timeout, self.max_living)
        return adaptive.ceiling if adaptive is not None else fixed

    @property
    def attempt_life(self) -> float:
        """The longest an attempt can run on a host, by the agent's own clocks: its timeout,
        and never past ``max_living`` (then its worker is retired)."""
        return min(self.longest_timeout or self.max_living, self.max_living)

    @classmethod
    def build(cls, executor: Any = None, **overrides: Any) -> RunConfig:
        """Defaults < executor class attributes < ``overrides`` (None means not given)."""
        values: dict[str, Any] = {}
        for name in ("timeout", "max_retries", "max_living"):
            value = getattr(executor, name, None)
            if value is not None:
                values[name] = value
        names = {f.name for f in dataclasses.fields(cls)}
        for name, value in overrides.items():
            if name not in names:
                raise ConfigError(f"unknown option {name!r}")
            if value is not None:
                values[name] = value
        return cls(**values)


def parse_halt(spec: str | None) -> int | float | None:
    """``--halt-on-failures N`` or ``PCT%``."""
    if spec is None:
        return None
    try:
        if spec.endswith("%"):
            pct = float(spec[:-1])
            if not 0 < pct <= 100:
                raise ValueError
            return pct / 100.0
        count = int(spec)
        if count < 1:
            raise ValueError
        return count
    except ValueError:
        raise ConfigError(f"--halt-on-failures {spec!r}: expected a count like 5 or a percentage"
                          " like 10%") from None
