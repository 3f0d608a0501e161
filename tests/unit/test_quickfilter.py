"""The literal pre-checks must be necessary: a text a pattern matches always contains one of its needles.

If a needle were not necessary the engine would skip a rule or decoder that should have matched, silently.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from random import Random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from threatlockdown.ruleset.conditions import LogPattern, pattern_test
from threatlockdown.ruleset.decoders import Decoder
from threatlockdown.ruleset.loader import Ruleset, load_ruleset
from threatlockdown.ruleset.osregex import OsMatch, OsRegex, PatternError, compile_os_match, compile_os_regex
from threatlockdown.ruleset.predecoder import predecode
from threatlockdown.ruleset.quickfilter import required_literals

WAZUH_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "wazuh"
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def needles_hold(needles: tuple[str, ...] | None, text: str) -> bool:
    return needles is None or any(n in text.lower() for n in needles)


# ---------------------------------------------------------------- examples


@pytest.mark.parametrize(
    ("pattern", "kind", "expected"),
    [
        ("abc|DEF", "osmatch", ("abc", "def")),
        ("^Accepted $", "osmatch", ("accepted ",)),
        ("a||b", "osmatch", None),  # an empty alternative matches everything
        ("^|x", "osmatch", None),
        ("anything", "pcre2", None),  # no needles for PCRE2
        (r"^Failed \S+ for ", "osregex", ("failed ",)),
        (r"\(pam_unix\)", "osregex", ("(pam_unix)",)),
        (r"^\d+ ok", "osregex", (" ok",)),  # three characters is the minimum
        (r"^\d+ okay|^\w+ refused", "osregex", (" okay", " refused")),
        (r"ab\w+", "osregex", None),  # a two-letter run is too short
        (r"x\(+yz", "osregex", None),  # \(+ may repeat: the run breaks there
    ],
)
def test_required_literals_examples(pattern: str, kind: str, expected: tuple[str, ...] | None) -> None:
    assert required_literals(pattern, kind) == expected


# ---------------------------------------------------------------- property: random patterns and texts

_LITERALS = "abcAB xy-.:[]?{}=,'\"é"
_CLASSES = {
    "w": "aZ9-@_",
    "d": "0123456789",
    "s": " ",
    "t": "\t",
    "p": "!.:,;()[]",
    "W": " .:!é",
    "D": "aB .é",
    "S": "aB.:é",
    ".": "a Bé.\t",
}
_ESCAPED = {"(": "(", ")": ")", "\\": "\\", "$": "$", "|": "|", "<": "<"}


def _element(rnd: Random, in_group: bool = False) -> tuple[str, str]:
    """One OS_Regex pattern element and a text it accepts."""
    kinds = ["word", "literal", "class", "class", "escaped", "literal+"] + ([] if in_group else ["group"])
    kind = rnd.choice(kinds)
    if kind == "word":
        # Runs of literals are what needles come from: make them common.
        word = "".join(rnd.choice(_LITERALS) for _ in range(rnd.randint(2, 6)))
        return word, "".join(c.swapcase() if c.isascii() and rnd.random() < 0.3 else c for c in word)
    if kind == "literal":
        ch = rnd.choice(_LITERALS)
        return ch, ch.swapcase() if ch.isascii() and rnd.random() < 0.5 else ch
    if kind == "literal+":
        # After a literal, + and * are literal characters in OS_Regex.
        ch = rnd.choice("abc") + rnd.choice("+*")
        return ch, ch
    if kind == "escaped":
        code = rnd.choice(sorted(_ESCAPED))
        return "\\" + code, _ESCAPED[code]
    if kind == "class":
        code = rnd.choice(sorted(_CLASSES))
        mod = rnd.choice(["", "+", "*"])
        lo, hi = {"": (1, 1), "+": (1, 3), "*": (0, 2)}[mod]
        return "\\" + code + mod, "".join(rnd.choice(_CLASSES[code]) for _ in range(rnd.randint(lo, hi)))
    inner = [_element(rnd, in_group=True) for _ in range(rnd.randint(1, 3))]
    return "(" + "".join(p for p, _ in inner) + ")", "".join(t for _, t in inner)


def os_regex_case(rnd: Random) -> tuple[str, str]:
    """A pattern of one to three alternatives, and a text built to match one of them (often)."""
    alts: list[str] = []
    texts: list[str] = []
    for _ in range(rnd.randint(1, 3)):
        elements = [_element(rnd) for _ in range(rnd.randint(1, 6))]
        begin, end = rnd.random() < 0.3, rnd.random() < 0.3
        alts.append(("^" if begin else "") + "".join(p for p, _ in elements) + ("$" if end else ""))
        prefix = "" if begin else "".join(rnd.choice(_LITERALS) for _ in range(rnd.randint(0, 4)))
        suffix = "" if end else "".join(rnd.choice(_LITERALS) for _ in range(rnd.randint(0, 4)))
        texts.append(prefix + "".join(t for _, t in elements) + suffix)
    text = rnd.choice(texts)
    if text and rnd.random() < 0.3:
        # Sometimes damage the text so that near misses are tried too.
        at = rnd.randrange(len(text))
        text = text[:at] + text[at + 1 :]
    return "|".join(alts), text


def _check_os_regex(pattern: str, text: str) -> bool:
    """Whether the pattern matched; fails the test if it did and no needle is in the text."""
    try:
        compiled = compile_os_regex(pattern)
    except PatternError:
        return False
    if compiled.search(text) is None:
        return False
    assert needles_hold(required_literals(pattern, "osregex"), text), (pattern, text)
    return True


@given(st.randoms(use_true_random=False))
@PROPERTY
def test_os_regex_needles_are_necessary(rnd: Random) -> None:
    pattern, text = os_regex_case(rnd)
    _check_os_regex(pattern, text)


@given(st.randoms(use_true_random=False), st.text(_LITERALS + "0123456789\t!;()|$\\<İß", max_size=30))
@PROPERTY
def test_os_regex_needles_hold_on_arbitrary_text(rnd: Random, text: str) -> None:
    pattern, _ = os_regex_case(rnd)
    _check_os_regex(pattern, text)


def test_the_generated_cases_exercise_the_needles() -> None:
    # Guards the generator: most cases must match and many of them must have needles to check.
    rnd = Random(1234)
    matched = with_needles = 0
    for _ in range(300):
        pattern, text = os_regex_case(rnd)
        if _check_os_regex(pattern, text):
            matched += 1
            with_needles += required_literals(pattern, "osregex") is not None
    assert matched > 150 and with_needles > 60, (matched, with_needles)


def os_match_case(rnd: Random) -> tuple[str, str]:
    alphabet = "abAB $^.x-é"
    alts = ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 6))) for _ in range(rnd.randint(1, 3))]
    piece = rnd.choice(alts).strip("^$")
    noise = alphabet + "|"
    text = (
        "".join(rnd.choice(noise) for _ in range(rnd.randint(0, 4)))
        + piece
        + "".join(rnd.choice(noise) for _ in range(rnd.randint(0, 4)))
    )
    return "|".join(alts), text.swapcase() if rnd.random() < 0.5 else text


@given(st.randoms(use_true_random=False))
@PROPERTY
def test_os_match_needles_are_necessary(rnd: Random) -> None:
    pattern, text = os_match_case(rnd)
    if compile_os_match(pattern).matches(text.lower()):
        assert needles_hold(required_literals(pattern, "osmatch"), text), (pattern, text)


# ---------------------------------------------------------------- the shipped ruleset on real lines


def _ini_lines(name: str) -> list[str]:
    lines = []
    for raw in (WAZUH_DATA / name).read_text(encoding="utf-8").splitlines():
        key, sep, value = raw.partition("=")
        if sep and key.strip().startswith("log ") and key.strip().endswith(("pass", "fail")):
            lines.append(value.strip())
    return lines


@cache
def shipped() -> Ruleset:
    return load_ruleset()


def _all_decoders(rs: Ruleset) -> list[Decoder]:
    seen: dict[int, Decoder] = {}
    for parent in rs.decoders.parents:
        for dec in (parent, *parent.children):
            seen[id(dec)] = dec
    return list(seen.values())


def _log_pattern(conditions: tuple[object, ...]) -> LogPattern | None:
    for cond in conditions:
        if isinstance(cond, LogPattern) and not cond.negate:
            return cond
    return None


@pytest.mark.skipif(
    not (WAZUH_DATA / "sshd.ini").is_file(), reason=f"Wazuh test data not found in {WAZUH_DATA}"
)
def test_shipped_needles_are_necessary_on_wazuh_sshd_and_pam_lines() -> None:
    rs = shipped()
    lines = _ini_lines("sshd.ini") + _ini_lines("pam.ini")
    assert len(lines) > 70
    logs = [predecode(line).log for line in lines]
    rules_checked = decoders_checked = 0
    for rule in rs.rules.rules.values():
        cond = _log_pattern(rule.conditions)
        if rule.quick is None or cond is None:
            continue
        rules_checked += 1
        for log in logs:
            if pattern_test(cond.pattern, log):
                assert needles_hold(rule.quick, log), (rule.sid, rule.quick, log)
    for dec in _all_decoders(rs):
        if dec.prematch is None or dec.prematch_quick is None:
            continue
        decoders_checked += 1
        for log in logs:
            if dec.prematch.search(log) is not None:
                assert needles_hold(dec.prematch_quick, log), (dec.name, dec.prematch_quick, log)
    # The check above is only worth something if it looked at real needles.
    assert rules_checked > 30 and decoders_checked > 10


@pytest.mark.skipif(
    not (WAZUH_DATA / "sshd.ini").is_file(), reason=f"Wazuh test data not found in {WAZUH_DATA}"
)
def test_quick_filters_do_not_change_what_the_shipped_ruleset_decides() -> None:
    # The same lines through rules whose quick filters were removed give the same rule and decoder.
    from threatlockdown.analysis.session import AnalysisSession

    lines = _ini_lines("sshd.ini") + _ini_lines("pam.ini")
    fast = AnalysisSession(shipped(), manager_name="m")
    slow_rs = load_ruleset()
    for rule in slow_rs.rules.rules.values():
        rule.quick = None
    for dec in _all_decoders(slow_rs):
        dec.prematch_quick = None
    slow = AnalysisSession(slow_rs, manager_name="m")
    for line in lines:
        a, b = fast.process(line), slow.process(line)
        assert (a.rule and a.rule.id, a.event.decoder_name, a.event.fields) == (
            b.rule and b.rule.id,
            b.event.decoder_name,
            b.event.fields,
        ), line


def test_pattern_kinds_are_what_the_needles_assume() -> None:
    # Needles are lower-cased: they assume the case-insensitive kinds only.
    assert isinstance(compile_os_match("x"), OsMatch) and isinstance(compile_os_regex("x"), OsRegex)
    assert required_literals("Abc", "pcre2") is None
