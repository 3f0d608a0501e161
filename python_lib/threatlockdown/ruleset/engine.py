"""Rule evaluation with Wazuh 4.x semantics, and the per-session state it needs.

State (fired counters, ignore windows, correlation memory) belongs to one engine instance, so logtest
sessions, replays and the daemon never share it by accident. Correlation memory (correlation.py) is
bounded.

Evaluation has two phases. The *walk* descends the rule tree and finds the final rule; when it only
tested conditions that depend on the decoded message (no correlation, no clock, no host, location or
agent), its outcome is a pure function of (program name, message) and a caller may reuse it for an
identical message (see analysis/linememo.py). *Settling* applies the ignore window, counts firedtimes
and feeds correlation memory; it always runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .conditions import (
    Condition,
    DecodedAs,
    FieldPattern,
    ListCondition,
    LogPattern,
    TimeOfDay,
    WeekDay,
)
from .correlation import Correlator
from .event import Event
from .osregex import OsMatch
from .rules import Rule, RuleSet
from .siblings import SiblingIndex

# Values a condition can read that are not derived from (program name, message): the header's host
# (or the agent's name), the location and the whole line including its header.
CONTEXT_VALUES = frozenset({"hostname", "location", "full_log"})
EVENT_CATEGORY = "syslog"


@dataclass(slots=True)
class Match:
    """The outcome of evaluating one event."""

    rule: Rule | None  # the final rule (level 0 included); None when nothing matched
    firedtimes: int = 0
    previous: list[Event] = field(default_factory=list)  # correlated events, newest first (as Wazuh)
    alert: bool = False  # a rule of level > 0 matched (before log_alert_level filtering)


class Node:
    """A rule as the walk sees it: its checks and its children, precomputed once per engine."""

    __slots__ = (
        "children",
        "conditions",
        "correlator",
        "feeds",
        "index",
        "is_correlation",
        "noalert",
        "quick",
        "rule",
        "volatile",
    )

    def __init__(self, rule: Rule, conditions: tuple[Condition, ...], volatile: bool) -> None:
        self.rule = rule
        self.conditions = conditions
        self.quick = rule.quick
        self.noalert = rule.noalert
        self.is_correlation = rule.is_correlation
        # True when checking this rule reads something outside (program name, message).
        self.volatile = volatile
        self.correlator: Correlator | None = None
        self.children: tuple[Node, ...] = ()
        self.index: SiblingIndex[Node] | None = None
        self.feeds: tuple[Correlator, ...] = ()  # correlators this rule feeds as a final rule


class _Roots:
    """The roots to try for one decoder name: ``head`` in order, then ``tail`` (through its index)."""

    __slots__ = ("head", "index", "tail")

    def __init__(
        self, head: tuple[Node, ...], tail: tuple[Node, ...], index: SiblingIndex[Node] | None
    ) -> None:
        self.head = head
        self.tail = tail
        self.index = index


def _without_decoded_as(node: Node) -> Node:
    """``node`` for use as a root under one decoder name its <decoded_as> conditions all accept."""
    kept = tuple(c for c in node.conditions if not isinstance(c, DecodedAs))
    if len(kept) == len(node.conditions):
        return node
    copy = Node(node.rule, kept, node.volatile)
    copy.correlator, copy.children, copy.index, copy.feeds = (
        node.correlator,
        node.children,
        node.index,
        node.feeds,
    )
    return copy


def _after_quick(conditions: tuple[Condition, ...], quick: tuple[str, ...] | None) -> tuple[Condition, ...]:
    """The conditions still to test once the rule's needle pre-check has passed.

    A node is only ever checked after its ``quick`` test (the index or the sibling loop does it). A
    <match> made only of plain alternatives whose texts are exactly the needles gives the same answer
    as that test, so it is true by then and need not run again.
    """
    if quick is None:
        return conditions
    needles = frozenset(quick)
    return tuple(
        c
        for c in conditions
        if not (
            isinstance(c, LogPattern)
            and not c.negate
            and isinstance(c.pattern, OsMatch)
            and not (c.pattern.always or c.pattern.prefixes or c.pattern.suffixes or c.pattern.equals)
            and frozenset(c.pattern.contains) == needles
        )
    )


def _reads_context(cond: Condition) -> bool:
    if isinstance(cond, TimeOfDay | WeekDay):
        return True
    if isinstance(cond, FieldPattern | ListCondition):
        return cond.field in CONTEXT_VALUES
    return False


@dataclass
class RuleEngine:
    ruleset: RuleSet
    firedtimes: dict[int, int] = field(default_factory=dict)
    ignored_since: dict[int, float] = field(default_factory=dict)
    correlators: dict[int, Correlator] = field(default_factory=dict)
    _nodes: dict[int, Node] = field(default_factory=dict)
    # Roots worth trying for an event, by decoder name: a root whose <decoded_as> names another decoder
    # can never match, so it is left out once instead of being checked for every event.
    _roots_by_decoder: dict[str, _Roots] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rules = self.ruleset.rules
        for rule in rules.values():
            if rule.is_correlation:
                self.correlators[rule.sid] = Correlator(rule)
        for rule in rules.values():
            self._node(rule)
        feeds_sid: dict[int, list[Correlator]] = {}
        feeds_group: dict[str, list[Correlator]] = {}
        for sid, corr in self.correlators.items():
            rule = rules[sid]
            if rule.if_matched_sid is not None:
                feeds_sid.setdefault(rule.if_matched_sid, []).append(corr)
            else:
                feeds_group.setdefault(rule.if_matched_group or "", []).append(corr)
        for node in self._nodes.values():
            rule = node.rule
            # Only an event's final rule feeds correlation (as in Wazuh): by its sid, then its groups.
            fed = list(feeds_sid.get(rule.sid, ()))
            for group in rule.groups:
                fed.extend(feeds_group.get(group, ()))
            node.feeds = tuple(fed)

    def _node(self, rule: Rule) -> Node:
        node = self._nodes.get(rule.sid)
        if node is not None and node.rule is rule:
            return node
        volatile = rule.is_correlation or any(_reads_context(c) for c in rule.conditions)
        node = Node(rule, _after_quick(rule.conditions, rule.quick), volatile)
        node.correlator = self.correlators.get(rule.sid)
        self._nodes[rule.sid] = node
        node.children = tuple(self._node(child) for child in rule.children)
        if SiblingIndex.worth_it(node.children):
            node.index = SiblingIndex(node.children)
        return node

    # ------------------------------------------------------------ evaluation

    def evaluate(self, event: Event, now: float, lowered: str | None = None) -> Match:
        walk = self.walk(event, event.log.lower() if lowered is None else lowered, now)
        return self.settle(event, now, walk.final, walk.parent_of_final, walk.previous)

    def walk(self, event: Event, lowered: str, now: float) -> WalkResult:
        """Find the final rule for ``event``; no engine state changes (correlation searches aside)."""
        walk = WalkResult(event, lowered, now)
        roots = self._roots_by_decoder.get(event.decoder_id)
        if roots is None:
            roots = self._roots_for(event.decoder_id)
        final: Node | None = None
        for root in roots.head:
            final = walk.check(root)
            if final is not None:
                walk.final = final
                return walk
        if roots.index is not None:
            for root in roots.index.candidates(lowered):
                final = walk.check(root)
                if final is not None:
                    break
        else:
            for root in roots.tail:
                quick = root.quick
                if quick is not None and not _any_in(quick, lowered):
                    continue
                final = walk.check(root)
                if final is not None:
                    break
        walk.final = final
        return walk

    def settle(
        self,
        event: Event,
        now: float,
        final: Node | None,
        parent_of_final: Node | None,
        previous: list[Event],
    ) -> Match:
        """The Match for a walk's outcome; counts firedtimes and feeds correlation memory."""
        if final is None:
            return Match(None)
        if final.rule.level == 0:
            return Match(final.rule)
        fired = self.fire(event, now, final, parent_of_final, previous)
        if fired is None:
            return Match(None)
        return Match(fired[0].rule, fired[1], fired[2], alert=True)

    def fire(
        self,
        event: Event,
        now: float,
        final: Node,
        parent_of_final: Node | None,
        previous: list[Event],
    ) -> tuple[Node, int, list[Event]] | None:
        """Settle a walk whose final rule has a level above 0: apply its ignore window, count firedtimes
        and feed correlation memory. Returns the node that fires (the parent inside the ignore window),
        its firedtimes and the correlated events; None when the ignore window leaves nothing to fire.
        """
        rule = final.rule
        if rule.ignore:
            since = self.ignored_since.get(rule.sid)
            if since is None:
                self.ignored_since[rule.sid] = now
            elif now - since < rule.ignore:
                # Inside the ignore window Wazuh reports the parent rule instead.
                if parent_of_final is None:
                    return None
                final = parent_of_final
                rule = final.rule
                previous = []
            else:
                self.ignored_since[rule.sid] = now
        count = self.firedtimes.get(rule.sid, 0) + 1
        self.firedtimes[rule.sid] = count
        for corr in final.feeds:
            corr.add(event, now)
        return final, count, previous

    def _roots_for(self, decoder_id: str) -> _Roots:
        nodes = [
            _without_decoded_as(self._node(r))
            for r in self.ruleset.roots
            # Every event is of category syslog here; a root of another category never applies.
            if (r.category is None or r.category == EVENT_CATEGORY)
            and all(c.name == decoder_id for c in r.conditions if isinstance(c, DecodedAs))
        ]
        # Roots without needles at the front are checked before the needle search, which then only
        # runs for events none of them took (an sshd event is usually settled under 5700).
        cut = 0
        while cut < len(nodes) and nodes[cut].quick is None:
            cut += 1
        tail = tuple(nodes[cut:])
        entry = _Roots(tuple(nodes[:cut]), tail, SiblingIndex(tail) if SiblingIndex.worth_it(tail) else None)
        if len(self._roots_by_decoder) < 10_000:  # decoder names come from the ruleset: a small set
            self._roots_by_decoder[decoder_id] = entry
        return entry

    def node_of(self, rule: Rule) -> Node:
        """The walk's node for ``rule`` (a rule of this engine's ruleset)."""
        return self._node(rule)


