"""Saving every collector's acked read position at once, marked with the alert batch it completes.

The manager calls ``PositionCommitter.commit(batch)`` right after it acked a batch whose alerts are on
disk. The mark lets its batch journal tell, after a crash, whether that batch's positions were saved
(keep its alerts) or not (cut them off: the events will be read and analysed again).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .event import Collector
from .journald import JournaldCollector
from .positions import PositionStore, saved_commit
from .tailer import FileTailer


class PositionCommitter:
    def __init__(self, collectors: Sequence[Collector]) -> None:
        self._tailers = [c for c in collectors if isinstance(c, FileTailer)]
        self._journals = [c for c in collectors if isinstance(c, JournaldCollector)]
        stores: dict[int, PositionStore] = {}
        for tailer in self._tailers:
            stores.setdefault(id(tailer.store), tailer.store)
        self._stores = list(stores.values())

    @property
    def state_files(self) -> list[Path]:
        """The files a commit writes its mark into."""
        return [s.path for s in self._stores] + [j.cursor_path for j in self._journals]

    def commit(self, batch: int | None = None) -> bool:
        """Write the acked positions now, marked with ``batch``; False if a write failed (logged)."""
        for tailer in self._tailers:
            tailer.stage_positions()
        ok = True
        for store in self._stores:
            ok = store.save(batch) and ok
        for journal in self._journals:
            ok = journal.flush_cursor(batch) and ok
        return ok


def committed_batch(state_file: Path) -> int | None:
    """The batch mark in a position or cursor file, None when it has none (or cannot be read)."""
    return saved_commit(state_file)
