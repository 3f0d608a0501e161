"""Wazuh's three pattern languages (OS_Match, OS_Regex, PCRE2) compiled to Python.

OS_Match (``<match>``): case-insensitive literal text. ``|`` separates alternatives (it cannot be
escaped), ``^`` at the start of an alternative anchors it at the start of the text and ``$`` at its end
anchors it at the end. An empty alternative (``a||b``, a trailing ``|``, a lone ``^`` or ``$``) matches
every text, as in Wazuh. Callers lower-case the text once per event; we never need a regex.

OS_Regex (``<regex>``, ``<prematch>``): case-insensitive; every alternative is a whole pattern.

* ``\\d`` 0-9; ``\\w`` A-Z a-z 0-9 ``-`` ``@`` ``_``; ``\\s`` the space character only (not tab);
  ``\\t`` tab; ``\\p`` ``!"#$%&'()*+,-.:;<=>?[]{|}``; ``\\W \\D \\S`` their complements; ``\\.`` any
  character; ``\\( \\) \\\\ \\$ \\| \\<`` those characters. Any other escape is an error.
* ``+`` / ``*`` only modify the escape just before them; after a literal they are literal characters,
  as are ``.``, ``[``, ``]``, ``?``, ``{``.
* ``^`` first / ``$`` last in an alternative anchor it; anywhere else they are literal characters.
* ``( )`` capture, one level only, never containing ``|``. Groups are numbered per alternative: the
  match object of the alternative that matched is returned, so ``group(1)`` is that alternative's
  first group.
* Alternatives are tried in order over the whole text; the first one that matches anywhere wins (not
  the leftmost match of any alternative). An alternative that is empty after removing its anchors
  never matches, as in Wazuh.

How Wazuh's matcher chooses, and how the translation reproduces it. Wazuh's matcher walks the text
once. A repeated escape ``\\X+`` takes its first character unconditionally; after that, at each
character that both ``\\X`` and the *next* pattern element accept, it leaves the repetition early (a
shortest match) and remembers that spot so it can come back and extend the repetition if the rest of
the pattern fails. At a character ``\\X`` rejects it must leave. So:

* a repetition whose class cannot overlap the next element's first character is translated
  possessive (``X++``) - no backtracking, exactly Wazuh's behaviour;
* a repetition at the end of its alternative is greedy (possessive), as Wazuh keeps consuming;
* an overlapping repetition is lazy (``X+?``). When the next element is ``\\Y*`` Wazuh only looks at
  ``\\Y`` when deciding to leave, so the lazy repetition may stop only before a character that is in
  ``\\Y`` or not in ``\\X`` (a negative lookahead). When the next element is a literal, Wazuh, after
  coming back, takes the following character unconditionally, so it never stops right after a
  character where it stopped before: ``(\\S+):(\\d+)`` on ``fe80::1:8080`` gives ``fe80::1`` and
  ``8080``, as in Wazuh.
* To guarantee that no pattern makes matching worse than quadratic in the text length, each lazy
  repetition with the elements up to the next lazy one is an atomic group ending in a one-character
  lookahead for what follows: once that part matched, a later failure does not re-size it (inside a
  capture group, the part stops at the group's next lazy repetition). Unanchored patterns that start
  with a repetition are not retried from inside a run of that class (Wazuh does not retry there either).

A development oracle transcribing Wazuh's matcher agreed with this translation on 99% of 60 000
random patterns over random short texts and on all realistic decoder patterns we tried except the
Wazuh bugs listed below. Deviations kept, with their reasons:

* Wazuh bugs we do not reproduce because they give wrong fields: when a repetition stops at the last
  character of the text, the capture wrongly includes that character (``\\((\\S+)\\)$`` on ``(a)``
  captures ``a)``); after stopping before a single escape (``(\\d+)\\.(\\d+)``) the next repetition can
  match nothing; ``(\\w+)(\\s+)`` (adjacent groups) never matches; ``()`` is compared literally (we
  reject an empty group as an error).
* Wazuh's limits on coming back (four remembered spots, no retry from the position where a pattern
  that starts with repetitions failed, no retry once the text is exhausted) make it miss some matches
  that we find, e.g. ``\\S+\\s+\\d`` on ``xb b 1``. Re-sizing across atomic parts (see above) can make us
  miss a few that Wazuh finds; real rulesets rarely have two overlapping repetitions in one pattern.
* Worst-case time is quadratic in the text length, never worse: a literal followed by ``\\.+`` whose
  terminator never comes, against tens of thousands of repeats of that literal, takes seconds.
* Wazuh works on bytes, we work on characters: ``\\W``, ``\\S``, ``\\D`` and ``\\.`` accept one
  non-ASCII character where Wazuh needs one per UTF-8 byte; only ASCII letters are case-insensitive
  (as Wazuh).

PCRE2 (``type="pcre2"``): Python ``re`` with ``re.ASCII`` (PCRE2 as Wazuh compiles it has no UTF/UCP),
case-sensitive unless ``(?i)``. Constructs Python lacks are translated where possible (``\\z``, ``\\Z``,
``\\h``, ``\\v``, ``\\R``, ``\\N``, ``\\e``, ``\\x{...}``, ``\\o{...}``, ``\\Q...\\E``, ``\\k<name>``,
``(?<name>``, POSIX ``[[:alpha:]]`` classes, inline flags in the middle of a pattern); the rest
(recursion, ``\\K``, ``\\p{..}``, verbs, branch reset, ``(?x)``, ...) raises :class:`PatternError`.
PCRE2's match limit is not reproduced: a pcre2 pattern with nested repetitions can backtrack
exponentially on Python's engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise
from typing import Final

# Wazuh's OS_PATTERN_MAXSIZE: longer patterns are rejected by OSRegex_Compile/OSMatch_Compile.
MAX_PATTERN_LENGTH: Final = 20480


class PatternError(ValueError):
    """A pattern that cannot be used; the message says what is wrong and where in the pattern."""

    def __init__(self, problem: str, pattern: str | None = None, position: int | None = None) -> None:
        self.problem = problem
        self.pattern = pattern
        self.position = position
        super().__init__(_describe(problem, pattern, position))


def _describe(problem: str, pattern: str | None, position: int | None) -> str:
    if pattern is None:
        return problem
    where = f" at offset {position}" if position is not None else ""
    shown = pattern
    if len(shown) > 120:
        # Long patterns: show the neighbourhood of the problem only.
        centre = position or 0
        start = max(0, centre - 50)
        shown = ("..." if start else "") + shown[start : start + 100] + "..."
    return f"{problem}{where} in pattern {shown!r}"


def _check_length(pattern: str) -> None:
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternError(f"pattern is longer than {MAX_PATTERN_LENGTH} characters", pattern[:200], None)


# --------------------------------------------------------------------------------------------------
# OS_Match


@dataclass(frozen=True, slots=True)
class OsMatch:
    """A compiled OS_Match pattern: case-insensitive literal alternatives, ``^``/``$`` anchors."""

    source: str
    always: bool = False  # some alternative is empty: every text matches
    equals: frozenset[str] = frozenset()  # ``^text$`` alternatives
    prefixes: tuple[str, ...] = ()  # ``^text``
    suffixes: tuple[str, ...] = ()  # ``text$``
    contains: tuple[str, ...] = ()  # plain ``text``

    def matches(self, lowered: str) -> bool:
        """Whether the pattern matches; ``lowered`` must be the event text after ``str.lower()``."""
        if self.always:
            return True
        for needle in self.contains:
            if needle in lowered:
                return True
        if self.prefixes and lowered.startswith(self.prefixes):
            return True
        if self.suffixes and lowered.endswith(self.suffixes):
            return True
        return lowered in self.equals


def compile_os_match(pattern: str) -> OsMatch:
    """Compile an OS_Match pattern (Wazuh's ``<match>`` default)."""
    _check_length(pattern)
    always = False
    equals: set[str] = set()
    prefixes: list[str] = []
    suffixes: list[str] = []
    contains: list[str] = []
    # Wazuh lower-cases ASCII only; callers use str.lower() on the text, so we do the same here to
    # stay consistent with them.
    for alt in pattern.lower().split("|"):
        begins = alt.startswith("^")
        body = alt[1:] if begins else alt
        ends = body.endswith("$")
        if begins and ends:
            equals.add(body[:-1])
        elif alt == "":
            always = True
        elif ends:
            if body[:-1] == "":
                always = True
            else:
                suffixes.append(body[:-1])
        elif begins:
            if body == "":
                always = True
            else:
                prefixes.append(body)
        else:
            contains.append(body)
    return OsMatch(
        source=pattern,
        always=always,
        equals=frozenset(equals),
        prefixes=tuple(dict.fromkeys(prefixes)),
        suffixes=tuple(dict.fromkeys(suffixes)),
        contains=tuple(dict.fromkeys(contains)),
    )


# --------------------------------------------------------------------------------------------------
# OS_Regex: character tests

_ALL_ASCII: Final = frozenset(range(128))
_DIGITS: Final = frozenset(range(ord("0"), ord("9") + 1))
_WORD: Final = (
    _DIGITS
    | frozenset(range(ord("A"), ord("Z") + 1))
    | frozenset(range(ord("a"), ord("z") + 1))
    | frozenset(map(ord, "-@_"))
)
_PUNCT: Final = frozenset(map(ord, "!\"#$%&'()*+,-.:;<=>?[]{|}"))


@dataclass(frozen=True, slots=True)
class _CharTest:
    """What one pattern element accepts at one text position."""

    py: str  # Python regex matching exactly one such character
    ascii: frozenset[int]  # accepted ASCII code points
    any_non_ascii: bool = False  # accepts every non-ASCII character
    non_ascii: frozenset[str] = frozenset()  # accepted non-ASCII characters (literals)

    def overlaps(self, other: _CharTest) -> bool:
        if self.ascii & other.ascii:
            return True
        if self.any_non_ascii and (other.any_non_ascii or other.non_ascii):
            return True
        if other.any_non_ascii and self.non_ascii:
            return True
        return bool(self.non_ascii & other.non_ascii)


def _single(ch: str) -> _CharTest:
    return _CharTest(re.escape(ch), frozenset({ord(ch)}))


_ESCAPES: Final[dict[str, _CharTest]] = {
    "d": _CharTest("[0-9]", _DIGITS),
    "w": _CharTest("[-0-9@A-Z_a-z]", _WORD),
    "s": _CharTest("[ ]", frozenset({ord(" ")})),
    "t": _CharTest(r"\t", frozenset({ord("\t")})),
    "p": _CharTest(r"[!-.:-?\[\]{-}]", _PUNCT),
    "D": _CharTest("[^0-9]", _ALL_ASCII - _DIGITS, any_non_ascii=True),
    "W": _CharTest("[^-0-9@A-Z_a-z]", _ALL_ASCII - _WORD, any_non_ascii=True),
    "S": _CharTest("[^ ]", _ALL_ASCII - {ord(" ")}, any_non_ascii=True),
    ".": _CharTest(".", _ALL_ASCII, any_non_ascii=True),  # compiled with DOTALL
    "(": _single("("),
    ")": _single(")"),
    "\\": _single("\\"),
    "$": _single("$"),
    "|": _single("|"),
    "<": _single("<"),
}


def _literal(ch: str) -> _CharTest:
    low = ch.lower() if ch.isascii() else ch
    if not ch.isascii():
        # re.ASCII: non-ASCII literals are compared exactly, as Wazuh's ASCII-only lower-casing does.
        return _CharTest(re.escape(ch), frozenset(), non_ascii=frozenset({ch}))
    codes = {ord(low), ord(low.upper())}
    return _CharTest(re.escape(low), frozenset(codes))


# --------------------------------------------------------------------------------------------------
# OS_Regex: parsing


@dataclass(frozen=True, slots=True)
class _One:
    """One character matching ``test``; ``raw`` is the unescaped pattern character, if any."""

    test: _CharTest
    raw: str = ""


@dataclass(frozen=True, slots=True)
class _Repeat:
    """``\\X+`` (``at_least_one``) or ``\\X*``."""

    test: _CharTest
    at_least_one: bool


@dataclass(frozen=True, slots=True)
class _Paren:
    opening: bool


_Token = _One | _Repeat | _Paren


@dataclass(frozen=True, slots=True)
class _Alternative:
    tokens: tuple[_Token, ...]
    begin: bool
    end: bool


def _parse_os_regex(pattern: str) -> list[_Alternative]:
    """Split into alternatives and tokens, rejecting what OSRegex_Compile rejects."""
    alts: list[_Alternative] = []
    tokens: list[_Token] = []
    open_at = -1  # offset of the open '(' or -1
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                raise PatternError("pattern ends with a lone backslash", pattern, i)
            code = pattern[i + 1]
            test = _ESCAPES.get(code)
            if test is None:
                raise PatternError(
                    f"unknown escape '\\{code}' (OS_Regex knows \\w \\d \\s \\t \\p \\W \\D \\S \\. "
                    "and \\( \\) \\\\ \\$ \\| \\<)",
                    pattern,
                    i,
                )
            i += 2
            if i < n and pattern[i] in "+*":
                tokens.append(_Repeat(test, pattern[i] == "+"))
                i += 1
            else:
                tokens.append(_One(test))
            continue
        if ch == "(":
            if open_at >= 0:
                raise PatternError("nested '(': OS_Regex groups cannot contain groups", pattern, i)
            open_at = i
            tokens.append(_Paren(True))
        elif ch == ")":
            if open_at < 0:
                raise PatternError("')' without a matching '('", pattern, i)
            if tokens and tokens[-1] == _Paren(True):
                raise PatternError("empty group '()'", pattern, i)
            open_at = -1
            tokens.append(_Paren(False))
        elif ch == "|":
            if open_at >= 0:
                raise PatternError(
                    "'|' inside a group: in OS_Regex each alternative is a whole pattern", pattern, i
                )
            alts.append(_finish_alternative(tokens))
            tokens = []
        else:
            tokens.append(_One(_literal(ch), raw=ch))
        i += 1
    if open_at >= 0:
        raise PatternError("'(' is never closed", pattern, open_at)
    alts.append(_finish_alternative(tokens))
    return alts


def _finish_alternative(tokens: list[_Token]) -> _Alternative:
    begin = bool(tokens) and isinstance(tokens[0], _One) and tokens[0].raw == "^"
    body = tokens[1:] if begin else tokens
    end = bool(body) and isinstance(body[-1], _One) and body[-1].raw == "$"
    if end:
        body = body[:-1]
    return _Alternative(tuple(body), begin, end)


# --------------------------------------------------------------------------------------------------
# OS_Regex: translation


def _next_test(tokens: tuple[_Token, ...], index: int) -> _One | _Repeat | None:
    for tok in tokens[index + 1 :]:
        if not isinstance(tok, _Paren):
            return tok
    return None


def _repeat_python(tokens: tuple[_Token, ...], index: int) -> tuple[str, bool]:
    """Python text for the repetition at ``index`` and whether it is lazy (can backtrack)."""
    rep = tokens[index]
    assert isinstance(rep, _Repeat)
    quant = "+" if rep.at_least_one else "*"
    nxt = _next_test(tokens, index)
    if nxt is None or not rep.test.overlaps(nxt.test):
        return f"{rep.test.py}{quant}+", False
    if rep.at_least_one and isinstance(nxt, _One) and nxt.raw:
        # When the rest fails after Wazuh left at this literal, it comes back and takes the next
        # character into the repetition unconditionally: it never leaves again right after a
        # character where it left before. So after the first character, stop only after one the
        # literal does not match.
        other = f"(?:(?!{nxt.test.py}){rep.test.py})"
        return f"{rep.test.py}(?:{rep.test.py}*?{other})??", True
    text = f"{rep.test.py}{quant}?"
    if isinstance(nxt, _Repeat) and not nxt.at_least_one:
        # Wazuh leaves early only where the optional next class itself matches; elsewhere inside our
        # class it keeps consuming.
        text += f"(?!(?!{nxt.test.py}){rep.test.py})"
    return text, True


def _nullable(tokens: tuple[_Token, ...]) -> bool:
    return all(isinstance(t, _Paren) or (isinstance(t, _Repeat) and not t.at_least_one) for t in tokens)


def _translate_alternative(alt: _Alternative) -> str:
    tokens = alt.tokens
    if not tokens:
        return "(?!)"  # Wazuh: an empty alternative never matches
    pieces: list[str] = []
    lazy: list[bool] = []
    for index, tok in enumerate(tokens):
        if isinstance(tok, _Paren):
            pieces.append("(" if tok.opening else ")")
            lazy.append(False)
        elif isinstance(tok, _One):
            pieces.append(tok.test.py)
            lazy.append(False)
        else:
            text, is_lazy = _repeat_python(tokens, index)
            pieces.append(text)
            lazy.append(is_lazy)
    body = _Segmenter(tokens, pieces, lazy, alt.end).run()
    prefix = r"\A" if alt.begin else ""
    if alt.end and not alt.begin and _nullable(tokens):
        # Wazuh never tries a match that starts at the end of a non-empty text.
        prefix = r"(?:\A|(?!\Z))"
    first = _next_test(tokens, -1)
    if not alt.begin and isinstance(first, _Repeat):
        # A match starting inside a run of the leading class also exists from the run's start.
        prefix += f"(?<!{first.test.py})"
    return prefix + body


@dataclass(frozen=True, slots=True)
class _Segmenter:
    """Puts each lazy repetition, with the elements up to the next one, in an atomic group.

    This bounds backtracking: once that part matched, its length is kept. Each part ends with a
    one-character lookahead for what the next part starts with, so the kept length is one the rest
    can at least begin from. A capture group holding lazy repetitions is one unit at the top level;
    inside it, every lazy repetition but the last gets its own atomic group.
    """

    tokens: tuple[_Token, ...]
    pieces: list[str]
    lazy: list[bool]
    end: bool

    def run(self) -> str:
        out: list[str] = []
        segment: list[str] | None = None
        for lo, hi in self.units():
            text = self.pieces[lo] if hi - lo == 1 else "(" + self.inside_group(lo + 1, hi - 1) + ")"
            if any(self.lazy[lo:hi]):
                if segment is not None:
                    out.append("(?>" + "".join(segment) + self.ahead(lo) + ")")
                segment = [text]
            elif segment is not None:
                segment.append(text)
            else:
                out.append(text)
        tail = r"\Z" if self.end else ""
        if segment is None:
            return "".join(out) + tail
        # The end anchor stays inside the last part so a failing end still re-sizes its repetition.
        return "".join(out) + "(?>" + "".join(segment) + tail + ")"

    def units(self) -> list[tuple[int, int]]:
        units: list[tuple[int, int]] = []
        i = 0
        while i < len(self.tokens):
            if self.tokens[i] == _Paren(True):
                close = self.tokens.index(_Paren(False), i)
                units.append((i, close + 1))
                i = close + 1
            else:
                units.append((i, i + 1))
                i += 1
        return units

    def inside_group(self, lo: int, hi: int) -> str:
        marks = [j for j in range(lo, hi) if self.lazy[j]]
        if len(marks) < 2:
            return "".join(self.pieces[lo:hi])
        out = ["".join(self.pieces[lo : marks[0]])]
        for here, following in pairwise(marks):
            out.append("(?>" + "".join(self.pieces[here:following]) + self.ahead(following) + ")")
        out.append("".join(self.pieces[marks[-1] : hi]))
        return "".join(out)

    def ahead(self, index: int) -> str:
        """Lookahead for the characters the pattern can continue with at token ``index``."""
        options: list[str] = []
        for tok in self.tokens[index:]:
            if isinstance(tok, _Paren):
                continue
            options.append(tok.test.py)
            if isinstance(tok, _One) or tok.at_least_one:
                return "(?=" + "|".join(options) + ")"
        if not self.end:
            return ""  # the rest can match nothing at all
        return "(?=" + "|".join([*options, r"\Z"]) + ")"


_OS_REGEX_FLAGS: Final = re.IGNORECASE | re.ASCII | re.DOTALL


@dataclass(frozen=True, slots=True)
class OsRegex:
    """A compiled OS_Regex or PCRE2 pattern.

    ``regex`` is the whole pattern as one Python regex: it matches exactly when ``search`` does, but
    when an OS_Regex has several alternatives its groups are numbered across all of them and the
    leftmost alternative wins; ``search`` gives Wazuh's per-alternative groups and order.
    """

    source: str
    regex: re.Pattern[str]
    alternatives: tuple[re.Pattern[str], ...] = ()

    def search(self, text: str) -> re.Match[str] | None:
        """First match in the original text (captures keep their case), or None."""
        if not self.alternatives:
            return self.regex.search(text)
        for alt in self.alternatives:
            found = alt.search(text)
            if found is not None:
                return found
        return None


def compile_os_regex(pattern: str) -> OsRegex:
    """Compile an OS_Regex pattern (Wazuh's ``<regex>``/``<prematch>`` default)."""
    _check_length(pattern)
    texts = [_translate_alternative(alt) for alt in _parse_os_regex(pattern)]
    try:
        compiled = tuple(re.compile(text, _OS_REGEX_FLAGS) for text in texts)
        whole = compiled[0] if len(compiled) == 1 else re.compile("|".join(texts), _OS_REGEX_FLAGS)
    except (re.error, RecursionError, OverflowError) as exc:  # pragma: no cover - translation bug
        raise PatternError(f"cannot translate pattern ({exc})", pattern, None) from exc
    return OsRegex(source=pattern, regex=whole, alternatives=compiled if len(compiled) > 1 else ())


# --------------------------------------------------------------------------------------------------
# PCRE2

_POSIX_CLASSES: Final[dict[str, str]] = {
    "alpha": "a-zA-Z",
    "digit": "0-9",
    "alnum": "a-zA-Z0-9",
    "upper": "A-Z",
    "lower": "a-z",
    "xdigit": "0-9A-Fa-f",
    "space": r"\s",
    "blank": r" \t",
    "cntrl": r"\x00-\x1f\x7f",
    "punct": r"!-/:-@\[-`{-~",
    "graph": r"!-~",
    "print": r" -~",
    "word": r"\w",
    "ascii": r"\x00-\x7f",
}
# Negated POSIX classes that Python can still express inside a bracket expression.
_POSIX_NEGATED: Final[dict[str, str]] = {"digit": r"\D", "space": r"\S", "word": r"\W"}

_H_CHARS: Final = r"\t \xa0"  # PCRE2 \h without UTF
_V_CHARS: Final = r"\n\x0b\f\r\x85"  # PCRE2 \v without UTF
_PY_FLAGS: Final = frozenset("ims")


class _Pcre2Translator:
    """Rewrites a PCRE2 pattern into Python ``re`` syntax, one construct at a time."""

    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.i = 0
        self.out: list[str] = []
        self.origin: list[int] = []  # pattern offset each ``out`` piece came from
        # Per open group: inline-flag wrappers ``(?i:`` opened by ``(?i)`` inside it.
        self.frames: list[list[str]] = [[]]

    def fail(self, problem: str, at: int | None = None) -> PatternError:
        return PatternError(f"pcre2: {problem}", self.p, self.i if at is None else at)

    def emit(self, text: str, at: int) -> None:
        self.out.append(text)
        self.origin.append(at)

    def run(self) -> str:
        p = self.p
        while self.i < len(p):
            ch = p[self.i]
            start = self.i
            if ch == "\\":
                self.emit(self.escape(in_class=False), start)
            elif ch == "[":
                self.emit(self.bracket(), start)
            elif ch == "(":
                self.group()
            elif ch == ")":
                if len(self.frames) == 1:
                    raise self.fail("')' without a matching '('")
                wrappers = self.frames.pop()
                self.emit(")" * len(wrappers) + ")", start)
                self.i += 1
            elif ch == "|":
                wrappers = self.frames[-1]
                self.emit(")" * len(wrappers) + "|" + "".join(f"(?{w}:" for w in wrappers), start)
                self.i += 1
            else:
                self.emit(ch, start)
                self.i += 1
        if len(self.frames) != 1:
            raise self.fail("missing ')'", len(p))
        self.emit(")" * len(self.frames[0]), len(p))
        return "".join(self.out)

    def group(self) -> None:
        p = self.p
        start = self.i
        rest = p[start + 1 :]
        if rest.startswith("*"):
            raise self.fail("backtracking verbs and (*OPTION) settings are not supported")
        if not rest.startswith("?"):
            self.frames.append([])
            self.emit("(", start)
            self.i += 1
            return
        rest = rest[1:]
        if rest.startswith("#"):
            close = p.find(")", start)
            if close < 0:
                raise self.fail("unterminated comment")
            self.i = close + 1
            return
        for plain in (":", "=", "!", "<=", "<!", ">"):
            if rest.startswith(plain):
                self.frames.append([])
                self.emit("(?" + plain, start)
                self.i = start + 2 + len(plain)
                return
        named = re.match(r"(?:P?<([A-Za-z_]\w*)>|'([A-Za-z_]\w*)')", rest)
        if named:
            self.frames.append([])
            self.emit(f"(?P<{named.group(1) or named.group(2)}>", start)
            self.i = start + 2 + named.end()
            return
        backref = re.match(r"P=([A-Za-z_]\w*)\)", rest)
        if backref:
            self.emit(f"(?P={backref.group(1)})", start)
            self.i = start + 2 + backref.end()
            return
        if rest.startswith("("):
            self.condition(start, rest)
            return
        if re.match(r"(?:R|[+-]?\d+|&\w+|P>\w+)\)", rest):
            raise self.fail("recursion and subroutine calls are not supported")
        if rest.startswith("^"):
            raise self.fail("'(?^' option resets are not supported")
        flags = re.match(r"([a-zA-Z]*)(?:-([a-zA-Z]*))?([:)])", rest)
        if flags:
            self.flags(start, flags)
            return
        if rest.startswith("|"):
            raise self.fail("branch reset groups (?|...) are not supported")
        raise self.fail("recursion, subroutine calls and callouts are not supported")

    def condition(self, start: int, rest: str) -> None:
        cond = re.match(r"\((?:<([A-Za-z_]\w*)>|'([A-Za-z_]\w*)'|([A-Za-z_]\w*|\d+))\)", rest)
        if not cond or (cond.group(3) or "").startswith(("R", "DEFINE")):
            raise self.fail("only group-number and group-name conditions are supported")
        self.frames.append([])
        name = cond.group(1) or cond.group(2) or cond.group(3)
        self.emit(f"(?({name})", start)
        self.i = start + 2 + cond.end()

    def flags(self, start: int, found: re.Match[str]) -> None:
        on, off, how = found.group(1), found.group(2) or "", found.group(3)
        bad = set(on + off) - _PY_FLAGS
        if bad:
            raise self.fail(f"inline option(s) {''.join(sorted(bad))!r} are not supported")
        wrapper = on + (f"-{off}" if off else "")
        self.i = start + 2 + found.end()
        if not wrapper:
            if how == ":":
                self.frames.append([])
                self.emit("(?:", start)
            return
        if how == ":":
            self.frames.append([])
            self.emit(f"(?{wrapper}:", start)
        else:
            # PCRE2 applies an option change to the rest of the enclosing group, across '|'; Python
            # only allows scoped flags there, so wrap the rest and re-open the wrapper after each '|'.
            self.frames[-1].append(wrapper)
            self.emit(f"(?{wrapper}:", start)

    def bracket(self) -> str:
        p = self.p
        start = self.i
        self.i += 1
        parts = ["["]
        if self.i < len(p) and p[self.i] == "^":
            parts.append("^")
            self.i += 1
        first = True
        while True:
            if self.i >= len(p):
                raise self.fail("missing ']' for the character class started here", start)
            ch = p[self.i]
            if ch == "]" and not first:
                self.i += 1
                break
            first = False
            if ch == "[":
                posix = re.match(r"\[:(\^?)([a-z]+):\]", p[self.i :])
                if posix:
                    parts.append(self.posix(posix.group(2), bool(posix.group(1))))
                    self.i += posix.end()
                    continue
                if p.startswith(("[.", "[="), self.i):
                    raise self.fail("POSIX collating elements are not supported")
                parts.append(r"\[")
                self.i += 1
            elif ch == "\\":
                parts.append(self.escape(in_class=True))
            elif ch in "&~|" or (ch == "-" and parts[-1].endswith("-")):
                # Python warns about (and may one day reinterpret) these as set operations.
                parts.append("\\" + ch)
                self.i += 1
            else:
                parts.append("\\]" if ch == "]" else ch)
                self.i += 1
        parts.append("]")
        return "".join(parts)

    def posix(self, name: str, negated: bool) -> str:
        if negated:
            if name not in _POSIX_NEGATED:
                raise self.fail(f"negated POSIX class [:^{name}:] is not supported")
            return _POSIX_NEGATED[name]
        if name not in _POSIX_CLASSES:
            raise self.fail(f"unknown POSIX class [:{name}:]")
        return _POSIX_CLASSES[name]

    def escape(self, in_class: bool) -> str:
        p = self.p
        start = self.i
        if start + 1 >= len(p):
            raise self.fail("pattern ends with a lone backslash")
        ch = p[start + 1]
        self.i = start + 2
        simple_out = {"z": r"\Z", "Z": r"(?=\n?\Z)", "R": r"(?:\r\n|[" + _V_CHARS + "])"}
        if ch in "zZRAGbBK" and in_class:
            if ch == "b":
                return r"\x08"
            raise self.fail(f"'\\{ch}' is not allowed in a character class", start)
        if ch in simple_out:
            return simple_out[ch]
        if ch in "GK":
            raise self.fail(f"'\\{ch}' is not supported", start)
        if ch in "hHvV":
            chars = _H_CHARS if ch in "hH" else _V_CHARS
            if in_class:
                if ch.isupper():
                    raise self.fail(f"'\\{ch}' inside a character class is not supported", start)
                return chars
            return f"[{'^' if ch.isupper() else ''}{chars}]"
        if ch == "N" and not p.startswith("{", self.i):
            if in_class:
                raise self.fail("'\\N' is not allowed in a character class", start)
            return r"[^\n]"
        if ch == "e":
            return r"\x1b"
        if ch == "c":
            if self.i >= len(p) or not p[self.i].isascii():
                raise self.fail("'\\c' must be followed by an ASCII character", start)
            ctrl = chr(ord(p[self.i].upper()) ^ 0x40)
            self.i += 1
            return _char_escape(ctrl)
        if ch in "xo" and p.startswith("{", self.i):
            close = p.find("}", self.i)
            digits = p[self.i + 1 : close] if close > 0 else ""
            base = 16 if ch == "x" else 8
            try:
                value = int(digits, base)
            except ValueError:
                raise self.fail(f"bad character code in '\\{ch}{{...}}'", start) from None
            if value > 0x10FFFF:
                raise self.fail("character code out of range", start)
            self.i = close + 1
            return _char_escape(chr(value))
        if ch == "x":
            found = re.match(r"[0-9A-Fa-f]{0,2}", p[self.i :])
            digits = found.group(0) if found else ""
            self.i += len(digits)
            return _char_escape(chr(int(digits, 16) if digits else 0))
        if ch == "Q":
            close = p.find(r"\E", self.i)
            literal = p[self.i :] if close < 0 else p[self.i : close]
            self.i = len(p) if close < 0 else close + 2
            return "".join(_char_escape(c) for c in literal)
        if ch == "E":
            return ""  # a stray \E is ignored by PCRE2
        if ch in "pPXC":
            raise self.fail(f"'\\{ch}' (Unicode properties and code units) is not supported", start)
        if ch in "kg" and not in_class:
            return self.backref(ch, start)
        if ch.isascii() and ch.isalpha() and ch not in "dDsSwWbBAfnrtav0":
            raise self.fail(f"unknown escape '\\{ch}'", start)
        return "\\" + ch

    def backref(self, kind: str, start: int) -> str:
        p = self.p
        if kind == "k":
            found = re.match(r"(?:<([A-Za-z_]\w*)>|'([A-Za-z_]\w*)'|\{([A-Za-z_]\w*)\})", p[self.i :])
            if not found:
                raise self.fail("malformed '\\k' back reference", start)
            self.i += found.end()
            return f"(?P={found.group(1) or found.group(2) or found.group(3)})"
        found = re.match(r"(?:\{(\d+)\}|(\d+)|\{([A-Za-z_]\w*)\})", p[self.i :])
        if not found:
            raise self.fail("relative back references and subroutine calls (\\g) are not supported", start)
        self.i += found.end()
        number = found.group(1) or found.group(2)
        return f"(?:\\{number})" if number else f"(?P={found.group(3)})"


def _char_escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def compile_pcre2(pattern: str) -> OsRegex:
    """Compile a ``type="pcre2"`` pattern: case-sensitive unless ``(?i)``, ASCII classes."""
    _check_length(pattern)
    translator = _Pcre2Translator(pattern)
    text = translator.run()
    try:
        compiled = re.compile(text, re.ASCII)
    except re.error as exc:
        at = None
        if exc.pos is not None:
            # Map the offset in our translation back to the user's pattern.
            length = 0
            for piece, origin in zip(translator.out, translator.origin, strict=True):
                if length + len(piece) > exc.pos:
                    at = origin
                    break
                length += len(piece)
        raise PatternError(f"pcre2: {exc.msg}", pattern, at) from None
    except (RecursionError, OverflowError) as exc:
        raise PatternError(f"pcre2: pattern too complex ({exc})", pattern, None) from None
    return OsRegex(source=pattern, regex=compiled)


# --------------------------------------------------------------------------------------------------
# Dispatch on the XML ``type`` attribute

_KINDS: Final = ("osmatch", "osregex", "pcre2")


def compile_pattern(pattern: str, kind: str, *, default: str) -> OsMatch | OsRegex:
    """Compile ``pattern`` as the XML ``type`` attribute says; ``default`` is used when it is empty.

    Wazuh compares the attribute case-insensitively and falls back to the default with a warning when
    it is unknown; we raise instead so the user sees the mistake.
    """
    chosen = (kind.strip() or default).strip().lower()
    if chosen == "osmatch":
        return compile_os_match(pattern)
    if chosen == "osregex":
        return compile_os_regex(pattern)
    if chosen == "pcre2":
        return compile_pcre2(pattern)
    raise PatternError(f"unknown pattern type {kind or default!r} (expected one of {', '.join(_KINDS)})")
