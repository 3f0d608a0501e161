"""Wazuh's own ruleset tests (sshd.ini, pam.ini) run against ThreatLockDown's shipped ruleset.

The .ini files are GPL test data kept outside the repository, in ``<repo>/../shared/conformance/wazuh``;
they are read at run time and never copied. Semantics (see that folder's README.md, and Wazuh's
ruleset/testing/runtests.py): a ``log N pass|fail`` key repeated inside a section is ONE logtest run
whose lines share a session (frequency rules); only the last line's result counts. ``pass`` needs
exactly (rule, level, decoder); ``fail`` needs anything else, including no match at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from threatlockdown.analysis.session import AnalysisSession
from threatlockdown.ruleset.loader import Ruleset, load_ruleset

REPO = Path(__file__).resolve().parents[2]
WAZUH_DATA = REPO.parent / "shared" / "conformance" / "wazuh"
INI_FILES = ("sshd.ini", "pam.ini")

# Results we knowingly report differently from Wazuh, keyed by case id: (rule, level, decoder) we
# produce, and why. Each entry must also be listed in docs/ruleset.md. None today.
EXPECTED_DEVIATIONS: dict[str, tuple[tuple[str, int, str], str]] = {}

_SECTION = re.compile(r"^\[(?P<name>[^\]]+)\]\s*$")
# Like configparser: the key ends at the first '=' or ':'; values keep everything after it.
_OPTION = re.compile(r"^(?P<key>[^=:]+?)\s*[=:](?P<value>.*)$")
_LOG_KEY = re.compile(r"^log \d+ (?P<kind>pass|fail)$")


class IniFormatError(ValueError):
    """A line of a test file that is not a section, an option, a comment or a continuation."""


@dataclass(frozen=True)
class LogtestRun:
    """One wazuh-logtest invocation: lines sent in order, the last one is compared."""

    source: str
    section: str
    key: str
    lines: tuple[str, ...]
    expect_match: bool  # True for "pass", False for "fail"
    rule: str
    level: int
    decoder: str

    @property
    def case_id(self) -> str:
        return f"{self.source}[{self.section}]{self.key}".replace(" ", "-")


def parse_ini(text: str, source: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> every value given for it, in file order (repeated keys are kept)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    last_key: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if not line.strip() or line.lstrip().startswith((";", "#")):
            continue
        if raw[:1].isspace() and current is not None and last_key is not None:
            # configparser continuation line: part of the previous value.
            current[last_key][-1] += "\n" + line.strip()
            continue
        section = _SECTION.match(line)
        if section:
            current = sections.setdefault(section.group("name"), {})
            last_key = None
            continue
        option = _OPTION.match(line)
        if option is None or current is None:
            where = "outside any [section]" if current is None else "not 'key = value'"
            raise IniFormatError(f"{source}:{number}: {where}: {line!r}")
        last_key = option.group("key").strip().lower()
        current.setdefault(last_key, []).append(option.group("value").strip())
    return sections


def logtest_runs(text: str, source: str) -> list[LogtestRun]:
    runs: list[LogtestRun] = []
    for name, options in parse_ini(text, source).items():
        try:
            rule = options["rule"][-1].strip()
            level = int(options["alert"][-1])
            decoder = options["decoder"][-1].strip()
        except (KeyError, ValueError) as exc:
            raise IniFormatError(
                f"{source}: section [{name}]: missing or bad rule/alert/decoder: {exc}"
            ) from None
        for key, values in options.items():
            kind = _LOG_KEY.match(key)
            if kind is None:
                continue
            runs.append(
                LogtestRun(
                    source, name, key, tuple(values), kind.group("kind") == "pass", rule, level, decoder
                )
            )
    return runs


def _collect() -> list[LogtestRun] | None:
    if not WAZUH_DATA.is_dir():
        return None
    runs: list[LogtestRun] = []
    for name in INI_FILES:
        path = WAZUH_DATA / name
        runs.extend(logtest_runs(path.read_text(encoding="utf-8"), name))
    return runs


RUNS = _collect()
MISSING = f"Wazuh conformance data not found at {WAZUH_DATA} (expected next to the repository)"


@cache
def shipped_ruleset() -> Ruleset:
    return load_ruleset()


def outcome(run: LogtestRun) -> tuple[str, int, str] | None:
    """(rule id, level, decoder) of the run's last line; None when no rule matched."""
    session = AnalysisSession(shipped_ruleset())
    result = None
    for line in run.lines:
        result = session.process(line, location="stdin")
    assert result is not None
    if result.rule is None:
        return None
    return (result.rule.id, result.rule.level, result.event.decoder_name)


def _params() -> list[object]:
    if RUNS is None:
        return [pytest.param(None, id="wazuh-data-missing", marks=pytest.mark.skip(reason=MISSING))]
    return [pytest.param(run, id=run.case_id) for run in RUNS]


@pytest.mark.parametrize("run", _params())
def test_logtest_run(run: LogtestRun) -> None:
    got = outcome(run)
    wanted = (run.rule, run.level, run.decoder)
    deviation = EXPECTED_DEVIATIONS.get(run.case_id)
    if deviation is not None:
        documented, reason = deviation
        assert got == documented, f"documented deviation changed ({reason}): now {got}"
        return
    if run.expect_match:
        assert got == wanted, f"{run.lines[-1]!r}: expected {wanted}, got {got}"
    else:
        assert got != wanted, f"{run.lines[-1]!r}: must not produce {wanted}"


@pytest.mark.skipif(RUNS is None, reason=MISSING)
def test_ini_files_are_read_completely() -> None:
    # Numbers from Wazuh v4.14.7: a parser that drops repeated keys would find fewer lines.
    assert RUNS is not None
    by_file = {name: [r for r in RUNS if r.source == name] for name in INI_FILES}
    sshd = by_file["sshd.ini"]
    assert len({r.section for r in sshd}) == 33
    assert len(sshd) == 49
    assert sum(len(r.lines) for r in sshd) == 71
    assert max(len(r.lines) for r in sshd) == 8
    pam = by_file["pam.ini"]
    assert len(pam) == 5
    assert {r.rule for r in pam} == {"5501", "5502", "5503", "5504", "2502"}


def test_deviations_are_documented() -> None:
    doc = (REPO / "docs" / "ruleset.md").read_text(encoding="utf-8")
    if not EXPECTED_DEVIATIONS:
        assert "there is no expected" in doc, "docs/ruleset.md must say that Wazuh's tests pass unchanged"
    for case_id in EXPECTED_DEVIATIONS:
        assert case_id in doc, f"deviation {case_id} is not described in docs/ruleset.md"


def test_parser_keeps_repeated_keys_and_reports_bad_lines() -> None:
    text = "[freq]\nlog 1 pass = a\nlog 1 pass = b\nrule = 1\nalert = 2\ndecoder = d\nlog 2 fail = c\n"
    runs = logtest_runs(text, "x.ini")
    assert [(r.key, r.lines, r.expect_match) for r in runs] == [
        ("log 1 pass", ("a", "b"), True),
        ("log 2 fail", ("c",), False),
    ]
    with pytest.raises(IniFormatError, match=r"x\.ini:2: not 'key = value'"):
        parse_ini("[s]\njust some text\n", "x.ini")
    with pytest.raises(IniFormatError, match=r"x\.ini:1: outside any \[section\]"):
        parse_ini("rule = 1\n", "x.ini")
    with pytest.raises(IniFormatError, match=r"section \[s\]"):
        logtest_runs("[s]\nlog 1 pass = a\n", "x.ini")
