"""Which <log_format> values the file tailer reads, and how lines become event texts."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Protocol

from .event import MAX_EVENT_BYTES, cut_bytes, decode_text
from .lines import Line

# Formats Wazuh's logcollector reads one line per event with its plain reader (read_syslog).
PLAIN_LINE_FORMATS = frozenset(("syslog", "generic", "apache", "iis", "squid", "snort-fast", "syslog-pipe"))
JSON_FORMAT = "json"
MULTI_LINE = "multi-line"
_MULTI_LINE_N = re.compile(r"multi-line\s*:\s*([0-9]{1,9})\s*")


@dataclass(frozen=True, slots=True)
class FileFormat:
    """How a <localfile> is read: the name events carry and how many lines make one event."""

    event_format: str  # RawEvent.log_format: "syslog", "json", "multi-line", ...
    lines_per_event: int = 1

    def shaper(self) -> Shaper:
        if self.event_format == JSON_FORMAT:
            return JsonShaper()
        if self.event_format == MULTI_LINE:
            return MultiLineShaper(self.lines_per_event)
        return PlainShaper()


def file_format(log_format: str, multiline_lines: int | None) -> FileFormat | None:
    """The FileFormat of a <log_format> value, or None when the file tailer does not read it."""
    if log_format in PLAIN_LINE_FORMATS or log_format == JSON_FORMAT:
        return FileFormat(log_format)
    multi = _MULTI_LINE_N.fullmatch(log_format)
    count = multiline_lines if multiline_lines is not None else int(multi.group(1)) if multi else None
    if (multi is not None or log_format == MULTI_LINE) and count is not None and count >= 1:
        return FileFormat(MULTI_LINE, count)
    return None


@dataclass(frozen=True, slots=True)
class Shaped:
    text: str | None  # None: the line gives no event, but reading still moves past it
    end: int  # stream offset after the last line of this event


class Shaper(Protocol):
    def take(self, line: Line) -> Shaped | None:
        """The result of one more complete line, or None while lines are held for a later event."""
        ...

    def flush(self) -> Shaped | None:
        """Held lines as an event of their own (the file will not grow any more)."""
        ...


class PlainShaper:
    """One line, one event; empty lines give none."""

    def take(self, line: Line) -> Shaped:
        return Shaped(decode_text(line.data) if line.data else None, line.end)

    def flush(self) -> None:
        return None


class JsonShaper:
    """One line, one event, only when the line is a JSON object (Wazuh skips other lines)."""

    def take(self, line: Line) -> Shaped:
        text = decode_text(line.data)
        try:
            value = json.loads(text) if not line.cut else None
        except ValueError:
            value = None
        return Shaped(text if isinstance(value, dict) else None, line.end)

    def flush(self) -> None:
        return None


@dataclass
class MultiLineShaper:
    """``multi-line: N``: every N lines are joined with a space into one event, as Wazuh does."""

    count: int
    _held: list[bytes] = field(default_factory=list)
    _lines: int = 0
    _size: int = 0
    _end: int = 0

    def take(self, line: Line) -> Shaped | None:
        # Bytes past MAX_EVENT_BYTES would be cut anyway; not keeping them bounds memory for large N.
        if self._size <= MAX_EVENT_BYTES:
            self._held.append(line.data)
            self._size += len(line.data) + 1
        self._lines += 1
        self._end = line.end
        if self._lines < self.count:
            return None
        return self.flush()

    def flush(self) -> Shaped | None:
        if not self._lines:
            return None
        text = decode_text(cut_bytes(b" ".join(self._held)))
        self._held.clear()
        self._lines = self._size = 0
        return Shaped(text, self._end)
