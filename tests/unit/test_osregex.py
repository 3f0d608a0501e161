"""OS_Match, OS_Regex and PCRE2 translation: tokens, anchors, alternation, groups, errors, properties."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from threatlockdown.ruleset.osregex import (
    MAX_PATTERN_LENGTH,
    OsMatch,
    OsRegex,
    PatternError,
    compile_os_match,
    compile_os_regex,
    compile_pattern,
    compile_pcre2,
)


def groups(pattern: str, text: str) -> tuple[str | None, ...] | None:
    found = compile_os_regex(pattern).search(text)
    return None if found is None else found.groups()


def matches(pattern: str, text: str) -> bool:
    return compile_os_regex(pattern).search(text) is not None


# --------------------------------------------------------------------------------------------------
# OS_Regex character tests

PUNCT = "!\"#$%&'()*+,-.:;<=>?[]{|}"


@pytest.mark.parametrize(
    ("escape", "accepted", "rejected"),
    [
        (r"\d", "0123456789", "aZ -.\t"),
        (r"\w", "azAZ09-@_", ". :/\t!#"),
        (r"\s", " ", "\ta_\n"),
        (r"\t", "\t", " a"),
        (r"\p", PUNCT, "/@^_`~\\ a1"),
        (r"\W", ". :/\t!#é", "azAZ09-@_"),
        (r"\D", "aZ -.\té", "0123456789"),
        (r"\S", "a\t.é-", " "),
        (r"\.", "a .\t\né", ""),
        (r"\(", "(", ")a"),
        (r"\)", ")", "(a"),
        (r"\\", "\\", "/a"),
        (r"\$", "$", "a"),
        (r"\|", "|", "a"),
        (r"\<", "<", ">a"),
    ],
)
def test_escape_accepts_exactly_its_characters(escape: str, accepted: str, rejected: str) -> None:
    compiled = compile_os_regex(f"^{escape}$")
    for ch in accepted:
        assert compiled.search(ch) is not None, (escape, ch)
    for ch in rejected:
        assert compiled.search(ch) is None, (escape, ch)


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("a.c", "a.c", True),  # '.' is a literal dot
        ("a.c", "abc", False),
        ("a[b]?{", "xa[b]?{", True),  # [ ] ? { are literal too
        ("a+", "a+", True),  # '+' after a literal is a literal
        ("a+", "aa", False),
        ("a*b", "a*b", True),
        (r"\d+", "x123", True),
        (r"\d+", "xyz", False),
        (r"a\d*b", "ab", True),  # '*' allows none
        (r"a\d*b", "a12b", True),
        (r"a\d+b", "ab", False),  # '+' needs one
        ("b^c", "ab^cd", True),  # '^' and '$' in the middle are literal
        ("b$c", "ab$cd", True),
        (r"x\$", "ax$", True),  # escaped '$' at the end is a literal, not an anchor
        (r"x\$", "ax", False),
    ],
)
def test_literals_and_modifiers(pattern: str, text: str, expected: bool) -> None:
    assert matches(pattern, text) is expected


def test_case_insensitive_but_captures_keep_case() -> None:
    assert groups(r"USER (\S+) FROM", "user Admin from x") == ("Admin",)
    assert groups(r"user (\S+) from", "USER ROOT FROM x") == ("ROOT",)
    # Only ASCII letters fold, as Wazuh's charmap does.
    assert matches("é", "É") is False
    assert matches("é", "é") is True


# --------------------------------------------------------------------------------------------------
# Anchors, alternation, groups


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("^abc", "abcd", True),
        ("^abc", "xabc", False),
        ("abc$", "xabc", True),
        ("abc$", "abcx", False),
        ("abc$", "abc\n", False),  # '$' is the end of the text, not before a final newline
        ("^abc$", "abc", True),
        ("^abc$", "abcabc", False),
        (r"^\d+$", "123", True),
        (r"^\d+$", "12a3", False),
        ("x|^abc", "zabc", False),
        ("x|^abc", "abc", True),
        ("x|y", "ay", True),
        ("", "anything", False),  # an empty pattern never matches in Wazuh
        ("a|", "b", False),  # nor does an empty alternative
        ("^$", "", False),
    ],
)
def test_anchors_and_alternatives(pattern: str, text: str, expected: bool) -> None:
    assert matches(pattern, text) is expected


def test_groups_are_numbered_per_alternative() -> None:
    pattern = r" from (\S+)$| from (\S+) port (\d+)$"
    assert groups(pattern, "Did not receive identification string from 10.0.0.1") == ("10.0.0.1",)
    assert groups(pattern, "Bad protocol version from 10.0.0.1 port 4242") == ("10.0.0.1", "4242")


def test_first_alternative_that_matches_anywhere_wins() -> None:
    # Python's leftmost-match alternation would pick "b=2" here; Wazuh tries alternatives in order.
    found = compile_os_regex(r"a=(\d+)|b=(\d+)").search("b=2 a=1")
    assert found is not None and found.groups() == ("1",)
    # The combined regex still answers yes/no the same way.
    assert compile_os_regex(r"a=(\d+)|b=(\d+)").regex.search("b=2") is not None


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        (
            r"^ \S+ for (\S+) from (\S+) port (\S+)",
            " password for root from 10.0.0.1 port 22 ssh2",
            ("root", "10.0.0.1", "22"),
        ),
        (r"(\S+) from (\S+)", " admin from 172.17.1.1 port 39588", ("admin", "172.17.1.1")),
        (
            r"^\w+ for \S+ [(\S+)] |^\w+ for (\S+) ",
            "address for x.example [10.1.1.1] failed - POSSIBLE",
            ("10.1.1.1",),
        ),
        (r"^\w+ for \S+ [(\S+)] |^\w+ for (\S+) ", "address for 10.1.1.1 failed", ("10.1.1.1",)),
        (r"rhost=(\S+)\s+user=(\S+)", "auth failure; rhost=1.2.3.4  user=root", ("1.2.3.4", "root")),
        (r"^(\S+) port (\d+): |^(\S+): ", "1.2.3.4 port 55: no matching", ("1.2.3.4", "55")),
        (r"^(\S+) port (\d+): |^(\S+): ", "fe80::1: no matching", ("fe80::1",)),
        (r"(\d+)", "ab123cd", ("123",)),  # a repetition at the end takes the whole run
        (r"(\S+)", "  xyz  ", ("xyz",)),
    ],
)
def test_decoder_style_captures(pattern: str, text: str, expected: tuple[str, ...]) -> None:
    assert groups(pattern, text) == expected


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        # A repetition followed by something it overlaps with stops as early as it can ...
        (r"(\S+):(\d+)", "host:8080", ("host", "8080")),
        # ... and grows again when the rest of the pattern fails.
        (r"(\S+):(\d+)", "a:b:12", ("a:b", "12")),
        # After growing past a ':' Wazuh takes the next character too, so it never splits "::".
        (r"(\S+):(\d+)", "fe80::1:8080", ("fe80::1", "8080")),
        (r"\[(\S+)\]", "x [a]b] y", None),  # \[ is not an OS_Regex escape: see the error tests
        # \. is any character, so (\d+)\.(\d+) splits a digit run lazily.
        (r"(\d+)\.(\d+)\.(\d+)\.(\d+)", "10.0.0.1", ("10", "0", "0", "1")),
        # The next element is optional (\d*): Wazuh leaves \w* only where \d starts.
        (r"(\w*)\d*(\s+)", "abc42  ", ("abc", "  ")),
        # No overlap with the next element: Wazuh never gives characters back.
        (r"(\w+)\s*-(\d+)", "ab-12", None),
        (r"(\w+) -(\d+)", "ab -12", ("ab", "12")),
        # Wazuh never starts a match at the end of a non-empty text.
        (r"\s*$", "a", None),
        (r"\s*$", "a ", ()),
        (r"^\s*$", "", ()),  # (Wazuh reads past the end of an empty text here; we match.)
    ],
)
def test_wazuh_repetition_choices(pattern: str, text: str, expected: tuple[str, ...] | None) -> None:
    if pattern.startswith(r"\["):
        with pytest.raises(PatternError):
            compile_os_regex(pattern)
        return
    assert groups(pattern, text) == expected


# --------------------------------------------------------------------------------------------------
# Malformed patterns


@pytest.mark.parametrize(
    ("pattern", "problem", "offset"),
    [
        ("abc\\", "lone backslash", 3),
        (r"a\x", "unknown escape '\\x'", 1),
        (r"\[x\]", "unknown escape '\\['", 0),
        (r"\^", "unknown escape '\\^'", 0),
        ("(abc", "never closed", 0),
        ("ab)c", "without a matching '('", 2),
        ("((a))", "nested '('", 1),
        ("(a|b)", "'|' inside a group", 2),
        ("x()", "empty group", 2),
    ],
)
def test_malformed_os_regex_is_rejected_with_position(pattern: str, problem: str, offset: int) -> None:
    with pytest.raises(PatternError) as caught:
        compile_os_regex(pattern)
    assert problem in str(caught.value)
    assert caught.value.position == offset
    assert f"at offset {offset}" in str(caught.value)
    assert repr(pattern) in str(caught.value)


def test_overlong_patterns_are_rejected() -> None:
    with pytest.raises(PatternError, match="longer than"):
        compile_os_regex("a" * (MAX_PATTERN_LENGTH + 1))
    with pytest.raises(PatternError, match="longer than"):
        compile_os_match("a" * (MAX_PATTERN_LENGTH + 1))
    assert isinstance(compile_os_regex("a" * MAX_PATTERN_LENGTH), OsRegex)


def test_pattern_error_is_a_value_error_and_works_without_pattern() -> None:
    assert issubclass(PatternError, ValueError)
    assert str(PatternError("just this")) == "just this"


# --------------------------------------------------------------------------------------------------
# OS_Match


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("failed password", "Dec 1 sshd: Failed Password for root", True),
        ("failed password", "Dec 1 sshd: Failed password", True),
        ("failed passwords", "Failed password", False),
        ("^error: ", "error: PAM", True),
        ("^error: ", "an error: PAM", False),
        ("refused$", "connection refused", True),
        ("refused$", "refused connection", False),
        ("^exact$", "EXACT", True),
        ("^exact$", "exactly", False),
        ("a|b|^c", "xxb", True),
        ("a|b|^c", "xxc", False),
        ("a.c[*]+?(x)", "A.C[*]+?(X)", True),  # no metacharacters besides ^ $ |
        ("a.c", "abc", False),
        (r"a\|b", "xa\\y", True),  # no escapes: this is "a\" or "b", not "a|b"
        (r"a\|b", "a|", False),
        ("x^y", "x^y", True),  # '^' in the middle is literal
        ("x$y", "x$y", True),
        ("abc|", "zzz", True),  # an empty alternative matches everything, as in Wazuh
        ("^", "zzz", True),
        ("$", "zzz", True),
        ("^$", "", True),
        ("^$", "z", False),
    ],
)
def test_os_match(pattern: str, text: str, expected: bool) -> None:
    assert compile_os_match(pattern).matches(text.lower()) is expected


def test_os_match_needs_no_regex_for_literals() -> None:
    compiled = compile_os_match("^Start|Middle|End$|^Whole$")
    assert compiled.prefixes == ("start",)
    assert compiled.contains == ("middle",)
    assert compiled.suffixes == ("end",)
    assert compiled.equals == frozenset({"whole"})
    assert not compiled.always
    assert not any(isinstance(value, re.Pattern) for value in (compiled.prefixes, compiled.contains))


# --------------------------------------------------------------------------------------------------
# compile_pattern


def test_compile_pattern_dispatches_on_type() -> None:
    assert isinstance(compile_pattern("a|b", "", default="osmatch"), OsMatch)
    assert isinstance(compile_pattern(r"\d+", "", default="osregex"), OsRegex)
    assert isinstance(compile_pattern(r"\d+", "OSRegex", default="osmatch"), OsRegex)
    as_pcre = compile_pattern(r"\d{3}", "pcre2", default="osmatch")
    assert isinstance(as_pcre, OsRegex) and as_pcre.search("a123") is not None
    assert isinstance(compile_pattern("x", " osmatch ", default="pcre2"), OsMatch)


@pytest.mark.parametrize(("kind", "default"), [("regex", "osmatch"), ("", "sregex"), ("posix", "pcre2")])
def test_compile_pattern_rejects_unknown_types(kind: str, default: str) -> None:
    with pytest.raises(PatternError, match="unknown pattern type"):
        compile_pattern("x", kind, default=default)


# --------------------------------------------------------------------------------------------------
# PCRE2


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("Failed", "failed", None),  # case-sensitive by default
        ("(?i)Failed", "failed", ()),
        (r"abc\z", "abc\n", None),
        (r"abc\Z", "abc\n", ()),  # PCRE \Z allows a final newline
        (r"a\hb", "a\tb", ()),
        (r"a\Hb", "a\tb", None),
        (r"a\vb", "a\rb", ()),
        (r"a\Rb", "a\r\nb", ()),
        (r"a\Nb", "a\nb", None),
        (r"\x{41}\x42\e", "AB\x1b", ()),
        (r"\o{101}", "A", ()),
        (r"\cA", "\x01", ()),
        (r"\Q.*+\E!", "x.*+!", ()),
        ("[[:digit:]]+-[[:alpha:]]+", "12-ab", ()),
        ("[[:^digit:][:space:]]", "a", ()),
        ("[[:punct:]]", "_", ()),
        ("[a[]", "[", ()),
        ("[a&&b]", "&", ()),
        (r"(?<user>\w+)@(?'host'\w+) \k<user>", "bob@box bob", ("bob", "box")),
        (r"(\w)\g{1}", "xx", ("x",)),
        ("a(?i)b|c", "aB", ()),
        ("a(?i)b|c", "C", ()),  # the option also applies after '|' in the same group
        ("(a(?i)b)c", "aBc", ("aB",)),
        ("(a(?i)b)c", "aBC", None),  # ... but ends with the group
        ("(?i:a)b", "Ab", ()),
        ("(?i:a)b", "AB", None),
        ("(x)?(?(1)a|b)", "b", (None,)),
        (r"(?#comment)x", "x", ()),
        (r"\d+(?=px)", "12px", ()),
        (r"(?>a+)b", "aab", ()),
        (r"a++b", "aab", ()),
        (r"\d", "٣", None),  # ASCII classes: PCRE2 as Wazuh compiles it has no UCP
    ],
)
def test_pcre2(pattern: str, text: str, expected: tuple[str, ...] | None) -> None:
    found = compile_pcre2(pattern).search(text)
    assert (None if found is None else found.groups()) == expected


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        (r"a\Kb", "not supported"),
        ("(?R)", "recursion"),
        ("(?1)", "recursion"),
        (r"\p{L}", "Unicode properties"),
        ("(*UTF)a", "verbs"),
        ("(?|a)", "branch reset"),
        ("(?x)a b", "not supported"),
        ("[[:^alpha:]]", "negated POSIX class"),
        ("[[:bogus:]]", "unknown POSIX class"),
        ("(a", "missing ')'"),
        ("a)", "without a matching '('"),
        ("[abc", "missing ']'"),
        (r"a\i", "unknown escape"),
        ("a{2,1}", "pcre2"),
    ],
)
def test_pcre2_unsupported_or_malformed(pattern: str, problem: str) -> None:
    with pytest.raises(PatternError, match=re.escape(problem)):
        compile_pcre2(pattern)


def test_pcre2_error_offset_points_into_the_users_pattern() -> None:
    # The translation makes the pattern longer before the error; the offset must still be ours
    # (14 is the "2" of "x{2,1}" in the user's pattern; the translated text has it near 40).
    with pytest.raises(PatternError) as caught:
        compile_pcre2(r"(?<n>\h\h\h)x{2,1}")
    assert caught.value.position == 14


# --------------------------------------------------------------------------------------------------
# Properties

_LITERAL_CHARS = st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs"))


def _ascii_lower(text: str) -> str:
    return text.translate({c: c + 32 for c in range(ord("A"), ord("Z") + 1)})


def _os_regex_escape(literal: str) -> str:
    return "".join("\\" + ch if ch in "$()\\|<" else ch for ch in literal)


@given(needle=st.text(_LITERAL_CHARS, min_size=1, max_size=12), hay=st.text(_LITERAL_CHARS, max_size=40))
def test_os_match_literal_is_substring_search(needle: str, hay: str) -> None:
    assume("|" not in needle and not needle.startswith("^") and not needle.endswith("$"))
    text = hay[: len(hay) // 2] + needle + hay[len(hay) // 2 :] if len(hay) % 3 else hay
    compiled = compile_os_match(needle)
    assert compiled.matches(text.lower()) is (needle.lower() in text.lower())


@given(needle=st.text(_LITERAL_CHARS, min_size=1, max_size=12), hay=st.text(_LITERAL_CHARS, max_size=40))
def test_escaped_os_regex_literal_is_substring_search(needle: str, hay: str) -> None:
    pattern = _os_regex_escape(needle)
    # '^' first and '$' last are anchors, and '+'/'*' after an escape are modifiers: not literals.
    assume(not needle.startswith("^") and not re.search(r"\\.[+*]", pattern) and not pattern.endswith("$"))
    text = hay[: len(hay) // 2] + needle + hay[len(hay) // 2 :] if len(hay) % 3 else hay
    found = compile_os_regex(pattern).search(text)
    assert (found is not None) is (_ascii_lower(needle) in _ascii_lower(text))
    if found is not None:
        assert _ascii_lower(found.group(0)) == _ascii_lower(needle)


@given(st.text(st.characters(codec="utf-8"), max_size=60))
def test_digit_run_capture_is_the_first_maximal_ascii_digit_run(text: str) -> None:
    found = compile_os_regex(r"(\d+)").search(text)
    expected = re.search("[0-9]+", text)
    assert (found is None) is (expected is None)
    if found is not None and expected is not None:
        assert found.group(1) == expected.group(0)


_ESCAPE_ATOMS = [r"\d", r"\w", r"\s", r"\S", r"\p", r"\.", r"\W", r"\D", r"\t", r"\(", r"\x"]
_PATTERN_ATOMS = st.sampled_from([*"ab1:- .^$|()+*[]?{}", *_ESCAPE_ATOMS, "\\"])
_random_patterns = st.lists(_PATTERN_ATOMS, max_size=14).map("".join)


@given(st.one_of(_random_patterns, st.text(max_size=30)))
def test_compiling_random_text_succeeds_or_raises_pattern_error(pattern: str) -> None:
    for compile_ in (compile_os_regex, compile_pcre2):
        try:
            result = compile_(pattern)
        except PatternError:
            continue
        assert isinstance(result, OsRegex)
    assert isinstance(compile_os_match(pattern), OsMatch)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pattern=_random_patterns, text=st.text(st.sampled_from("ab1:- .x"), min_size=1000, max_size=3000))
def test_random_patterns_on_long_texts_finish_quickly(pattern: str, text: str) -> None:
    try:
        compiled = compile_os_regex(pattern)
    except PatternError:
        return
    started = time.perf_counter()
    compiled.search(text)
    compiled.search(text + "\n")
    assert time.perf_counter() - started < 0.5, pattern


@pytest.mark.parametrize(
    "pattern",
    [r"\.*a\.*a\.*a\.*b", r"\S+x\S+y\S+z", r"(\S+x\S+y\S+)z", r"\S*\S*\S*\S*\S*x", r"\w+\s+\w+\s+\w+\s*$"],
)
def test_many_overlapping_repetitions_do_not_backtrack_polynomially(pattern: str) -> None:
    # Plain backtracking would take O(n^4) or worse here; the atomic parts keep it (near) linear.
    compiled = compile_os_regex(pattern)
    started = time.perf_counter()
    compiled.search("x" * 20000)
    compiled.search("a " * 10000 + "-")
    assert time.perf_counter() - started < 0.5