def _any_in(needles: tuple[str, ...], text: str) -> bool:
    for needle in needles:  # noqa: SIM110 - a plain loop is faster than any() on this hot path
        if needle in text:
            return True
    return False


class WalkResult:
    """One descent through the tree for one event, and its outcome (``final``: None when no rule
    matched). Conditions read it as their EvalContext."""

    __slots__ = ("event", "final", "lowered", "now", "parent_of_final", "previous", "volatile")

    def __init__(self, event: Event, lowered: str, now: float) -> None:
        self.event = event
        self.lowered = lowered
        self.now = now
        self.final: Node | None = None
        self.parent_of_final: Node | None = None
        self.previous: list[Event] = []
        self.volatile = False  # a check read more than (program name, message): see Node.volatile

    def check(self, node: Node) -> Node | None:
        """``node`` and its subtree; the caller has already applied ``node.quick``."""
        if node.volatile:
            self.volatile = True
        for cond in node.conditions:
            if not cond.test(self):
                return None
        if node.is_correlation:
            corr = node.correlator
            previous = corr.search(self.event, self.now) if corr is not None else None
            if previous is None:
                return None
            self.previous = previous
        if node.index is not None:
            for child in node.index.candidates(self.lowered):
                hit = self.check(child)
                if hit is not None:
                    if self.parent_of_final is None:
                        self.parent_of_final = node
                    return hit
            return None if node.noalert else node
        if node.children:
            lowered = self.lowered
            for child in node.children:
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
                        self.parent_of_final = node
                    return hit
        if node.noalert:
            return None
        return node
