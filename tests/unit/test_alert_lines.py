"""The alerts.json lines of ``tld analyze --alerts`` are, byte for byte, alert_line(output()) + newline.

AnalysisSession.alert_lines and ProcessResult.output_line assemble lines from pre-serialised parts
(analysis/alertline.py); every test here compares them with the plain path, alert_object serialised
by alert_line, over rules and events that reach every branch: $(field) descriptions, no_counter,
no_full_log, no_log, correlation, ignore windows, MITRE and compliance groups, remote agents, dotted
and unordered field names, text that needs escaping or that orjson refuses, and time zones whose
minutes are not all alike. The block reader (analysis/linereader.py) is compared with line-by-line
decoding.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from threatlockdown.analysis.alert import alert_line, format_timestamp
from threatlockdown.analysis.alertline import AlertLineEncoder
from threatlockdown.analysis.eventtime import ReplayClock
from threatlockdown.analysis.linereader import LineReader
from threatlockdown.analysis.session import AgentInfo, AnalysisSession
from threatlockdown.cli.main import main
from threatlockdown.ruleset.event import Event
from threatlockdown.ruleset.loader import Ruleset, RulesetSources, load_ruleset

DECODERS = """
<decoder name="t"><prematch>^t: </prematch></decoder>
<decoder name="t-kv"><parent>t</parent><regex>user=(\\S+)</regex><order>user</order></decoder>
<decoder name="t-kv"><parent>t</parent><regex>srcip=(\\S+)</regex><order>srcip</order></decoder>
<decoder name="t-kv"><parent>t</parent><regex>port=(\\d+)</regex><order>srcport</order></decoder>
<decoder name="t-kv"><parent>t</parent><regex>extra=(\\S+)</regex><order>extra</order></decoder>
<decoder name="t-kv"><parent>t</parent><regex>dot=(\\S+)</regex><order>a.b.c</order></decoder>
<decoder name="bare"><prematch>^bare </prematch><regex>^bare (\\S+)</regex><order>word</order></decoder>
"""

RULES = """<group name="test,">
<rule id="100" level="0"><decoded_as>t</decoded_as></rule>
<rule id="101" level="3"><if_sid>100</if_sid><match>fail</match>
  <description>failure for $(dstuser) from $(srcip) on $(hostname) [$(nothing)] 100% "quoted" é</description>
  <group>authentication_failed,pci_dss_10.2.4,gdpr_IV_35.7.d,</group>
  <mitre><id>T1110</id><id>T9999</id></mitre></rule>
<rule id="102" level="5"><if_sid>100</if_sid><match>count</match><options>no_counter</options>
  <description>not counted</description></rule>
<rule id="103" level="6"><if_sid>100</if_sid><match>short</match><options>no_full_log</options>
  <description>without the full log</description><info type="cve">CVE-2024-0001</info>
  <info type="link">https://example.org/</info></rule>
<rule id="104" level="7"><if_sid>100</if_sid><match>secret</match><options>no_log</options>
  <description>never written</description></rule>
<rule id="105" level="2"><if_sid>100</if_sid><match>low</match>
  <description>below the level</description></rule>
<rule id="106" level="4"><if_sid>100</if_sid><match>mail</match><options>alert_by_email</options>
  <description>mailed</description><group>hipaa_164.312.b,nist_800_53_AU.14,tsc_CC6.1,gpg13_7.1,</group></rule>
<rule id="107" level="3"><if_sid>100</if_sid><match>other</match><description>other</description></rule>
<rule id="110" level="10" frequency="3" timeframe="120" ignore="30">
  <if_matched_sid>101</if_matched_sid><same_source_ip /><description>repeated from $(srcip)</description>
  <mitre><id>T1110.001</id></mitre></rule>
<rule id="111" level="9" frequency="2" timeframe="60">
  <if_matched_group>authentication_failed</if_matched_group>
  <options>no_counter</options><description>group seen twice</description></rule>
