"""Rule evaluation with Wazuh 4.x semantics, and the per-session state it needs.

State (fired counters, ignore windows, correlation memory) belongs to one engine instance, so logtest
sessions, replays and the daemon never share it by accident. Correlation memory (correlation.py) is
bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .conditions import DecodedAs, EvalContext
from .correlation import Correlator
from .event import Event
from .rules import Rule, RuleSet
from .siblings import SiblingIndex


@dataclass(slots=True)
class Match:
    """The outcome of evaluating one event."""

    rule: Rule | None  # the final rule (level 0 included); None when nothing matched
    firedtimes: int = 0
    previous: list[Event] = field(default_factory=list)  # correlated events, newest first (as Wazuh)
    alert: bool = False  # a rule of level > 0 matched (before log_alert_level filtering)


@dataclass
class RuleEngine:
    ruleset: RuleSet
    firedtimes: dict[int, int] = field(default_factory=dict)
    ignored_since: dict[int, float] = field(default_factory=dict)
    correlators: dict[int, Correlator] = field(default_factory=dict)
    # Which correlators an event feeds, by the sid / group of its final rule.
    _feeds_sid: dict[int, list[Correlator]] = field(default_factory=dict)
    _feeds_group: dict[str, list[Correlator]] = field(default_factory=dict)
    # Roots worth trying for an event, by decoder name: a root whose <decoded_as> names another decoder
    # can never match, so it is left out once instead of being checked for every event.
    _roots_by_decoder: dict[str, tuple[tuple[Rule, ...], SiblingIndex | None]] = field(default_factory=dict)
    # Children lists long enough to be searched with one automaton pass, by parent sid.
    _child_index: dict[int, SiblingIndex | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for rule in self.ruleset.rules.values():
            if not rule.is_correlation:
                continue
            corr = Correlator(rule)
            self.correlators[rule.sid] = corr
            if rule.if_matched_sid is not None:
                self._feeds_sid.setdefault(rule.if_matched_sid, []).append(corr)
            else:
                self._feeds_group.setdefault(rule.if_matched_group or "", []).append(corr)

    # ------------------------------------------------------------ evaluation

    def evaluate(self, event: Event, now: float, lowered: str | None = None) -> Match:
        ctx = EvalContext(event, event.log.lower() if lowered is None else lowered, now)
        walk = _Walk(self, ctx)
        category = "syslog"
        final: Rule | None = None
        lowered_log = ctx.lowered
        entry = self._roots_by_decoder.get(event.decoder_id)
        if entry is None:
            entry = self._roots_for(event.decoder_id)
        roots, index = entry
        for root in roots if index is None else index.candidates(lowered_log):
            if root.category is not None and root.category != category:
                continue
            quick = root.quick
            if index is None and quick is not None and not _any_in(quick, lowered_log):
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

    def _roots_for(self, decoder_id: str) -> tuple[tuple[Rule, ...], SiblingIndex | None]:
        roots = tuple(
            r
            for r in self.ruleset.roots
            if all(c.name == decoder_id for c in r.conditions if isinstance(c, DecodedAs))
        )
        entry = (roots, SiblingIndex(roots) if SiblingIndex.worth_it(roots) else None)
        if len(self._roots_by_decoder) < 10_000:  # decoder names come from the ruleset: a small set
            self._roots_by_decoder[decoder_id] = entry
        return entry

    def child_index(self, rule: Rule) -> SiblingIndex | None:
        try:
            return self._child_index[rule.sid]
        except KeyError:
            index = SiblingIndex(rule.children) if SiblingIndex.worth_it(rule.children) else None
            self._child_index[rule.sid] = index
            return index

    def _remember(self, rule: Rule, event: Event, now: float) -> None:
        """Only an event's final rule feeds correlation, as in Wazuh."""
        for corr in self._feeds_sid.get(rule.sid, ()):
            corr.add(event, now)
        if self._feeds_group:
            for group in rule.groups:
                for corr in self._feeds_group.get(group, ()):
                    corr.add(event, now)

    def correlate(self, rule: Rule, ctx: EvalContext) -> list[Event] | None:
        """Earlier events that complete ``rule``'s frequency with the current one, or None."""
        corr = self.correlators.get(rule.sid)
        return corr.search(ctx.event, ctx.now) if corr is not None else None


def _any_in(needles: tuple[str, ...], text: str) -> bool:
    for needle in needles:  # noqa: SIM110 - a plain loop is faster than any() on this hot path
        if needle in text:
            return True
    return False


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
        if rule.children:
            index = self.engine.child_index(rule)
            if index is not None:
                for child in index.candidates(lowered):
                    hit = self.check(child)
                    if hit is not None:
                        if self.parent_of_final is None:
                            self.parent_of_final = rule
                        return hit
                return None if rule.noalert else rule
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
