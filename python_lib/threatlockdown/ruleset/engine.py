"""Rule evaluation with Wazuh 4.x semantics, and the per-session state it needs.

State (fired counters, ignore windows, correlation memory) belongs to one engine instance, so logtest
sessions, replays and the daemon never share it by accident. Correlation memory is bounded twice: entries
older than the longest timeframe that reads them are dropped, and each list is capped.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from .conditions import EvalContext, event_value
from .event import Event
from .rules import Rule, RuleSet

MAX_EVENTS_PER_LIST = 20_000


@dataclass(slots=True)
class Remembered:
    """An earlier event kept for frequency rules."""

    time: float
    event: Event
    consumed_by: set[int] | None = None


@dataclass(slots=True)
class Match:
    """The outcome of evaluating one event."""

    rule: Rule | None  # the final rule (level 0 included); None when nothing matched
    firedtimes: int = 0
    previous: list[Event] = field(default_factory=list)  # correlated events, newest first (as Wazuh)
    alert: bool = False  # a rule of level > 0 matched (before log_alert_level filtering)


@dataclass
class _History:
    items: deque[Remembered]
    horizon: int  # seconds kept: the longest timeframe of the rules reading this list


@dataclass
class RuleEngine:
    ruleset: RuleSet
    firedtimes: dict[int, int] = field(default_factory=dict)
    ignored_since: dict[int, float] = field(default_factory=dict)
    by_sid: dict[int, _History] = field(default_factory=dict)
    by_group: dict[str, _History] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for rule in self.ruleset.rules.values():
            if rule.if_matched_sid is not None:
                self._history(self.by_sid, rule.if_matched_sid, rule.timeframe)
            if rule.if_matched_group is not None:
                self._history(self.by_group, rule.if_matched_group, rule.timeframe)

    @staticmethod
    def _history(table: dict, key: object, horizon: int) -> None:  # type: ignore[type-arg]
        hist = table.get(key)
        if hist is None:
            table[key] = _History(deque(maxlen=MAX_EVENTS_PER_LIST), horizon)
        else:
            hist.horizon = max(hist.horizon, horizon)

    # ------------------------------------------------------------ evaluation

    def evaluate(self, event: Event, now: float, lowered: str | None = None) -> Match:
        ctx = EvalContext(event, event.log.lower() if lowered is None else lowered, now)
        walk = _Walk(self, ctx)
        category = "syslog"
        final: Rule | None = None
        lowered_log = ctx.lowered
        for root in self.ruleset.roots:
            if root.category is not None and root.category != category:
                continue
            quick = root.quick
            if quick is not None and not _any_in(quick, lowered_log):
                continue
            final = walk.check(root)
            if final is not None:
                break
        if final is None:
            return Match(None)
        if final.level == 0:
            return Match(final)
        if final.ignore:
            since = self.ignored_since.get(final.sid)
            if since is None:
                self.ignored_since[final.sid] = now
            elif now - since < final.ignore:
                # Inside the ignore window Wazuh reports the parent rule instead.
                if walk.parent_of_final is None:
                    return Match(None)
                final = walk.parent_of_final
                walk.previous = []
            else:
                self.ignored_since[final.sid] = now
        count = self.firedtimes.get(final.sid, 0) + 1
        self.firedtimes[final.sid] = count
        self._remember(final, event, now)
        return Match(final, count, walk.previous, alert=True)

    def _remember(self, rule: Rule, event: Event, now: float) -> None:
        hist = self.by_sid.get(rule.sid)
        if hist is not None:
            _append(hist, Remembered(now, event), now)
        if self.by_group:
            for group in rule.groups:
                ghist = self.by_group.get(group)
                if ghist is not None:
                    _append(ghist, Remembered(now, event), now)

    def correlate(self, rule: Rule, ctx: EvalContext) -> list[Event] | None:
        """Earlier events that complete ``rule``'s frequency with the current one, or None."""
        if rule.if_matched_sid is not None:
            hist = self.by_sid.get(rule.if_matched_sid)
        else:
            hist = self.by_group.get(rule.if_matched_group or "")
        if hist is None:
            return None
        needed = (rule.frequency or 2) - 1
        now, cur = ctx.now, ctx.event
        found: list[Remembered] = []
        for rec in reversed(hist.items):
            if now - rec.time > rule.timeframe:
                break
            if rec.consumed_by is not None and rule.sid in rec.consumed_by:
                break  # events used by an earlier firing of this rule end the search
            if not rule.global_frequency and rec.event.agent_id != cur.agent_id:
                continue
            if not _same_context(rule, cur, rec.event):
                continue
            found.append(rec)
            if len(found) >= needed:
                for used in found:
                    if used.consumed_by is None:
                        used.consumed_by = set()
                    used.consumed_by.add(rule.sid)
                return [r.event for r in found]
        return None


def _any_in(needles: tuple[str, ...], text: str) -> bool:
    for needle in needles:  # noqa: SIM110 - a plain loop is faster than any() on this hot path
        if needle in text:
            return True
    return False


def _append(hist: _History, rec: Remembered, now: float) -> None:
    items = hist.items
    while items and now - items[0].time > hist.horizon:
        items.popleft()
    items.append(rec)


def _same_context(rule: Rule, cur: Event, old: Event) -> bool:
    for name in rule.same:
        a = _value(cur, name)
        if not a or a != _value(old, name):
            return False
    for name in rule.different:
        a = _value(cur, name)
        if a and a == _value(old, name):
            return False
    for name in rule.same_fields:
        a = cur.fields.get(name)
        if not a or a != old.fields.get(name):
            return False
    for name in rule.different_fields:
        a = cur.fields.get(name)
        if a and a == old.fields.get(name):
            return False
    return True


def _value(event: Event, name: str) -> str | None:
    if name == "agent":
        return event.agent_id
    return event_value(event, name)


class _Walk:
    """One descent through the tree for one event."""

    __slots__ = ("ctx", "engine", "parent_of_final", "previous")

    def __init__(self, engine: RuleEngine, ctx: EvalContext) -> None:
        self.engine = engine
        self.ctx = ctx
        self.parent_of_final: Rule | None = None
        self.previous: list[Event] = []

    def check(self, rule: Rule) -> Rule | None:
        """``rule`` and its subtree; the caller has already applied ``rule.quick``."""
        ctx = self.ctx
        for cond in rule.conditions:
            if not cond.test(ctx):
                return None
        if rule.if_matched_sid is not None or rule.if_matched_group is not None:
            previous = self.engine.correlate(rule, ctx)
            if previous is None:
                return None
            self.previous = previous
        lowered = ctx.lowered
        for child in rule.children:
            quick = child.quick
            if quick is not None:
                # Inlined literal pre-check: most siblings are rejected here without a call.
                for needle in quick:
                    if needle in lowered:
                        break
                else:
                    continue
            hit = self.check(child)
            if hit is not None:
                if self.parent_of_final is None:
                    self.parent_of_final = rule
                return hit
        if rule.noalert:
            return None
        return rule
