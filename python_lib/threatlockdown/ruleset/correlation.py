"""Memory for frequency rules (``if_matched_sid``/``if_matched_group`` with ``frequency``).

Each frequency rule keeps its own earlier events, bucketed by what the rule requires to be equal
(``same_source_ip``, ``same_user``, ``same_field``, and the agent unless ``global_frequency``), so a check
reads only the events that can count instead of scanning every attacker's history. Memory is bounded:
entries older than the rule's timeframe are dropped, each bucket holds a few times the frequency, and the
number of buckets is capped (least recently fed first out).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

from .conditions import EVENT_VALUES as _EVENT_VALUES
from .conditions import event_value
from .event import Event
from .rules import Rule

MAX_BUCKETS = 50_000
BUCKET_SLACK = 2  # a bucket keeps up to frequency * this many events


@dataclass(slots=True)
class Remembered:
    time: float
    event: Event
    consumed: bool = False  # used by a firing of this rule: ends later searches, as in Wazuh


@dataclass
class Correlator:
    rule: Rule
    # OrderedDict, not dict: evicting the oldest key of a plain dict again and again makes finding the
    # next oldest scan past every deleted slot, so a flood of new sources cost O(buckets) per event.
    buckets: OrderedDict[tuple[str, ...], deque[Remembered]] = field(default_factory=OrderedDict)

    # What the bucket key is made of, worked out once: (field name, is a plain decoded field).
    _parts: tuple[tuple[str, bool], ...] = field(init=False, default=())
    needed: int = field(init=False, default=1)  # earlier events needed: frequency counts the current one
    _check_different: bool = field(init=False, default=False)  # different_* elements to test
    # The key is (agent, one decoded field), as for same_source_ip: that field's name.
    _single_field: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        rule = self.rule
        names = [*rule.same, *rule.same_fields]
        self._parts = tuple(
            (name, i >= len(rule.same) or (name != "agent" and name not in _EVENT_VALUES))
            for i, name in enumerate(names)
        )
        self.needed = max((rule.frequency or 2) - 1, 1)
        self._check_different = bool(rule.different or rule.different_fields)
        if not rule.global_frequency and len(self._parts) == 1 and self._parts[0][1]:
            self._single_field = self._parts[0][0]

    def key(self, event: Event) -> tuple[str, ...] | None:
        """The bucket an event belongs to; None when a required value is missing (it can never count)."""
        single = self._single_field
        if single is not None:
            found = event.fields.get(single)
            return (event.agent_id, found) if found else None
        parts: list[str] = [] if self.rule.global_frequency else [event.agent_id]
        fields = event.fields
        for name, plain in self._parts:
            if plain:
                value: str | None = fields.get(name)
            else:
                value = event.agent_id if name == "agent" else event_value(event, name)
            if not value:
                return None
            parts.append(value)
        return tuple(parts)

    def add(self, event: Event, now: float) -> None:
        key = self.key(event)
        if key is None:
            return
        buckets = self.buckets
        bucket = buckets.get(key)
        if bucket is None:
            bucket = deque(maxlen=max(self.needed * BUCKET_SLACK, 8))
            buckets[key] = bucket
        else:
            buckets.move_to_end(key)  # order is least recently fed first
        timeframe = self.rule.timeframe
        while bucket and now - bucket[0].time > timeframe:
            bucket.popleft()
        bucket.append(Remembered(now, event))
        # _evict's first test written out: usually the least recently fed bucket is still live.
        if len(buckets) <= MAX_BUCKETS:
            for oldest in buckets.values():
                if oldest and now - oldest[-1].time <= timeframe:
                    return
                break
        self._evict(now)

    def _evict(self, now: float) -> None:
        buckets = self.buckets
        timeframe = self.rule.timeframe
        # Drop the least recently fed bucket while it is stale or while there are too many.
        while buckets:
            oldest_key = next(iter(buckets))
            oldest = buckets[oldest_key]
            if len(buckets) > MAX_BUCKETS or not oldest or now - oldest[-1].time > timeframe:
                del buckets[oldest_key]
            else:
                return

    def search(self, event: Event, now: float) -> list[Event] | None:
        """Earlier events completing the frequency with ``event`` (newest first), marked as used; or None."""
        key = self.key(event)
        if key is None:
            return None
        bucket = self.buckets.get(key)
        if not bucket:
            return None
        rule = self.rule
        needed = self.needed
        timeframe = rule.timeframe
        check_different = self._check_different
        found: list[Remembered] = []
        for rec in reversed(bucket):
            if rec.consumed or now - rec.time > timeframe:
                break
            if check_different and not _differs(rule, event, rec.event):
                continue
            found.append(rec)
            if len(found) >= needed:
                for used in found:
                    used.consumed = True
                return [r.event for r in found]
        return None

    def size(self) -> int:
        return sum(len(b) for b in self.buckets.values())


def _differs(rule: Rule, cur: Event, old: Event) -> bool:
    for name in rule.different:
        a = cur.agent_id if name == "agent" else event_value(cur, name)
        b = old.agent_id if name == "agent" else event_value(old, name)
        if a and a == b:
            return False
    for name in rule.different_fields:
        a = cur.fields.get(name)
        if a and a == old.fields.get(name):
            return False
    return True
