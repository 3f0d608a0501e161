"""Conditions a rule checks on the current event, each a small object with ``test(ctx)``."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from .event import Event
from .lists import AddressList, KeyValueList
from .osregex import OsMatch, OsRegex

Pattern = OsMatch | OsRegex
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class EvalContext(Protocol):
    """Per-event values computed once and shared by every rule check (the engine's walk)."""

    @property
    def event(self) -> Event: ...

    @property
    def lowered(self) -> str: ...  # event.log.lower(), for OS_Match

    @property
    def now(self) -> float: ...


class Condition(Protocol):
    def test(self, ctx: EvalContext) -> bool: ...


def pattern_test(pattern: Pattern, text: str, lowered: str | None = None) -> bool:
    if isinstance(pattern, OsMatch):
        return pattern.matches(lowered if lowered is not None else text.lower())
    return pattern.search(text) is not None


@dataclass(frozen=True, slots=True)
class LogPattern:
    """<match> / <regex>: on the message after the header."""

    pattern: Pattern
    negate: bool = False
    kind: str = "osmatch"  # osmatch | osregex | pcre2: which syntax ``pattern.source`` is in

    def test(self, ctx: EvalContext) -> bool:
        pattern = self.pattern  # pattern_test inlined: this runs for most rules of most events
        if isinstance(pattern, OsMatch):
            return pattern.matches(ctx.lowered) != self.negate
        return (pattern.search(ctx.event.log) is not None) != self.negate


@dataclass(frozen=True, slots=True)
class FieldPattern:
    """<program_name>, <hostname>, <srcport>, <id>, <url>, <field name=...> and the like."""

    field: str  # key in event.fields, or one of the Event attributes below
    pattern: Pattern
    negate: bool = False

    def test(self, ctx: EvalContext) -> bool:
        value = event_value(ctx.event, self.field)
        if value is None:
            return False
        return pattern_test(self.pattern, value) != self.negate


# Names event_value takes from the Event itself; every other name is a decoded field.
EVENT_VALUES = frozenset({"program_name", "hostname", "location", "user", "full_log"})


def event_value(event: Event, name: str) -> str | None:
    """The value a rule element compares with; None when the event has no such value."""
    if name == "program_name":
        return event.program_name or None
    if name == "hostname":
        return (event.agent_name or event.hostname) or None
    if name == "location":
        return event.location or None
    if name == "user":
        return event.user or None
    if name == "full_log":
        return event.full_log
    value = event.fields.get(name)
    return value if value else None


@dataclass(frozen=True, slots=True)
class DecodedAs:
    name: str

    def test(self, ctx: EvalContext) -> bool:
        return ctx.event.decoder_id == self.name


@dataclass(frozen=True, slots=True)
class IpCondition:
    """<srcip>/<dstip>: any of the positive networks, none of the negated ones."""

    field: str
    positive: tuple[Network, ...]
    negative: tuple[Network, ...]

    def test(self, ctx: EvalContext) -> bool:
        raw = ctx.event.fields.get(self.field)
        if not raw:
            return False
        ip = parse_ip(raw)
        if ip is None:
            return False
        if any(ip in n for n in self.negative):
            return False
        return not self.positive or any(ip in n for n in self.positive)


def parse_ip(raw: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = raw.strip()
    if text.lower().startswith("::ffff:") and "." in text:
        text = text[7:]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


_TIME = re.compile(r"^\s*(\d{1,2})(?::(\d{2}))?\s*(am|pm)?\s*$", re.I)
_DAYS = {
    "sunday": 6,
    "monday": 0,
    "tuesday": 1,
    "wednesday": 2,
    "thursday": 3,
    "friday": 4,
    "saturday": 5,
    "sun": 6,
    "mon": 0,
    "tue": 1,
    "wed": 2,
    "thu": 3,
    "fri": 4,
    "sat": 5,
}


def parse_clock(text: str) -> int | None:
    """'6 pm', '18:30', '8:30 am' -> minutes after midnight."""
    m = _TIME.match(text)
    if not m:
        return None
    hour, minute, ampm = int(m.group(1)), int(m.group(2) or 0), (m.group(3) or "").lower()
    if ampm == "pm" and hour < 12:
        hour += 12
    elif ampm == "am" and hour == 12:
        hour = 0
    if hour > 23 or minute > 59:
        return None
    return hour * 60 + minute


@dataclass(frozen=True, slots=True)
class TimeOfDay:
    start: int
    end: int
    negate: bool

    def test(self, ctx: EvalContext) -> bool:
        t = datetime.fromtimestamp(ctx.now)
        minute = t.hour * 60 + t.minute
        inside = (
            self.start <= minute < self.end
            if self.start <= self.end
            else (minute >= self.start or minute < self.end)
        )
        return inside != self.negate


def parse_weekdays(text: str) -> frozenset[int] | None:
    days: set[int] = set()
    for word in re.split(r"[\s,]+", text.strip().lower()):
        if not word:
            continue
        if word == "weekdays":
            days.update(range(5))
        elif word == "weekends":
            days.update((5, 6))
        elif word in _DAYS:
            days.add(_DAYS[word])
        else:
            return None
    return frozenset(days) if days else None


@dataclass(frozen=True, slots=True)
class WeekDay:
    days: frozenset[int]
    negate: bool

    def test(self, ctx: EvalContext) -> bool:
        return (datetime.fromtimestamp(ctx.now).weekday() in self.days) != self.negate


@dataclass(frozen=True, slots=True)
class ListCondition:
    """<list field="srcip" lookup="address_match_key">path</list> (CDB-style lists)."""

    field: str
    lookup: str
    table: KeyValueList | AddressList
    check_value: Pattern | None

    def test(self, ctx: EvalContext) -> bool:
        value = event_value(ctx.event, self.field)
        if value is None:
            return False
        lookup = self.lookup
        if isinstance(self.table, AddressList):
            ip = parse_ip(value)
            found = self.table.lookup(ip) if ip is not None else None
        else:
            found = self.table.lookup(value)
        if lookup in ("match_key", "address_match_key"):
            return found is not None
        if lookup in ("not_match_key", "not_address_match_key"):
            return found is None
        # *_match_key_value: the key exists and its value matches check_value
        if found is None:
            return False
        return self.check_value is None or pattern_test(self.check_value, found)
