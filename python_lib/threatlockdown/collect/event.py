"""What every collector hands to analysis, and the shape every collector has."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

# Wazuh's OS_MAXSTR: the longest message analysis accepts. Longer lines are cut, not split.
MAX_EVENT_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class RawEvent:
    """One log message as read, before any decoding."""

    location: str  # file path, "journald", or the sender's IP address for remote syslog
    text: str  # one message: UTF-8 decoded with replacement, NUL kept, at most MAX_EVENT_BYTES bytes
    log_format: str  # "syslog", "json", "journald", "multi-line", ...
    record: Mapping[str, Any] | None = None  # the journald JSON record when log_format == "journald"
    source_ip: str | None = None  # remote sender
    source: str = ""  # the name of the collector that read it (status counts events per source)
    # Call once the event is durably processed. Saved positions move only through acks, so an event
    # that was never acked is read again after a restart. Call it from the event loop's thread.
    ack: Callable[[], None] | None = None


class Collector(Protocol):
    """A source of RawEvents; the daemon runs each one as a task."""

    name: str

    async def run(self, out: asyncio.Queue[RawEvent]) -> None:
        """Collect until cancelled; ``await out.put()`` is the back-pressure."""
        ...

    def stats(self) -> dict[str, int]:
        """Counters: received, dropped, errors and collector-specific ones."""
        ...


def cut_bytes(data: bytes) -> bytes:
    return data if len(data) <= MAX_EVENT_BYTES else data[:MAX_EVENT_BYTES]


def decode_text(data: bytes) -> str:
    """The event text of raw bytes: cut at MAX_EVENT_BYTES, invalid UTF-8 replaced."""
    return cut_bytes(data).decode("utf-8", errors="replace")


def cut_text(text: str) -> str:
    """``text`` limited to MAX_EVENT_BYTES once encoded (a character cut in half becomes U+FFFD)."""
    if len(text) * 4 <= MAX_EVENT_BYTES:
        return text
    return decode_text(text.encode("utf-8", errors="surrogatepass"))
