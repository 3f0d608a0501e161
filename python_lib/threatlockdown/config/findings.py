"""Collects the errors and notices found while reading one ossec.conf."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..errors import SourceError

# Longer words are never typos of a keyword; skipping them keeps difflib cheap on garbage input.
_MAX_SUGGEST_LEN = 64


def quote(value: str, limit: int = 80) -> str:
    """A value as it appears in a message: quoted, escaped, and cut when very long."""
    if len(value) > limit:
        value = value[:limit] + "..."
    return repr(value)


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate ``word`` was most likely meant to be, or None when nothing is close."""
    if not word or len(word) > _MAX_SUGGEST_LEN:
        return None
    by_lower = {c.lower(): c for c in candidates}
    match = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[match[0]] if match else None


def did_you_mean(word: str, candidates: Iterable[str], *, element: bool = False) -> str:
    """`` (did you mean 'x'?)`` or '' ; ``element=True`` writes the suggestion as ``<x>``."""
    best = closest(word, candidates)
    if best is None or best == word:
        return ""
    shown = f"<{best}>" if element else repr(best)
    return f" (did you mean {shown}?)"


@dataclass
class Findings:
    """Errors make the file unusable; infos are notices (e.g. a value Wazuh would silently change)."""

    path: str
    errors: list[SourceError] = field(default_factory=list)
    infos: list[SourceError] = field(default_factory=list)

    def error(self, line: int | None, element: str | None, message: str) -> None:
        self.errors.append(SourceError(self.path, line, element, message))

    def info(self, line: int | None, element: str | None, message: str) -> None:
        self.infos.append(SourceError(self.path, line, element, message))

    def unknown_element(self, line: int | None, parent: str, tag: str, known: Iterable[str]) -> None:
        hint = did_you_mean(tag, known, element=True)
        self.error(line, parent, f"unknown element <{tag}>{hint}")
