"""Hostile and broken input: log lines and rule files that must give clear errors, never a crash or a hang."""

from __future__ import annotations

import io
import json
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import pytest

from threatlockdown.analysis.session import MAX_EVENT_CHARS, AnalysisSession
from threatlockdown.cli.main import main
from threatlockdown.errors import SourceErrors
from threatlockdown.ruleset.loader import Ruleset, RulesetSources, load_ruleset
from threatlockdown.xmlsrc import MAX_XML_BYTES

ATTACKER = "198.51.100.7"
INVALID_USER = f"Mar  3 10:00:00 web1 sshd[1]: Invalid user admin from {ATTACKER} port 4242"


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Fail the test instead of hanging: SIGALRM interrupts whatever runs too long."""

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@cache
def shipped() -> Ruleset:
    return load_ruleset()


def session() -> AnalysisSession:
    return AnalysisSession(shipped(), manager_name="mgr")


def ruleset_errors(tmp_path: Path, rules: bytes | str, decoders: str = "") -> list[str]:
    ddir, rdir = tmp_path / "decoders", tmp_path / "rules"
    ddir.mkdir()
    rdir.mkdir()
    (ddir / "d.xml").write_text(decoders or '<decoder name="d"><prematch>^x</prematch></decoder>')
    data = rules.encode("utf-8") if isinstance(rules, str) else rules
    (rdir / "bad_rules.xml").write_bytes(data)
    with time_limit(10), pytest.raises(SourceErrors) as info:
        load_ruleset(RulesetSources(decoder_dirs=(str(ddir),), rule_dirs=(str(rdir),), home=tmp_path))
    return [str(e) for e in info.value.errors]


# ---------------------------------------------------------------- log lines


def test_invalid_utf8_and_nul_bytes_in_an_analysed_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log = tmp_path / "secure"
    log.write_bytes(
        b"Mar  3 10:00:00 web1 sshd[1]: Invalid user \xff\xfe\x00ad\xc3 from "
        + ATTACKER.encode()
        + b" port 1\n"
        b"\x00\x00\x00\n"
        b"\xc3\x28\xa0\xa1 lone continuation bytes\r\n"
        b"Mar  3 10:00:01 web1 sshd[2]: Invalid user bob from " + ATTACKER.encode() + b" port 2\n"
    )
    out_file = tmp_path / "alerts.json"
    with time_limit(20):
        rc = main(["analyze", "--home", str(tmp_path), "--no-progress", str(log), "--alerts", str(out_file)])
    capsys.readouterr()
    assert rc == 0
    raw = out_file.read_bytes()
    alerts = [json.loads(line) for line in raw.decode("utf-8").splitlines()]  # strict UTF-8, valid JSON
    assert [a["rule"]["id"] for a in alerts] == ["5710", "5710"]
    assert alerts[0]["data"]["srcip"] == ATTACKER
    assert "\ufffd" in alerts[0]["full_log"] and "\x00" in alerts[0]["full_log"]


def test_invalid_utf8_on_logtest_stdin_even_with_a_strict_decoder(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = b"Mar  3 10:00:00 web1 sshd[1]: Invalid user \xff\x00x from " + ATTACKER.encode() + b" port 1\n"
    # What sys.stdin is under a UTF-8 locale: a strict text wrapper around the bytes.
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="strict"))
    with time_limit(20):
        rc = main(["logtest", "--home", str(tmp_path), "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    obj = json.loads(out)
    assert obj["rule"]["id"] == "5710" and obj["data"]["srcuser"] == "\ufffd\x00x"


def test_a_one_megabyte_line_is_cut_to_64_kib_and_processed_quickly() -> None:
    s = session()
    line = INVALID_USER + " " + "A" * 1_000_000
    with time_limit(5):
        started = time.perf_counter()
        result = s.process(line)
        elapsed = time.perf_counter() - started
    assert elapsed < 1.0
    assert len(result.event.full_log) == MAX_EVENT_CHARS == 65536
    assert result.event.full_log == line[:MAX_EVENT_CHARS]


@pytest.mark.parametrize(
    "body",
    [
        "a" * 1_000_000,
        " " * 1_000_000,
        "1." * 500_000,
        "Invalid user " + "x " * 500_000,
        "Failed password for " + "root from 1.2.3.4 port 22 " * 40_000,
        "Connection closed by " + "1.2.3.4 port 5 " * 70_000,
        "pam_unix(sshd:auth): authentication failure; " + "rhost= user= " * 80_000,
        ":" * 1_000_000,
        "\t" * 1_000_000,
    ],
    ids=["letters", "spaces", "dots", "invalid-user", "failed", "closed", "pam", "colons", "tabs"],
)
def test_huge_adversarial_lines_never_take_long(body: str) -> None:
    s = session()
    with time_limit(5):
        started = time.perf_counter()
        for line in (f"Mar  3 10:00:00 web1 sshd[1]: {body}", body):
            result = s.process(line)
            json.loads(result.output_line())  # the alert, if any, can be written
        assert time.perf_counter() - started < 1.0


def test_deeply_nested_json_in_a_log_line_does_not_crash_the_session() -> None:
    s = session()
    prefix = "2024/05/01 12:00:00 active-response/bin/firewall-drop: "
    with time_limit(5):
        deep = s.process(prefix + '{"a":' * 13_000 + "1" + "}" * 13_000)
        dotted = s.process(prefix + '{"' + "a." * 20_000 + 'b": 1, "command": "add"}')
        after = s.process(INVALID_USER)
    assert deep.event.decoder_name == "ar_log_json" and deep.event.fields == {}
    assert json.loads(dotted.output_line())["data"]["a"]["a"]  # written, nesting capped
    assert after.rule is not None and after.rule.id == "5710"  # the session goes on


def test_control_characters_and_odd_separators_in_lines() -> None:
    s = session()
    lines = [
        "",
        "\r",
        "Mar  3 10:00:00 web1 sshd[1]:",
        "Mar  3 10:00:00 web1 sshd[1]: \x1b[31mInvalid user x from 1.2.3.4 port 1\x1b[0m",
        "Mar 99 99:99:99 web1 sshd[1]: x",
        "<999>Mar  3 10:00:00 web1 sshd[1]: x",
        "\u2028\u2029\ufeff",
        "\udcff lone surrogate",
    ]
    with time_limit(5):
        for line in lines:
            result = s.process(line)
            json.loads(result.output_line())


# ---------------------------------------------------------------- rule and decoder files


def test_malformed_xml_names_the_file_and_line(tmp_path: Path) -> None:
    errors = ruleset_errors(
        tmp_path, '<group name="x">\n  <rule id="100" level="3">\n    <match>a</match>\n</group>\n'
    )
    assert len(errors) == 1
    assert "bad_rules.xml:4:" in errors[0] and "XML syntax error" in errors[0]
    assert "tld-wrapper" not in errors[0]


def test_unclosed_element_at_the_end_of_the_file(tmp_path: Path) -> None:
    errors = ruleset_errors(tmp_path, '<group name="x">\n  <rule id="100" level="3">\n')
    assert len(errors) == 1 and "bad_rules.xml:" in errors[0] and "XML syntax error" in errors[0]
    assert "tld-wrapper" not in errors[0]


def test_invalid_utf8_in_a_rule_file(tmp_path: Path) -> None:
    errors = ruleset_errors(
        tmp_path, b'<group name="x">\n<rule id="100" level="3">\n<match>\xff</match></rule></group>'
    )
    assert errors == [f"{tmp_path / 'rules' / 'bad_rules.xml'}:3: invalid UTF-8"]


def test_nul_byte_in_a_rule_file(tmp_path: Path) -> None:
    errors = ruleset_errors(
        tmp_path, '<group name="x">\n\n<rule id="100" level="3"><match>a\x00</match></rule></group>'
    )
    assert len(errors) == 1 and "bad_rules.xml:3:" in errors[0] and "NUL" in errors[0]


def test_file_larger_than_16_mib_is_refused(tmp_path: Path) -> None:
    filler = "<!-- " + "x" * 1024 + " -->\n"
    text = '<group name="x">\n' + filler * (MAX_XML_BYTES // len(filler) + 2) + "</group>\n"
    assert len(text) > MAX_XML_BYTES == 16 * 1024 * 1024
    errors = ruleset_errors(tmp_path, text)
    assert len(errors) == 1
    assert "bad_rules.xml" in errors[0] and f"larger than {MAX_XML_BYTES} bytes" in errors[0]


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<group name="x"><rule id="100" level="3"><match>&lol9;</match></rule></group>
"""
EXTERNAL_ENTITY = """<!DOCTYPE x [ <!ENTITY secret SYSTEM "file:///etc/passwd"> ]>
<group name="x"><rule id="100" level="3"><match>&secret;</match></rule></group>
"""


