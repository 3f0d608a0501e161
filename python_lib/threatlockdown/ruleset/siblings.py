"""Which of a rule's children can match a message, found in one pass.

A parent such as sshd's 5700 has ~60 children, each needing some literal text (its ``quick`` needles).
Testing them one by one costs a substring search per needle per event; an Aho-Corasick automaton over all
needles finds the present ones in a single pass, and only those children (plus the ones without
needles) are checked, still in sibling order. Without the optional ``ahocorasick`` module the plain
per-child test is used; the outcome is the same either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .rules import Rule

try:  # pragma: no cover - exercised when the wheel is installed, which setup does
    import ahocorasick

    _HAVE_AC = True
except ImportError:  # pragma: no cover
    _HAVE_AC = False

MIN_CHILDREN = 6  # below this, testing the needles directly is as cheap


class SiblingIndex:
    """Candidate children of one sibling list for a lowered message, in sibling order."""

    __slots__ = ("_always", "_automaton", "_rules")

    def __init__(self, rules: Sequence[Rule]) -> None:
        self._rules = tuple(rules)
        self._always = frozenset(i for i, r in enumerate(self._rules) if r.quick is None)
        by_needle: dict[str, list[int]] = {}
        for i, rule in enumerate(self._rules):
            for needle in rule.quick or ():
                by_needle.setdefault(needle, []).append(i)
        automaton: Any = ahocorasick.Automaton()
        for needle, idxs in by_needle.items():
            automaton.add_word(needle, tuple(idxs))
        automaton.make_automaton()
        self._automaton = automaton

    @staticmethod
    def worth_it(rules: Sequence[Rule]) -> bool:
        return _HAVE_AC and len(rules) >= MIN_CHILDREN and any(r.quick for r in rules)

    def candidates(self, lowered: str) -> list[Rule]:
        hits = set(self._always)
        for _end, idxs in self._automaton.iter(lowered):
            hits.update(idxs)
        rules = self._rules
        return [rules[i] for i in sorted(hits)]
