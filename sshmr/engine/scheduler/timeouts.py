"""The adaptive timeout: ``--timeout 300%`` is three times the median runtime of the jobs
that succeeded so far, kept between a floor and a ceiling. Part of the pure scheduler (see
``core``).

``adaptive = (factor, floor, ceiling)``. Until ``ADAPT_AFTER`` jobs have succeeded the
ceiling applies (a median of two is no guide); then ``factor x median`` of the successful
runtimes (the latest 1000, by the master's clock from start to result), clamped to
``[floor, ceiling]``. Each attempt keeps the timeout it was launched with (its host agent
enforces that one), so a change applies to the attempts launched after it. A change of at
least ``REPORT_CHANGE`` (relative to the value last reported; the first, to the ceiling)
is reported with ``TimeoutChanged`` for the journal.
"""

from __future__ import annotations

import statistics

from .events import TimeoutChanged
from .state import SchedulerState

ADAPT_AFTER = 5  # successes before the median counts
REPORT_CHANGE = 0.05  # a change of 5 % or more is journaled


class Timeouts(SchedulerState):
    """The timeout an attempt launched now runs with."""

    def current_timeout(self) -> float | None:
        """Seconds, or None: no timeout (only the attempt limit, max_living)."""
        if self.adaptive is None:
            return self.timeout
        if self._adaptive_now is None:
            self._adaptive_now = self.adaptive[2]
        return self._adaptive_now

    def median_runtime(self) -> float | None:
        if len(self._durations) < ADAPT_AFTER:
            return None
        return statistics.median(self._durations)

    def _forget_runtimes(self, out: list) -> None:
        """A new phase: its jobs are of another kind, so the runtimes measured so far say
        nothing of them; the adaptive timeout goes back to its ceiling (reported)."""
        self._durations.clear()
        self._typical = None
        if self.adaptive is not None:
            self._adaptive_now = None
            ceiling = self.adaptive[2]
            if self._adaptive_reported != ceiling:
                self._adaptive_reported = ceiling
                out.append(TimeoutChanged(ceiling, None))

    def _adapt(self, out: list) -> None:
        """After a success: recompute the adaptive timeout; report a real change."""
        if self.adaptive is None:
            return
        factor, floor, ceiling = self.adaptive
        median = self.median_runtime()
        value = ceiling if median is None else min(ceiling, max(floor, factor * median))
        self._adaptive_now = value
        reported = self._adaptive_reported
        if abs(value - reported) >= REPORT_CHANGE * reported:
            self._adaptive_reported = value
            out.append(TimeoutChanged(value, median))