<rule id="120" level="5"><decoded_as>bare</decoded_as><description>bare $(word)</description></rule>
<rule id="121" level="4"><match>plain</match><description>no decoder</description></rule>
</group>
"""

MESSAGES = (
    "t: fail user=bob srcip=10.1.2.3 port=22",
    "t: fail srcip=10.1.2.3 user=root extra=x",
    't: fail user="q\\\\uote" srcip=10.1.2.4',
    "t: fail user=\u00e9l\u00e8ve srcip=10.1.2.3 dot=deep",
    "t: count extra=1 port=9",
    "t: short srcip=192.0.2.1",
    "t: secret user=x",
    "t: low",
    "t: mail user=tab\there",
    "t: other ctl=\x01\x7f emoji=\U0001f600",
    "t: other srcip=\udcff",
    "t: fail user=\udcfe srcip=10.9.9.9",
    "bare w\u00f6rd",
    "plain words",
    "nothing here",
)
HEADERS = (
    "Jan  6 10:00:00 web01 prog: ",
    "Jan  6 10:00:00 db01 prog[12]: ",
    "2024-01-01T10:00:00.123+01:00 host prog[1]: ",
    "",
)
AGENTS = (
    None,
    AgentInfo("001", "web-1", "192.0.2.50"),
    AgentInfo("002", "", ""),
    AgentInfo("003", "b\udcadd", ""),
)
LOCATIONS = ("/var/log/secure", 'odd "location"\u00e9')
ZONES = ("UTC", "Asia/Kolkata", "America/St_Johns", "Australia/Lord_Howe", "Europe/Amsterdam")
# Epochs at which the chosen zone has minutes that are not all alike: Amsterdam's offset of +00:19:32
# until 1937 and Lord Howe's half-hour summer time.
STARTS = (1_767_680_700.0, 1_711_846_790.0, -1_025_745_600.0, 1_696_087_790.0, 0.0, -61.0)


def load(tmp: Path) -> Ruleset:
    ddir, rdir = tmp / "decoders", tmp / "rules"
    ddir.mkdir(exist_ok=True)
    rdir.mkdir(exist_ok=True)
    (ddir / "d.xml").write_text(DECODERS, encoding="utf-8")
    (rdir / "r.xml").write_text(RULES, encoding="utf-8")
    return load_ruleset(RulesetSources(decoder_dirs=(str(ddir),), rule_dirs=(str(rdir),), home=tmp))


class StepClock:
    """Event time moving by the given steps (seconds, fractions and steps back included)."""

    def __init__(self, start: float, steps: list[float]) -> None:
        self.now = start
        self.steps = steps
        self.i = 0

    def __call__(self, event: Event) -> float:
        self.now += self.steps[self.i % len(self.steps)]
        self.i += 1
        return self.now


@contextmanager
def zone(name: str) -> Iterator[None]:
    saved = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = saved
        time.tzset()


def reference(
    ruleset: Ruleset, lines: list[str], location: str, agent: AgentInfo | None, clock: StepClock
) -> list[tuple[str, bytes | None]]:
    """(rule id, line) of every alert, from process() and alert_line(output()): the plain path."""
    session = AnalysisSession(ruleset, manager_name="mgr", clock=clock)
    out: list[tuple[str, bytes | None]] = []
    for line in lines:
        result = session.process(line, location, agent)
        if result.alert:
            assert result.rule is not None
            written = alert_line(result.output()) + b"\n" if result.logged else None
            if written is not None:
                assert result.output_line() + b"\n" == written
            out.append((result.rule.id, written))
    return out


def fast(
    ruleset: Ruleset, lines: list[str], location: str, agent: AgentInfo | None, clock: StepClock
) -> list[tuple[str, bytes | None]]:
    session = AnalysisSession(ruleset, manager_name="mgr", clock=clock)
    return [(rule.id, text) for rule, text in session.alert_lines(lines, location, agent)]


_SCRIPT = st.lists(
    st.tuples(st.integers(0, len(HEADERS) - 1), st.integers(0, len(MESSAGES) - 1)), min_size=1, max_size=40
)
_STEPS = st.lists(
    st.sampled_from([0.0, 1.0, 1.0, 7.0, 0.25, 0.001, 59.0, 3600.0, -5.0, -0.5]), min_size=1, max_size=6
)


@settings(max_examples=150, deadline=None)
@given(
    script=_SCRIPT,
    steps=_STEPS,
    start=st.sampled_from(STARTS),
    zone_name=st.sampled_from(ZONES),
    agent=st.sampled_from(AGENTS),
    location=st.sampled_from(LOCATIONS),
)
def test_alert_lines_are_the_lines_of_the_plain_path(
    tmp_path_factory: pytest.TempPathFactory,
    script: list[tuple[int, int]],
    steps: list[float],
    start: float,
    zone_name: str,
    agent: AgentInfo | None,
    location: str,
) -> None:
    ruleset = load(_tmp(tmp_path_factory))
    lines = [HEADERS[h] + MESSAGES[m] for h, m in script]
    with zone(zone_name):
        expected = reference(ruleset, lines, location, agent, StepClock(start, steps))
        assert fast(ruleset, lines, location, agent, StepClock(start, steps)) == expected


def _tmp(factory: pytest.TempPathFactory) -> Path:
    """One ruleset directory for all hypothesis examples (function-scoped tmp_path cannot be used)."""
    path = factory.getbasetemp() / "alert-lines"
    path.mkdir(exist_ok=True)
    return path


def test_every_branch_is_reached(tmp_path: Path) -> None:
    """The script the hypothesis test draws from gives each kind of alert at least once."""
    ruleset = load(tmp_path)
    lines = [HEADERS[0] + m for m in MESSAGES] + [HEADERS[0] + MESSAGES[0]] * 4
    with zone("UTC"):
        got = fast(ruleset, lines, LOCATIONS[0], None, StepClock(STARTS[0], [1.0]))
        assert got == reference(ruleset, lines, LOCATIONS[0], None, StepClock(STARTS[0], [1.0]))
    alerts = {rule_id: json.loads(text) for rule_id, text in got if text is not None}
    assert alerts["101"]["rule"]["description"] == (
        'failure for bob from 10.1.2.3 on web01 [] 100% "quoted" \u00e9'
    )
    assert alerts["101"]["rule"]["mitre"]["id"] == ["T1110", "T9999"] and "pci_dss" in alerts["101"]["rule"]
    assert list(alerts["101"]["data"]) == ["srcip", "srcport", "dstuser"]  # static fields first
    assert "firedtimes" not in alerts["102"]["rule"] and list(alerts["102"]["data"]) == ["srcport", "extra"]
    assert "full_log" not in alerts["103"] and alerts["103"]["rule"]["cve"] == "CVE-2024-0001"
    assert ("104", None) in got and "105" not in dict(got)
    assert alerts["106"]["rule"]["mail"] is True
    assert alerts["110"]["rule"]["frequency"] == 3 and alerts["110"]["previous_output"].count("\n") == 1
    assert alerts["120"]["decoder"] == {"name": "bare"} and "predecoder" in alerts["120"]
    assert "decoder" not in alerts["121"] and "data" not in alerts["121"]
    # orjson refuses the lone surrogate: the line is json's, with every non-ASCII character escaped.
    surrogate = [text for rule_id, text in got if text is not None and b"\\udcfe" in text]
    assert surrogate and all(text.isascii() for text in surrogate)
    deep = [a for _, t in got if t is not None and "a" in (a := json.loads(t)).get("data", {})]
    assert deep and deep[0]["data"]["a"] == {"b": {"c": "deep"}}


@pytest.mark.parametrize("zone_name", ["UTC", "Europe/Amsterdam", "Australia/Lord_Howe", "Asia/Kolkata"])
def test_timestamps_at_whole_and_other_seconds_equal_format_timestamp(zone_name: str) -> None:
    """The whole-second shortcut (epoch - minute start looked up) gives format_timestamp's text after
    any remembered minute, including epochs where that difference could be inexact."""
    specials = [0.0, -0.0, 1e-300, -1e-300, 5e-324, 59.0, 59.999, 60.0, -60.0, -59.0, -1.0, 119.0, 120.0]
    specials += [59.99999999999999, -59.99999999999999, -60.00000000000001, 60.00000000000001]
    specials += [1_767_680_703.0, 1_767_680_703.0004, 1_767_680_760.0, -1_025_745_572.0, -1_025_745_540.0]
    specials += [1_696_087_800.0 + k for k in (-61, -60, -1, 0, 1, 59, 60, 1800, 1799)]
    event = Event("Jan  6 10:00:00 h prog: plain", "loc", "plain", "prog", "Jan  6 10:00:00", "h", True)
    rule = shipped().rules.rules[5715]
    with zone(zone_name):
        for first in specials:
            for then in specials:
                encoder = AlertLineEncoder()
                agent = encoder.agent_part("000", "", "", "m")
                encoder.line(event, rule, 1, [], first, 1, agent)
                line = encoder.line(event, rule, 1, [], then, 2, agent)
                assert json.loads(line)["timestamp"] == format_timestamp(then), (zone_name, first, then)


@cache
def shipped() -> Ruleset:
    return load_ruleset()


class Trickle(io.RawIOBase):
    """A raw stream that gives at most ``step`` bytes per read, like a pipe."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data = data
        self.step = step
        self.pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        chunk = self.data[self.pos : self.pos + min(self.step, len(buffer))]
        buffer[: len(chunk)] = chunk
        self.pos += len(chunk)
        return len(chunk)


