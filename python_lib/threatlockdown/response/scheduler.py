"""Timed reverts: a heap of expiries, checked at least once a second.

The heap holds (time, key) items, at most one live item per key, no later than the key's expiry. When an
item comes up, ``follow`` says what became of it: due, stale (dropped), or moved to the key's later
expiry. So an extended expiry (every refresh of an attack) costs no push: the earlier item moves on
once, when it comes up.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable, Iterable

MAX_SLEEP = 1.0  # wake at least this often, so a clock step cannot delay a revert for long


class ExpiryScheduler:
    def __init__(
        self,
        on_due: Callable[[list[str]], Awaitable[None]],
        follow: Callable[[str, float], float | None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``follow(key, at)`` when the item (at, key) comes up: None to drop it, ``at`` (or earlier)
        when the key is due, a later time to move the item there."""
        self._on_due = on_due
        self._follow = follow
        self._clock = clock
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        # The sleep of run(): a plain future that a timer or an earlier new expiry completes. (Not
        # wait_for on an Event: in Python 3.11 that could leave the task hanging when cancelled.)
        self._sleep: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._heap)

    def schedule(self, key: str, expires: float) -> None:
        if not self._heap or expires < self._heap[0][0]:
            self._wake()  # a new earliest expiry: the sleeping loop must look again
        heapq.heappush(self._heap, (expires, next(self._seq), key))

    def rebuild(self, items: Iterable[tuple[str, float]]) -> None:
        """Replace the heap with exactly ``items`` (drops stale entries left by refreshes)."""
        self._heap = [(expires, next(self._seq), key) for key, expires in items]
        heapq.heapify(self._heap)
        self._wake()

    def next_expiry(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> list[str]:
        due: list[str] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, _, key = heapq.heappop(heap)
            when = self._follow(key, at)
            if when is None:
                continue
            if when > at:
                heapq.heappush(heap, (when, next(self._seq), key))  # comes up again if already due
            else:
                due.append(key)
        return due

    async def run(self) -> None:
        while True:
            due = self.pop_due(self._clock())
            if due:
                await self._on_due(due)
                continue
            nxt = self.next_expiry()
            delay = MAX_SLEEP if nxt is None else max(0.0, min(MAX_SLEEP, nxt - self._clock()))
            loop = asyncio.get_running_loop()
            sleep: asyncio.Future[None] = loop.create_future()
            self._sleep = sleep
            timer = loop.call_later(delay, self._wake)
            try:
                await sleep
            finally:
                timer.cancel()
                self._sleep = None

    def _wake(self) -> None:
        if self._sleep is not None and not self._sleep.done():
            self._sleep.set_result(None)
