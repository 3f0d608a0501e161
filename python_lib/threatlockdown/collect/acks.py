"""Turning out-of-order acknowledgements into a position that is safe to save."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

P = TypeVar("P")


@dataclass(slots=True)
class _Pending(Generic[P]):
    position: P  # where reading resumes once this event and every earlier one are done
    acked: bool = False


class AckTracker(Generic[P]):
    """Events handed out in read order; ``committed`` is the position after the longest acked prefix.

    A consumer that batches may ack out of order; only a contiguous prefix may be saved, otherwise a
    restart would skip the events still in flight.
    """

    def __init__(self, committed: P) -> None:
        self._committed = committed
        self._pending: deque[_Pending[P]] = deque()

    @property
    def committed(self) -> P:
        return self._committed

    @property
    def outstanding(self) -> int:
        """Events handed out and not yet acked (plus skipped ones queued behind them)."""
        return len(self._pending)

    def issue(self, position: P) -> Callable[[], None]:
        """Register an event that ends at ``position``; return its ack callback (idempotent)."""
        entry: _Pending[P] = _Pending(position)
        self._pending.append(entry)
        return lambda: self._ack(entry)

    def skip(self, position: P) -> None:
        """A record that produces no event (filtered, invalid) is done as soon as it is read."""
        if self._pending:
            self._pending.append(_Pending(position, acked=True))
        else:
            self._committed = position

    def _ack(self, entry: _Pending[P]) -> None:
        if entry.acked:
            return
        entry.acked = True
        pending = self._pending
        while pending and pending[0].acked:
            self._committed = pending.popleft().position
