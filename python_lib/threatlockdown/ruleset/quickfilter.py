"""Cheap pre-checks: literal text a pattern cannot match without.

A rule whose ``<match>`` needs one of a few literal strings can be skipped with a plain substring test on
the lowered message, which costs far less than running the pattern. Correctness only needs the needles
to be *necessary*: every text the pattern matches contains at least one of them.
"""

from __future__ import annotations

_OSREGEX_CLASSES = frozenset("wdsptWDS.")
MIN_NEEDLE = 3


def required_literals(source: str, kind: str) -> tuple[str, ...] | None:
    """Lower-cased needles, one per alternative; None when some alternative has no usable literal."""
    if kind == "osmatch":
        return _osmatch_needles(source)
    if kind == "osregex":
        return _osregex_needles(source)
    return None


def _osmatch_needles(source: str) -> tuple[str, ...] | None:
    needles = []
    if source.startswith("!"):
        return None  # negated pattern: its absence is what matches
    for alt in source.split("|"):
        text = alt
        text = text[1:] if text.startswith("^") else text
        text = text[:-1] if text.endswith("$") else text
        if not text:
            return None
        needles.append(text.lower())
    return tuple(dict.fromkeys(needles)) or None


def _osregex_needles(source: str) -> tuple[str, ...] | None:
    needles = []
    for alt in split_alternatives(source):
        best = _longest_literal_run(alt)
        if len(best) < MIN_NEEDLE:
            return None
        needles.append(best.lower())
    return tuple(dict.fromkeys(needles)) or None


def split_alternatives(source: str) -> list[str]:
    """OS_Regex alternatives: split on ``|`` that is not escaped."""
    alts, cur, i = [], [], 0
    while i < len(source):
        ch = source[i]
        if ch == "\\" and i + 1 < len(source):
            cur.append(source[i : i + 2])
            i += 2
            continue
        if ch == "|":
            alts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    alts.append("".join(cur))
    return alts


def _longest_literal_run(alt: str) -> str:
    best, run, i = "", "", 0
    while i < len(alt):
        ch = alt[i]
        if ch == "\\" and i + 1 < len(alt):
            nxt = alt[i + 1]
            i += 2
            if nxt in _OSREGEX_CLASSES:
                best, run = max(best, run, key=len), ""
                continue
            run += nxt  # an escaped literal such as \( or \$
            continue
        i += 1
        if ch in "()^$":
            best, run = max(best, run, key=len), ""
        elif ch in "+*":
            # A modifier after a literal char makes that char repeat or vanish: drop it from the run.
            run = run[:-1]
            best, run = max(best, run, key=len), ""
        else:
            run += ch
    return max(best, run, key=len)
