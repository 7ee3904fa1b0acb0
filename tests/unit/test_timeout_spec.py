"""The ``timeout`` option's syntax: seconds, or ``PCT%[:FLOOR[:CEILING]]`` (adaptive)."""

from __future__ import annotations

import pytest

from sshmr import JobExecutor
from sshmr.engine.config import RunConfig
from sshmr.engine.launch import make_scheduler
from sshmr.engine.timeouts import Adaptive, parse_timeout
from sshmr.errors import ConfigError

LIVING = 6 * 3600.0


@pytest.mark.parametrize("spec, fixed, adaptive", [
    (None, None, None),
    (30, 30.0, None),
    (2.5, 2.5, None),
    ("300", 300.0, None),
    ("5m", 300.0, None),
    ("300%", None, Adaptive(3.0, 1.0, LIVING)),
    ("300%:10s", None, Adaptive(3.0, 10.0, LIVING)),
    ("300%:10s:1h", None, Adaptive(3.0, 10.0, 3600.0)),
    ("150%::2m", None, Adaptive(1.5, 1.0, 120.0)),
    (" 200% : 500ms : 30 ".replace(" ", ""), None, Adaptive(2.0, 0.5, 30.0)),
])
def test_timeout_specs(spec, fixed, adaptive) -> None:
    assert parse_timeout(spec, LIVING) == (fixed, adaptive)


@pytest.mark.parametrize("spec, words", [
    ("abc", "expected seconds"),
    ("%", "not a percentage"),
    ("-5%", "must be > 0"),
    ("0%", "must be > 0"),
    ("300%x", "expected seconds"),
    ("300%:ten", "FLOOR 'ten'"),
    ("300%:1s:zz", "CEILING 'zz'"),
    ("300%:1m:10s", "below the floor"),
    ("300%:1s:1h:2h", "at most a FLOOR and a CEILING"),
    ("300%:1s:7h", "longer than max_living"),
])
def test_bad_timeout_specs_are_one_line_config_errors(spec: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        RunConfig(timeout=spec)
    message = str(info.value)
    assert words in message and "\n" not in message, message


def test_an_executor_class_and_run_options_may_ask_for_an_adaptive_timeout() -> None:
    class Job(JobExecutor):
        timeout = "300%"

    config = RunConfig.build(Job())
    assert config.adaptive_timeout == Adaptive(3.0, 1.0, LIVING)
    assert config.fixed_timeout is None and config.longest_timeout == LIVING
    assert RunConfig.build(Job(), timeout="200%:2s:1m").adaptive_timeout == Adaptive(2, 2, 60)
    assert RunConfig.build(Job(), timeout="90").timeout == 90.0  # seconds, as a number
    sched = make_scheduler(RunConfig.build(Job(), timeout="200%:2s:1m"), ["a"])
    assert sched.adaptive == (2.0, 2.0, 60.0) and sched.timeout is None
