"""Warnings that cannot flood the log when a sender or a file misbehaves thousands of times a second."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class LogLimiter:
    """At most one warning per key per ``interval`` and at most ``burst`` warnings per interval overall.

    Suppressed warnings are counted and the count is added to the next warning logged for that key.
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval: float = 60.0,
        burst: int = 20,
        max_keys: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._burst = burst
        self._max_keys = max_keys
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._window_start = float("-inf")
        self._window_count = 0

    def warning(self, key: str, message: str, *args: object) -> bool:
        """Log ``message % args`` unless rate-limited; True when it was logged."""
        return self.log(logging.WARNING, key, message, *args)

    def log(self, level: int, key: str, message: str, *args: object) -> bool:
        now = self._clock()
        last = self._last.get(key)
        if now - self._window_start >= self._interval:
            self._window_start, self._window_count = now, 0
        if (last is not None and now - last < self._interval) or self._window_count >= self._burst:
            if key in self._suppressed or len(self._suppressed) < self._max_keys:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        if len(self._last) >= self._max_keys:
            # Forget old keys rather than grow without bound (spoofed UDP senders are unlimited).
            self._last.clear()
        self._last[key] = now
        self._window_count += 1
        skipped = self._suppressed.pop(key, 0)
        if skipped:
            message += " (%d similar messages suppressed)"
            args = (*args, skipped)
        self._logger.log(level, message, *args)
        return True
