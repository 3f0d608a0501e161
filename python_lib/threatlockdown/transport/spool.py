"""Agent side: the on-disk buffer of events the manager has not acknowledged yet.

Layout of ``queue/spool/``:

* ``NNNNNNNNNNNNNNNNNNNN.seg`` (20 digits = seq of its first record): append-only segment files, one
  event per line as the exact JSON object sent on the wire (``{"seq":..,"location":..,...}``).
* ``state.json``: ``{"version": 1, "stream": "<32 hex>", "acked": N}`` written atomically; events with
  seq <= N were acknowledged by the manager. A segment whose last record is acknowledged is deleted.

Durability (``fsync`` policy): every record is written to the kernel before ``append`` returns, so a
crash of the agent process loses nothing. Against power loss: ``always`` fsyncs before ``submit``
returns; ``interval`` (the default) fsyncs at most every ``fsync_interval`` seconds, so the events of
that last interval can be lost; ``never`` leaves it to the kernel. After a power loss the end of the
newest segment may hold a partial record: it is cut off with a warning when the spool is reopened.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import SourceError, SourceErrors
from .atomicfile import fsync_dir, write_atomic
from .errors import EventTooLargeError, ProtocolError, SpoolFullError
from .messages import MAX_EVENT_BYTES, event_from_object, event_json

log = logging.getLogger("threatlockdown.transport")

FsyncPolicy = Literal["always", "interval", "never"]
STATE_FILE = "state.json"
_SEGMENT_NAME = re.compile(r"([0-9]{20})\.seg")
_STREAM = re.compile(r"[0-9a-f]{32}")


@dataclass
class _Segment:
    first_seq: int
    path: Path
    count: int = 0
    size: int = 0

    @property
    def last_seq(self) -> int:
        return self.first_seq + self.count - 1


def _fsync_and_close(fds: list[int], directory: Path | None) -> None:
    try:
        for fd in fds:
            os.fsync(fd)
        if directory is not None:
            fsync_dir(directory)
    finally:
        for fd in fds:
            os.close(fd)


class Spool:
    def __init__(
        self, directory: Path, *, max_bytes: int, segment_bytes: int, fsync: FsyncPolicy = "interval"
    ) -> None:
        if max_bytes <= MAX_EVENT_BYTES:
            raise ValueError(f"spool max_bytes must be larger than one event ({MAX_EVENT_BYTES} bytes)")
        if segment_bytes < 1:
            raise ValueError("spool segment_bytes must be positive")
        self._dir = directory
        self._max_bytes = max_bytes
        self._segment_bytes = segment_bytes
        self._fsync: FsyncPolicy = fsync
        self._segments: list[_Segment] = []
        self._fd: int | None = None  # append descriptor of the newest segment
        self._opened = False
        self._stream = ""
        self._acked = 0
        self._last_seq = 0
        self._size = 0
        self._full_errors = 0
        self._unsynced_fds: list[int] = []  # rotated-out segments written since the last sync
        self._active_dirty = False
        self._dir_dirty = False
        self._state_lock = asyncio.Lock()
        self._read_hint: tuple[int, int, int] | None = None  # (segment first_seq, seq, byte offset)

    @property
    def directory(self) -> Path:
        return self._dir

    @property
    def stream(self) -> str:
        return self._stream

    @property
    def acked_seq(self) -> int:
        return self._acked

    @property
    def last_seq(self) -> int:
        return self._last_seq

    @property
    def pending(self) -> int:
        return self._last_seq - self._acked

    @property
    def size_bytes(self) -> int:
        return self._size

    @property
    def full_errors(self) -> int:
        return self._full_errors

    # --- opening and recovery ------------------------------------------------------------------

    def open(self) -> None:
        """Load the state and check every segment; raises SourceErrors naming the file and line of a
        damaged record (other than a torn last record, which is cut off)."""
        if self._opened:
            raise RuntimeError("spool already open")
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        found = self._list_segments()
        state = self._read_state()
        if state is None:
            if found:
                problem = (
                    f"missing while {len(found)} segment files exist; without it nobody knows which "
                    "events the manager already has. Move the .seg files away to start a new spool."
                )
                raise SourceErrors([SourceError(str(self._dir / STATE_FILE), None, None, problem)])
            self._stream = secrets.token_hex(16)
            self._write_state(self._stream, 0)
        else:
            self._stream, self._acked = state
        segments: list[_Segment] = []
        for i, (first, path) in enumerate(found):
            segment = self._scan(path, first, is_last=(i == len(found) - 1))
            if segment.count:
                segments.append(segment)
            else:  # created just before a crash, or emptied by cutting off a torn record
                path.unlink()
        self._check_contiguous(segments)
        self._segments = segments
        self._last_seq = max(self._acked, self._segments[-1].last_seq if self._segments else 0)
        self._size = sum(s.size for s in self._segments)
        self._drop_acked_segments()
        self._opened = True

    def _list_segments(self) -> list[tuple[int, Path]]:
        found: list[tuple[int, Path]] = []
        bad: list[SourceError] = []
        for path in self._dir.iterdir():
            if path.name == STATE_FILE or path.name.startswith("."):
                continue
            match = _SEGMENT_NAME.fullmatch(path.name)
            if match is None:
                bad.append(SourceError(str(path), None, None, "unexpected file in the spool directory"))
                continue
            found.append((int(match.group(1)), path))
        if bad:
            raise SourceErrors(bad)
        return sorted(found)

    def _read_state(self) -> tuple[str, int] | None:
        path = self._dir / STATE_FILE
        try:
            data: Any = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (ValueError, OSError) as exc:
            raise SourceErrors([SourceError(str(path), None, None, f"cannot read: {exc}")]) from None
        stream = data.get("stream") if isinstance(data, dict) else None
        acked = data.get("acked") if isinstance(data, dict) else None
        if not isinstance(stream, str) or not _STREAM.fullmatch(stream):
            raise SourceErrors([SourceError(str(path), 1, "stream", "must be 32 lowercase hex characters")])
        if not isinstance(acked, int) or isinstance(acked, bool) or acked < 0:
            raise SourceErrors([SourceError(str(path), 1, "acked", "must be a non-negative integer")])
        return stream, acked

    def _write_state(self, stream: str, acked: int) -> None:
        data = json.dumps({"version": 1, "stream": stream, "acked": acked}) + "\n"
        write_atomic(self._dir / STATE_FILE, data.encode("ascii"))

    def _scan(self, path: Path, first_seq: int, *, is_last: bool) -> _Segment:
        data = path.read_bytes()
        segment = _Segment(first_seq, path)
        offset = 0
        while offset < len(data):
            line_no = segment.count + 1
            end = data.find(b"\n", offset)
            problem = (
                "incomplete record (no newline)"
                if end < 0
                else _record_problem(data[offset:end], segment.first_seq + segment.count)
            )
            if problem is not None:
                if is_last and not _has_record_after(data, end):
                    log.warning(
                        "%s:%d: %s at the end of the spool (the agent stopped mid-write); cut off",
                        path,
                        line_no,
                        problem,
                    )
                    os.truncate(path, offset)
                    break
                raise SourceErrors([SourceError(str(path), line_no, "record", problem)])
            segment.count += 1
            offset = end + 1
        segment.size = offset
        return segment

    def _check_contiguous(self, segments: list[_Segment]) -> None:
        previous: _Segment | None = None
        for segment in segments:
            if previous is None and segment.first_seq > self._acked + 1:
                missing = self._acked + 1
                problem = (
                    f"starts at seq {segment.first_seq}, but {missing} is neither acknowledged nor spooled"
                )
            elif previous is not None and segment.first_seq != previous.last_seq + 1:
                problem = (
                    f"starts at seq {segment.first_seq}, but {previous.path.name} ends at {previous.last_seq}"
                )
            else:
                previous = segment
                continue
            raise SourceErrors([SourceError(str(segment.path), 1, "record", problem)])

    # --- writing -------------------------------------------------------------------------------

    def append(self, location: str, text: str, log_format: str, record: dict[str, Any] | None = None) -> int:
        """Store one event and return its sequence number (see the fsync policy in the module doc)."""
        if not self._opened:
            raise RuntimeError("spool is not open")
        seq = self._last_seq + 1
        try:
            obj = event_json(seq, location, text, log_format, record)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"event record cannot be sent as JSON: {exc}") from exc
        if len(obj) > MAX_EVENT_BYTES:
            raise EventTooLargeError(
                f"event from {location[:200]!r} is {len(obj)} bytes as JSON; the limit is {MAX_EVENT_BYTES}"
            )
        line = obj + b"\n"
        if self._size + len(line) > self._max_bytes:
            self._full_errors += 1
            raise SpoolFullError(
                f"spool {self._dir} is full ({self._size} of {self._max_bytes} bytes, {self.pending} events "
                "waiting for the manager); the event was dropped"
            )
        segment, fd = self._writable_segment(seq, len(line))
        written = 0
        try:
            while written < len(line):
                written += os.write(fd, line[written:])
        except OSError as exc:
            if written:
                os.ftruncate(fd, segment.size)  # leave no partial record behind
            raise OSError(exc.errno, f"cannot write to spool file {segment.path}: {exc.strerror}") from exc
        segment.count += 1
        segment.size += len(line)
        self._size += len(line)
        self._last_seq = seq
        self._active_dirty = True
        return seq

    def _writable_segment(self, seq: int, line_size: int) -> tuple[_Segment, int]:
        active = self._segments[-1] if self._segments and self._fd is not None else None
        if active is not None and self._fd is not None:
            if active.count == 0 or active.size + line_size <= self._segment_bytes:
                return active, self._fd
            self._retire_active_fd()
        path = self._dir / f"{seq:020d}.seg"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        segment = _Segment(seq, path)
        self._segments.append(segment)
        self._dir_dirty = True
        return segment, self._fd

    def _retire_active_fd(self) -> None:
        if self._fd is None:
            return
        if self._active_dirty and self._fsync != "never":
            self._unsynced_fds.append(self._fd)  # closed by the next sync, after its fsync
        else:
            os.close(self._fd)
        self._fd = None
        self._active_dirty = False

    async def sync(self) -> None:
        """fsync what was written since the last sync (in a worker thread; the loop keeps running)."""
        if self._fsync == "never":
            return
        fds, self._unsynced_fds = self._unsynced_fds, []
        if self._active_dirty and self._fd is not None:
            fds.append(os.dup(self._fd))  # a private descriptor: the segment may be closed meanwhile
            self._active_dirty = False
        directory = self._dir if self._dir_dirty else None
        self._dir_dirty = False
        if fds or directory is not None:
            await asyncio.to_thread(_fsync_and_close, fds, directory)

    # --- reading -------------------------------------------------------------------------------

    def read(self, first_seq: int, max_events: int, max_bytes: int) -> list[bytes]:
        """Event objects from ``first_seq`` on, as many as fit in ``max_bytes`` when joined by commas."""
        out: list[bytes] = []
        total = 0
        seq = max(first_seq, self._acked + 1)
        while len(out) < max_events and seq <= self._last_seq:
            segment = self._segment_of(seq)
            offset = self._offset_of(segment, seq)
            with open(segment.path, "rb") as f:
                f.seek(offset)
                chunk = f.read(min(segment.size - offset, max_bytes - total + 1))
            start = 0
            while len(out) < max_events:
                end = chunk.find(b"\n", start)
                cost = end - start + (1 if out else 0)
                if end < 0 or total + cost > max_bytes:
                    break
                out.append(chunk[start:end])
                total += cost
                start = end + 1
                seq += 1
            self._read_hint = (segment.first_seq, seq, offset + start)
            if start == 0 or seq <= segment.last_seq:
                break  # the budget is used up (or the first event alone does not fit)
        return out

    def _segment_of(self, seq: int) -> _Segment:
        index = bisect.bisect_right([s.first_seq for s in self._segments], seq) - 1
        if index < 0 or seq > self._segments[index].last_seq:
            raise RuntimeError(f"spool has no event {seq}")  # a bug: callers read only unacked, spooled seqs
        return self._segments[index]

    def _offset_of(self, segment: _Segment, seq: int) -> int:
        if self._read_hint is not None and self._read_hint[:2] == (segment.first_seq, seq):
            return self._read_hint[2]
        with open(segment.path, "rb") as f:
            data = f.read(segment.size)
        offset = 0
        for _ in range(seq - segment.first_seq):
            offset = data.index(b"\n", offset) + 1
        return offset

    # --- acknowledgements ----------------------------------------------------------------------

    async def acknowledge(self, seq: int) -> None:
        """The manager has persisted everything up to ``seq``: record it, then delete finished segments."""
        if seq > self._last_seq:
            raise ProtocolError(
                "bad_ack", f"manager acknowledged seq {seq}, but the spool only reached {self._last_seq}"
            )
        async with self._state_lock:
            if seq <= self._acked:
                return
            await asyncio.to_thread(self._write_state, self._stream, seq)
            self._acked = seq
        self._drop_acked_segments()

    async def new_stream(self) -> None:
        """Start a new stream ID, so that the manager forgets the sequence numbers it has seen from us."""
        async with self._state_lock:
            stream = secrets.token_hex(16)
            await asyncio.to_thread(self._write_state, stream, self._acked)
            self._stream = stream

    def _drop_acked_segments(self) -> None:
        while self._segments and self._segments[0].count and self._segments[0].last_seq <= self._acked:
            segment = self._segments.pop(0)
            if not self._segments and self._fd is not None:
                os.close(self._fd)  # acknowledged data needs no fsync
                self._fd = None
                self._active_dirty = False
            segment.path.unlink(missing_ok=True)
            self._size -= segment.size
            if self._read_hint is not None and self._read_hint[0] == segment.first_seq:
                self._read_hint = None

    async def close(self) -> None:
        if not self._opened:
            return
        await self.sync()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        for fd in self._unsynced_fds:
            os.close(fd)
        self._unsynced_fds = []
        self._opened = False


def _record_problem(raw: bytes, expected_seq: int) -> str | None:
    try:
        event = event_from_object(json.loads(raw), "record")
    except (ValueError, RecursionError):
        return "not a JSON record"
    except ProtocolError as exc:
        return str(exc)
    if event.seq != expected_seq:
        return f"has seq {event.seq}, expected {expected_seq}"
    return None


def _has_record_after(data: bytes, end: int) -> bool:
    """Whether a well-formed record follows position ``end`` (then the damage is not a torn tail)."""
    if end < 0:
        return False
    for raw in data[end + 1 :].split(b"\n"):
        try:
            if isinstance(json.loads(raw), dict):
                return True
        except (ValueError, RecursionError):
            continue
    return False
