"""The ``timeout`` option's syntax: seconds, or an adaptive timeout ``PCT%[:FLOOR[:CEILING]]``.

``--timeout 300`` (or ``timeout = 300``): every attempt may run 300 s. ``--timeout 300%``:
three times the median runtime of the jobs that succeeded so far, never below FLOOR
(default ``DEFAULT_FLOOR``, 1 s) nor above CEILING (default: ``max_living``); until 5 jobs
have succeeded, the ceiling applies. FLOOR and CEILING are durations: ``500ms``, ``10s``,
``5m``, ``2h`` or plain seconds. The scheduler computes the value (``scheduler.timeouts``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ConfigError

DEFAULT_FLOOR = 1.0
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "": 1.0}
_DURATION = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|s|m|h|d|)\s*")
SYNTAX = "expected seconds like 300, or PCT%[:FLOOR[:CEILING]] like 300% or 300%:10s:1h"


@dataclass(frozen=True)
class Adaptive:
    """``factor`` x the median successful runtime, within ``[floor, ceiling]`` seconds."""

    factor: float
    floor: float
    ceiling: float

    def as_tuple(self) -> tuple[float, float, float]:
        return (self.factor, self.floor, self.ceiling)


def parse_duration(text: str) -> float | None:
    m = _DURATION.fullmatch(text)
    return None if m is None else float(m.group(1)) * _UNITS[m.group(2)]


def parse_timeout(spec: float | int | str | None,
                  max_living: float) -> tuple[float | None, Adaptive | None]:
    """(fixed seconds, adaptive): at most one is set. Raises a one-line ``ConfigError``."""
    if spec is None:
        return None, None
    if isinstance(spec, bool):
        raise ConfigError(f"timeout {spec!r}: {SYNTAX}")
    if isinstance(spec, (int, float)):
        return float(spec), None
    if not isinstance(spec, str):
        raise ConfigError(f"timeout {spec!r}: {SYNTAX}")
    text = spec.strip()
    if "%" not in text:
        seconds = parse_duration(text)
        if seconds is None:
            raise ConfigError(f"timeout {spec!r}: {SYNTAX}")
        return seconds, None
    pct, _, rest = text.partition("%")
    parts = rest.split(":") if rest else []
    if parts and parts[0] != "":
        raise ConfigError(f"timeout {spec!r}: {SYNTAX}")
    parts = parts[1:]
    if len(parts) > 2:
        raise ConfigError(f"timeout {spec!r}: at most a FLOOR and a CEILING after PCT%")
    try:
        factor = float(pct) / 100.0
    except ValueError:
        raise ConfigError(f"timeout {spec!r}: {pct!r} is not a percentage; {SYNTAX}") from None
    if not factor > 0:
        raise ConfigError(f"timeout {spec!r}: the percentage must be > 0")
    floor, ceiling = DEFAULT_FLOOR, max_living
    for i, part in enumerate(parts):
        if part == "":
            continue
        seconds = parse_duration(part)
        if seconds is None or seconds <= 0:
            what = ("FLOOR", "CEILING")[i]
            raise ConfigError(f"timeout {spec!r}: {what} {part!r} is not a duration like 10s,"
                              " 5m or 1h")
        if i == 0:
            floor = seconds
        else:
            ceiling = seconds
    if ceiling < floor:
        raise ConfigError(f"timeout {spec!r}: the ceiling ({ceiling:g}s) is below the floor"
                          f" ({floor:g}s)")
    if ceiling > max_living:
        raise ConfigError(f"timeout {spec!r}: the ceiling ({ceiling:g}s) is longer than"
                          f" max_living ({max_living:g}s): no worker could finish such a job")
    return None, Adaptive(factor, floor, ceiling)
