"""LogLimiter: one warning per key per interval, a global cap, suppressed counts reported."""

from __future__ import annotations

import logging

import pytest

from threatlockdown.collect.ratelimit import LogLimiter

LOG = logging.getLogger("test.collect.ratelimit")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_per_key_interval_and_suppressed_count(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    limiter = LogLimiter(LOG, interval=10, clock=clock)
    with caplog.at_level(logging.WARNING):
        assert limiter.warning("a", "refused %s", "1.2.3.4")
        assert not limiter.warning("a", "refused %s", "1.2.3.4")
        assert not limiter.warning("a", "refused %s", "1.2.3.4")
        assert limiter.warning("b", "other")
        clock.now = 10
        assert limiter.warning("a", "refused %s", "1.2.3.4")
    assert [r.getMessage() for r in caplog.records] == [
        "refused 1.2.3.4",
        "other",
        "refused 1.2.3.4 (2 similar messages suppressed)",
    ]


def test_global_burst_cap_against_many_keys(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    limiter = LogLimiter(LOG, interval=10, burst=3, clock=clock)
    with caplog.at_level(logging.WARNING):
        logged = sum(limiter.warning(f"ip{i}", "refused ip%d", i) for i in range(100))
    assert logged == 3
    assert len(caplog.records) == 3
