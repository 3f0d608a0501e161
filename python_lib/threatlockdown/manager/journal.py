"""The alert batch journal: alerts written exactly once across a crash (docs/manager.md).

Per batch that writes alerts:

1. ``begin``: record the alert files' sizes, the batch id and the state files that will commit it
   (file positions, journal cursor); fdatasync. Only then are alerts written.
2. the alerts are written and fdatasynced;
3. the events are acked and the collectors' positions saved, marked with the batch id;
4. ``end``: the record is cleared.

At start, ``recover`` looks at a record left by a crash. If every listed state file carries the batch
id, the batch was complete (the crash came after step 3) and its alerts stay. Otherwise the positions
still point before the batch, which will be read and analysed again, so its alerts are cut off by
truncating the files back to the recorded sizes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_FORMAT = "threatlockdown-alert-batch"


@dataclass(frozen=True)
class Recovery:
    batch: int
    committed: bool
    truncated: dict[str, int]  # path -> bytes removed


class BatchJournal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def begin(self, batch: int, sizes: dict[str, int], stores: list[str]) -> None:
        record = {"format": _FORMAT, "version": 1, "batch": batch, "sizes": sizes, "stores": stores}
        data = (json.dumps(record, sort_keys=True) + "\n").encode()
        # A torn record (crash inside this write) is unreadable and ignored: no alert was written yet.
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)
        os.fdatasync(self._fd)

    def end(self, *, durable: bool) -> None:
        """Clear the record; ``durable`` when nothing else marks the batch as done (agent events)."""
        os.ftruncate(self._fd, 0)
        if durable:
            os.fdatasync(self._fd)

    def recover(self, committed_batch: Callable[[Path], int | None]) -> Recovery | None:
        """Deal with a record left by a crash; None when there was none."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        record = _parse(text)
        if record is None:
            self.path.write_bytes(b"")
            return None
        batch, sizes, stores = record
        committed = bool(stores) and all(committed_batch(Path(s)) == batch for s in stores)
        truncated: dict[str, int] = {}
        if not committed:
            for name, size in sizes.items():
                try:
                    current = os.path.getsize(name)
                except FileNotFoundError:
                    continue
                if current > size:
                    with open(name, "r+b") as f:
                        f.truncate(size)
                        f.flush()
                        os.fsync(f.fileno())
                    truncated[name] = current - size
        with open(self.path, "wb") as f:
            os.fsync(f.fileno())
        return Recovery(batch, committed, truncated)


def _parse(text: str) -> tuple[int, dict[str, int], list[str]] | None:
    if not text.strip():
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("format") != _FORMAT:
        return None
    batch, sizes, stores = record.get("batch"), record.get("sizes"), record.get("stores")
    if type(batch) is not int or not isinstance(sizes, dict) or not isinstance(stores, list):
        return None
    if not all(isinstance(k, str) and type(v) is int and v >= 0 for k, v in sizes.items()):
        return None
    if not all(isinstance(s, str) for s in stores):
        return None
    return batch, sizes, stores
