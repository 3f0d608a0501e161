"""Which of a rule's children can match a message, found in one pass.

A parent such as sshd's 5700 has ~60 children, each needing some literal text (its ``quick`` needles).
Testing them one by one costs a substring search per needle per event; an Aho-Corasick automaton over all
needles finds the present ones in a single pass, and only those children (plus the ones without
needles) are checked, still in sibling order. Without the optional ``ahocorasick`` module the plain
per-child test is used; the outcome is the same either way.

Each needle carries a bit mask of the children that need it; the masks of the needles found are OR-ed
and the children list for a mask is built once and kept (messages of one kind give the same mask).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, Protocol, TypeVar

try:  # pragma: no cover - exercised when the wheel is installed, which setup does
    import ahocorasick

    _HAVE_AC = True
except ImportError:  # pragma: no cover
    _HAVE_AC = False

MIN_CHILDREN = 6  # below this, testing the needles directly is as cheap
MAX_KEPT_LISTS = 4096  # candidate lists kept per index; beyond that they are built per message


class HasQuick(Protocol):
    @property
    def quick(self) -> tuple[str, ...] | None: ...


T = TypeVar("T", bound=HasQuick)


class SiblingIndex(Generic[T]):
    """Candidate children of one sibling list for a lowered message, in sibling order."""

    __slots__ = ("_always", "_automaton", "_lists", "_rules")

    def __init__(self, rules: Sequence[T]) -> None:
        self._rules = tuple(rules)
        self._always = 0
        by_needle: dict[str, int] = {}
        for i, rule in enumerate(self._rules):
            if rule.quick is None:
                self._always |= 1 << i
            for needle in rule.quick or ():
                by_needle[needle] = by_needle.get(needle, 0) | 1 << i
        automaton: Any = ahocorasick.Automaton()
        for needle, bits in by_needle.items():
            automaton.add_word(needle, bits)
        automaton.make_automaton()
        self._automaton = automaton
        self._lists: dict[int, tuple[T, ...]] = {}

    @staticmethod
    def worth_it(rules: Sequence[HasQuick]) -> bool:
        return _HAVE_AC and len(rules) >= MIN_CHILDREN and any(r.quick for r in rules)

    def candidates(self, lowered: str) -> tuple[T, ...]:
        mask = self._always
        for _end, bits in self._automaton.iter(lowered):
            mask |= bits
        found = self._lists.get(mask)
        if found is None:
            found = tuple(rule for i, rule in enumerate(self._rules) if mask >> i & 1)
            if len(self._lists) < MAX_KEPT_LISTS:
                self._lists[mask] = found
        return found