_PIECES = st.sampled_from(
    [b"a", b"bc ", b"\n", b"\r", b"\r\n", b"\n\n", b"\xc3\xa9", b"\xe2\x82", b"\xff", b"\xf0"]
)


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(_PIECES, max_size=40), block=st.integers(1, 9), step=st.integers(1, 7))
def test_line_reader_gives_the_lines_of_line_by_line_decoding(
    pieces: list[bytes], block: int, step: int
) -> None:
    data = b"".join(pieces)
    expected = [raw.decode("utf-8", "replace").rstrip("\r\n") for raw in io.BytesIO(data)]
    expected = [line for line in expected if line]
    for stream in (io.BytesIO(data), io.BufferedReader(Trickle(data, step))):
        seen: list[int] = []
        reader = LineReader(stream, seen.append, block)
        assert list(reader) == expected
        assert reader.count == len(expected) and sum(seen) == len(data)


def test_analyze_writes_the_lines_of_the_plain_path(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """tld analyze --alerts, end to end: CRLF, empty and undecodable lines, the shipped ruleset."""
    lines = [
        b"Mar  3 10:00:00 web1 sshd[4242]: Invalid user admin from 198.51.100.7 port 4242\r\n",
        b"\n",
        b"Mar  3 10:00:01 web1 sshd[4243]: Invalid user r\xf6\xff from 198.51.100.7 port 4243\n",
        b"Mar  3 10:00:02 web1 sshd[4244]: Failed password for root from 198.51.100.7 port 4244 ssh2\n",
    ] * 5
    log = tmp_path / "secure"
    log.write_bytes(b"".join(lines))
    out = tmp_path / "alerts.json"
    assert main(["analyze", "--home", str(tmp_path), "--no-progress", str(log), "--alerts", str(out)]) == 0
    summary = capsys.readouterr().out.splitlines()
    session = AnalysisSession(shipped(), clock=ReplayClock())
    expected = b""
    for raw in lines:
        text = raw.decode("utf-8", "replace").rstrip("\r\n")
        if text:
            result = session.process(text, str(log))
            if result.logged:
                expected += alert_line(result.output()) + b"\n"
    assert expected and out.read_bytes() == expected
    assert summary[-1].startswith(f"analyzed 15 lines, {len(expected.splitlines())} alerts in ")
