"""Cutting a byte stream into lines, remembering where each one ends."""

from __future__ import annotations

from dataclasses import dataclass

from .event import MAX_EVENT_BYTES


@dataclass(frozen=True, slots=True)
class Line:
    data: bytes  # without the newline; at most the splitter's max_bytes
    end: int  # stream offset just after the newline: where reading resumes after this line
    cut: int = 0  # bytes dropped because the line was longer than max_bytes


class LineSplitter:
    """Complete lines from chunks; a partial last line waits for its newline.

    Memory stays bounded: of an over-long line only the first ``max_bytes`` are kept (Wazuh also
    sends the start of such a line and discards the rest up to the newline).
    """

    def __init__(self, start: int = 0, max_bytes: int = MAX_EVENT_BYTES) -> None:
        self._start = start  # stream offset of the first byte of the unfinished line
        self._buf = bytearray()
        self._dropped = 0
        self._max = max_bytes

    @property
    def max_bytes(self) -> int:
        return self._max

    @property
    def position(self) -> int:
        """Offset after the last complete line."""
        return self._start

    @property
    def pending(self) -> int:
        """Bytes of an unfinished line received so far."""
        return len(self._buf) + self._dropped

    def feed(self, chunk: bytes) -> list[Line]:
        lines: list[Line] = []
        pos = 0
        while True:
            nl = chunk.find(b"\n", pos)
            if nl < 0:
                break
            if not self._buf and not self._dropped and nl - pos <= self._max:
                # Fast path: the whole line is in this chunk.
                end = self._start + nl - pos + 1
                lines.append(Line(chunk[pos:nl], end))
                self._start = end
            else:
                self._keep(chunk, pos, nl)
                lines.append(self._finish(1))
            pos = nl + 1
        if pos < len(chunk):
            self._keep(chunk, pos, len(chunk))
        return lines

    def flush_partial(self) -> Line | None:
        """The unfinished line as a line of its own, for a stream that will not grow any more."""
        if not self.pending:
            return None
        return self._finish(0)

    def _keep(self, chunk: bytes, start: int, stop: int) -> None:
        room = self._max - len(self._buf)
        take = min(room, stop - start)
        if take > 0:
            self._buf += chunk[start : start + take]
        self._dropped += stop - start - max(take, 0)

    def _finish(self, newline: int) -> Line:
        end = self._start + len(self._buf) + self._dropped + newline
        line = Line(bytes(self._buf), end, self._dropped)
        self._buf.clear()
        self._dropped = 0
        self._start = end
        return line