@pytest.mark.parametrize("text", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["laughs", "xxe"])
def test_dtds_and_entities_are_refused(tmp_path: Path, text: str) -> None:
    errors = ruleset_errors(tmp_path, text)
    assert len(errors) == 1
    assert errors[0].startswith(f"{tmp_path / 'rules' / 'bad_rules.xml'}:")
    assert errors[0].endswith(": DTDs and entities are not allowed")


def test_dtd_error_points_at_the_doctype_line(tmp_path: Path) -> None:
    errors = ruleset_errors(tmp_path, BILLION_LAUGHS)
    assert errors == [f"{tmp_path / 'rules' / 'bad_rules.xml'}:2: DTDs and entities are not allowed"]


def test_undefined_entity_reference_is_an_error_not_an_expansion(tmp_path: Path) -> None:
    errors = ruleset_errors(
        tmp_path, '<group name="x">\n<rule id="100" level="3"><match>&lol;</match></rule></group>'
    )
    assert len(errors) == 1 and "bad_rules.xml:2:" in errors[0]


def test_deeply_nested_elements_are_a_clear_error(tmp_path: Path) -> None:
    errors = ruleset_errors(tmp_path, "<group>" + "<x>" * 100_000 + "</x>" * 100_000 + "</group>")
    assert len(errors) >= 1 and all("bad_rules.xml" in e for e in errors)


