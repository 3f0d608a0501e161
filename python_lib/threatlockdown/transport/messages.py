"""Protocol messages: what each side sends, and strict checks of what arrives."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import ProtocolError
from .framing import MAX_FRAME_BYTES, dumps

PROTOCOL_VERSION = 1

# An events frame is this prefix, the events' JSON objects joined by commas, and this suffix.
EVENTS_PREFIX = b'{"type":"events","events":['
EVENTS_SUFFIX = b"]}"
# The largest single event (its JSON object) that still fits in a frame on its own.
MAX_EVENT_BYTES = MAX_FRAME_BYTES - len(EVENTS_PREFIX) - len(EVENTS_SUFFIX)

_STREAM = re.compile(r"[0-9a-f]{32}")
_EVENT_FIELDS = frozenset(("seq", "location", "text", "log_format", "record"))


@dataclass(frozen=True)
class AgentIdentity:
    """Who sent events: the ID and name from client.keys, and the address the agent connected from
    (what alerts carry as agent.id, agent.name and agent.ip)."""

    id: str
    name: str
    ip: str


@dataclass(frozen=True)
class AgentEvent:
    """One log record as the agent read it. ``record`` holds structured fields (JSON logs, journald)."""

    seq: int
    location: str
    text: str
    log_format: str
    record: dict[str, Any] | None = None


def event_json(seq: int, location: str, text: str, log_format: str, record: dict[str, Any] | None) -> bytes:
    fields: dict[str, Any] = {"seq": seq, "location": location, "text": text, "log_format": log_format}
    if record is not None:
        fields["record"] = record
    return dumps(fields)


def events_payload(event_objects: list[bytes]) -> bytes:
    return EVENTS_PREFIX + b",".join(event_objects) + EVENTS_SUFFIX


def require_type(message: dict[str, Any], expected: str) -> None:
    if message["type"] != expected:
        raise ProtocolError(
            "unexpected_message", f"expected a {expected!r} message, got {message['type'][:40]!r}"
        )


def get_str(message: dict[str, Any], name: str, *, max_len: int = 4096) -> str:
    value = message.get(name)
    if not isinstance(value, str) or len(value) > max_len:
        raise ProtocolError("bad_message", f"{message['type'][:40]!r} message needs a string {name!r}")
    return value


def get_int(message: dict[str, Any], name: str) -> int:
    value = message.get(name)
    # bool is an int subclass in Python; true/false are not sequence numbers.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProtocolError(
            "bad_message", f"{message['type'][:40]!r} message needs a non-negative integer {name!r}"
        )
    return value


def get_stream(message: dict[str, Any]) -> str:
    stream = get_str(message, "stream", max_len=64)
    if not _STREAM.fullmatch(stream):
        raise ProtocolError("bad_message", "stream must be 32 lowercase hex characters")
    return stream


def event_from_object(item: object, where: str) -> AgentEvent:
    """Check one event object (from a frame, or from a spool file when the agent restarts)."""
    if not isinstance(item, dict) or not _EVENT_FIELDS.issuperset(item):
        raise ProtocolError(
            "bad_message", f"{where} is not an object with only the fields {sorted(_EVENT_FIELDS)}"
        )
    seq, location, text, log_format = (item.get(k) for k in ("seq", "location", "text", "log_format"))
    record = item.get("record")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise ProtocolError("bad_message", f"{where}: 'seq' must be a positive integer")
    if not (isinstance(location, str) and isinstance(text, str) and isinstance(log_format, str)):
        raise ProtocolError("bad_message", f"{where}: 'location', 'text' and 'log_format' must be strings")
    if not (record is None or isinstance(record, dict)):
        raise ProtocolError("bad_message", f"{where}: 'record' must be an object")
    return AgentEvent(seq, location, text, log_format, record)


def parse_events(message: dict[str, Any]) -> list[AgentEvent]:
    """The events of an ``events`` frame, which must be non-empty and strictly increasing in seq."""
    items = message.get("events")
    if not isinstance(items, list) or not items:
        raise ProtocolError("bad_message", "'events' must be a non-empty list")
    events: list[AgentEvent] = []
    for index, item in enumerate(items):
        event = event_from_object(item, f"event #{index}")
        if events and event.seq <= events[-1].seq:
            raise ProtocolError(
                "sequence_error", f"event #{index} seq {event.seq} does not follow {events[-1].seq}"
            )
        events.append(event)
    return events
