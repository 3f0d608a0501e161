"""Saved read positions of log files (file_positions.json under the state directory)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SourceError
from .ratelimit import LogLimiter
from .statefile import StateFileError, read_json_state, set_aside, write_json_atomic

POSITIONS_FILE = "file_positions.json"
_FORMAT = "threatlockdown-file-positions"
_VERSION = 1


@dataclass(frozen=True, slots=True)
class FilePosition:
    """Where to resume one file: which file (device, inode, first line) and the acked offset."""

    device: int
    inode: int
    offset: int
    first_line_sha256: str | None  # None while the file has no complete first line

    def to_json(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "inode": self.inode,
            "offset": self.offset,
            "first_line_sha256": self.first_line_sha256,
        }


class PositionStore:
    """Positions by configured file path, shared by every file tailer of one daemon.

    A path maps to a list, oldest first: a rotated file still being read keeps its entry next to the
    file that replaced it, so a restart in the middle of a rotation loses and repeats nothing.
    """

    def __init__(self, state_dir: Path, logger: logging.Logger) -> None:
        self.path = state_dir / POSITIONS_FILE
        self._logger = logger
        self._limiter = LogLimiter(logger)
        self._files: dict[str, tuple[FilePosition, ...]] = {}
        self._dirty = False
        # The id of the last alert batch whose acks these positions include (see docs/manager.md).
        self.commit: int | None = None
        self.write_errors = 0
        self._load()

    def get(self, path: str) -> tuple[FilePosition, ...]:
        return self._files.get(path, ())

    def paths(self) -> list[str]:
        return list(self._files)

    def put(self, path: str, positions: Sequence[FilePosition]) -> None:
        new = tuple(positions)
        if self._files.get(path, ()) == new:
            return
        if new:
            self._files[path] = new
        else:
            self._files.pop(path, None)
        self._dirty = True

    def save(self, commit: int | None = None) -> bool:
        """Write the file if anything changed (or ``commit`` is new); False when the write failed.

        ``commit`` marks the positions as those after alert batch ``commit``: the manager's batch
        journal compares it to tell a finished batch from an interrupted one. A failed write is
        logged and retried next time."""
        if commit is not None and commit != self.commit:
            self.commit = commit
            self._dirty = True
        if not self._dirty:
            return True
        data: dict[str, Any] = {
            "format": _FORMAT,
            "version": _VERSION,
            "files": {p: [pos.to_json() for pos in ps] for p, ps in sorted(self._files.items())},
        }
        if self.commit is not None:
            data["commit"] = self.commit
        try:
            write_json_atomic(self.path, data)
        except OSError as exc:
            self.write_errors += 1
            self._limiter.log(logging.ERROR, "save", "%s: cannot save file positions: %s", self.path, exc)
            return False
        self._dirty = False
        return True

    def _load(self) -> None:
        try:
            data = read_json_state(self.path, "file_positions")
            if data is not None:
                self._files = _parse(data, str(self.path))
                self.commit = read_commit(data)
        except StateFileError as exc:
            set_aside(self.path, exc.problem, self._logger)


def read_commit(data: Any) -> int | None:
    """The alert batch id a state file was saved after, None when it has none."""
    commit = data.get("commit") if isinstance(data, dict) else None
    return commit if type(commit) is int else None


def saved_commit(path: Path) -> int | None:
    """``read_commit`` of a state file on disk; None when it is missing or unreadable."""
    try:
        return read_commit(read_json_state(path, path.name))
    except StateFileError:
        return None


def _parse(data: Any, where: str) -> dict[str, tuple[FilePosition, ...]]:
    def bad(element: str, message: str) -> StateFileError:
        return StateFileError(SourceError(where, None, element, message))

    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise bad("format", f"not a {_FORMAT} file")
    if data.get("version") != _VERSION:
        raise bad("version", f"unsupported version {data.get('version')!r} (expected {_VERSION})")
    files = data.get("files")
    if not isinstance(files, dict):
        raise bad("files", "expected an object of path -> list of positions")
    out: dict[str, tuple[FilePosition, ...]] = {}
    for path, entries in files.items():
        if not isinstance(entries, list):
            raise bad(f"files/{path}", "expected a list of positions")
        out[path] = tuple(_position(e, f"files/{path}[{i}]", bad) for i, e in enumerate(entries))
    return out


def _position(entry: Any, element: str, bad: Callable[[str, str], StateFileError]) -> FilePosition:
    if not isinstance(entry, dict):
        raise bad(element, "expected an object")
    numbers: dict[str, int] = {}
    for key in ("device", "inode", "offset"):
        value = entry.get(key)
        if type(value) is not int or value < 0:
            raise bad(f"{element}/{key}", f"expected a non-negative integer, got {value!r}")
        numbers[key] = value
    digest = entry.get("first_line_sha256")
    if digest is not None and not (isinstance(digest, str) and len(digest) == 64):
        raise bad(f"{element}/first_line_sha256", f"expected 64 hex digits or null, got {digest!r}")
    return FilePosition(numbers["device"], numbers["inode"], numbers["offset"], digest)