@pytest.mark.parametrize(
    ("element", "line_of_element"),
    [
        ("<regex>(unclosed</regex>", 3),
        ("<regex>\\q</regex>", 3),
        ('<regex type="pcre2">(?&lt;name</regex>', 3),
        ("<match>" + "a" * 30_000 + "</match>", 3),
    ],
    ids=["paren", "escape", "pcre2", "too-long"],
)
def test_pattern_that_does_not_compile_names_file_line_and_element(
    tmp_path: Path, element: str, line_of_element: int
) -> None:
    errors = ruleset_errors(
        tmp_path, f'<group name="x">\n<rule id="100" level="3">\n  {element}\n</rule>\n</group>\n'
    )
    assert len(errors) == 1
    tag = element[1 : element.index(">")].split()[0]
    assert f"bad_rules.xml:{line_of_element}: <{tag}>: invalid pattern" in errors[0], errors


def test_bad_decoder_pattern_names_file_line_and_element(tmp_path: Path) -> None:
    decoders = (
        '<decoder name="d">\n  <prematch>^x</prematch>\n</decoder>\n'
        '<decoder name="e">\n  <parent>d</parent>\n  <regex>(a|b)</regex>\n</decoder>\n'
    )
    errors = ruleset_errors(tmp_path, '<group name="x"><rule id="100" level="3"/></group>', decoders)
    assert len(errors) == 1 and "d.xml:6: <regex>: invalid pattern" in errors[0], errors
