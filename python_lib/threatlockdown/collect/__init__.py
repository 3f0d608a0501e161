"""Log collectors for the manager daemon: files, journald and syslog listeners feeding one bounded queue."""

from __future__ import annotations

from .build import build_collectors
from .event import MAX_EVENT_BYTES, Collector, RawEvent

__all__ = ["MAX_EVENT_BYTES", "Collector", "RawEvent", "build_collectors"]
