"""The speed-ups of the analysis path give exactly the results of the plain path.

Each fast path is compared with the slow computation it replaces: the line memo (analysis/linememo.py)
with a session that has none, ``process_alert`` with ``process``, the pre-decoder's direct Event with
``Event.from_predecoded(predecode(...))``, the replay clock's same-minute shortcut with a fresh parse,
and the sibling index with the plain needle test.
"""

from __future__ import annotations

import gc
import os
import random
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from threatlockdown.analysis.alert import TimestampFormatter, format_timestamp
from threatlockdown.analysis.eventtime import ReplayClock
from threatlockdown.analysis.linememo import MAX_MESSAGE_CHARS
from threatlockdown.analysis.session import AgentInfo, AnalysisSession
from threatlockdown.cli.main import main
from threatlockdown.ruleset.event import Event
from threatlockdown.ruleset.loader import Ruleset, RulesetSources, load_ruleset
from threatlockdown.ruleset.predecoder import bsd_header, predecode, predecode_event
from threatlockdown.ruleset.siblings import SiblingIndex

DECODERS = """
<decoder name="t"><prematch>^t: </prematch></decoder>
<decoder name="t-fields"><parent>t</parent><regex>srcip=(\\S+)</regex><order>srcip</order></decoder>
<decoder name="t-fields"><parent>t</parent><regex>user=(\\S+)</regex><order>user</order></decoder>
<decoder name="t-fields"><parent>t</parent><regex>port=(\\d+)</regex><order>srcport</order></decoder>
"""

# Every kind of condition: message patterns, fields, and the ones that read more than the message
# (host, location, time, weekday, correlation), under a parent with enough children for an index.
RULES = """<group name="test,">
<rule id="100" level="0" noalert="1"><decoded_as>t</decoded_as></rule>
<rule id="101" level="3"><if_sid>100</if_sid><match>fail</match><group>authentication_failed,</group></rule>
<rule id="102" level="5"><if_sid>100</if_sid><match>fail</match><hostname>^web</hostname></rule>
<rule id="103" level="6"><if_sid>100</if_sid><match>login</match><location>secure</location></rule>
<rule id="104" level="4"><if_sid>100</if_sid><match>night</match><time>8 pm - 6 am</time></rule>
<rule id="105" level="4"><if_sid>100</if_sid><match>weekend</match><weekday>weekends</weekday></rule>
<rule id="106" level="7"><if_sid>100</if_sid><match>root</match><srcip>10.0.0.0/8</srcip></rule>
<rule id="107" level="2"><if_sid>100</if_sid><regex>port=\\d+$</regex></rule>
<rule id="108" level="0"><if_sid>100</if_sid><match>quiet</match></rule>
<rule id="109" level="3"><if_sid>100</if_sid><user>^admin</user></rule>
<rule id="110" level="10" frequency="3" timeframe="60" ignore="20">
  <if_matched_sid>101</if_matched_sid><same_source_ip /></rule>
<rule id="111" level="9" frequency="2" timeframe="30">
  <if_matched_group>authentication_failed</if_matched_group></rule>
<rule id="112" level="5"><if_sid>101</if_sid><match>twice</match></rule>
<rule id="113" level="1"><match>plain</match></rule>
</group>
"""

MESSAGES = (
    "t: fail srcip=10.1.2.3",
    "t: fail srcip=192.0.2.9 user=bob",
    "t: fail twice srcip=10.1.2.3",
    "t: login user=admin port=22",
    "t: night root srcip=10.9.9.9",
    "t: weekend quiet",
    "t: root srcip=192.0.2.1 port=2222",
    "t: quiet fail",
    "t: nothing here",
    "plain text",
    "other: fail",
)
HOSTS = ("web01", "db01")
LOCATIONS = ("/var/log/secure", "/var/log/auth.log")


def load(tmp_path: Path) -> Ruleset:
    ddir, rdir = tmp_path / "decoders", tmp_path / "rules"
    ddir.mkdir(exist_ok=True)
    rdir.mkdir(exist_ok=True)
    (ddir / "d.xml").write_text(DECODERS, encoding="utf-8")
    (rdir / "r.xml").write_text(RULES, encoding="utf-8")
    return load_ruleset(RulesetSources(decoder_dirs=(str(ddir),), rule_dirs=(str(rdir),), home=tmp_path))


class StepClock:
    """Event time that moves by the given steps (seconds), including backwards."""

    def __init__(self, steps: list[float]) -> None:
        self.now = 1_700_000_000.0
        self.steps = steps
        self.i = 0

    def __call__(self, event: Event) -> float:
        self.now += self.steps[self.i % len(self.steps)]
        self.i += 1
        return self.now


def outcomes(
    ruleset: Ruleset,
    script: list[tuple[int, int, int, int]],
    steps: list[float],
    *,
    memo: int,
    alert_only: bool,
) -> list[bytes | None]:
    """Every event's alerts.json line (alerts only, or all events) for one run of ``script``."""
    session = AnalysisSession(ruleset, manager_name="mgr", clock=StepClock(steps), memo_capacity=memo)
    out: list[bytes | None] = []
    for msg, host, loc, agent in script:
        line = f"Jan  6 10:00:00 {HOSTS[host]} prog: {MESSAGES[msg]}"
        who = AgentInfo("001", "agent-web", "192.0.2.50") if agent else None
        if alert_only:
            found = session.process_alert(line, LOCATIONS[loc], who)
            out.append(None if found is None else found.output_line())
        else:
            result = session.process(line, LOCATIONS[loc], who)
            out.append(b"%d%d " % (result.alert, result.logged) + result.output_line())
    return out


_SCRIPT = st.lists(
    st.tuples(
        st.integers(0, len(MESSAGES) - 1),
        st.integers(0, len(HOSTS) - 1),
        st.integers(0, len(LOCATIONS) - 1),
        st.integers(0, 1),
    ),
    min_size=1,
    max_size=60,
)
_STEPS = st.lists(st.sampled_from([0.5, 1.0, 7.0, 3600.0 * 7, 86400.0, -5.0]), min_size=1, max_size=5)


@settings(max_examples=150, deadline=None)
@given(script=_SCRIPT, steps=_STEPS, capacity=st.sampled_from([1, 3, 8192]))
def test_the_line_memo_changes_no_outcome(
    tmp_path_factory: pytest.TempPathFactory,
    script: list[tuple[int, int, int, int]],
    steps: list[float],
    capacity: int,
) -> None:
    ruleset = load(_tmp(tmp_path_factory))
    plain = outcomes(ruleset, script, steps, memo=0, alert_only=False)
    assert outcomes(ruleset, script, steps, memo=capacity, alert_only=False) == plain


@settings(max_examples=100, deadline=None)
@given(script=_SCRIPT, steps=_STEPS)
def test_process_alert_gives_the_alerts_of_process(
    tmp_path_factory: pytest.TempPathFactory, script: list[tuple[int, int, int, int]], steps: list[float]
) -> None:
    ruleset = load(_tmp(tmp_path_factory))
    full = outcomes(ruleset, script, steps, memo=8192, alert_only=False)
    expected = [line.split(b" ", 1)[1] if line and line.startswith(b"1") else None for line in full]
    assert outcomes(ruleset, script, steps, memo=8192, alert_only=True) == expected


def _tmp(factory: pytest.TempPathFactory) -> Path:
    """One ruleset directory for all hypothesis examples (function-scoped tmp_path cannot be used)."""
    path = factory.getbasetemp() / "fast-paths"
    path.mkdir(exist_ok=True)
    return path


def test_memo_hits_repeated_messages_and_keeps_their_context_rules_live(tmp_path: Path) -> None:
    ruleset = load(tmp_path)
    decoded: list[str] = []
    decode = ruleset.decoders.decode

    def counting_decode(event: Event, lowered: str | None = None) -> None:
        decoded.append(event.log)
        decode(event, lowered)

    ruleset.decoders.decode = counting_decode  # type: ignore[method-assign]
    session = AnalysisSession(ruleset, manager_name="mgr")
    line = "Jan  6 10:00:00 {} prog: t: fail user=bob"
    first = session.process(line.format("db01"), "x")
    assert first.rule is not None and first.rule.id == "101"
    # Same message, other host: the memo gives the decoding, but 102 (<hostname>) is checked again.
    second = session.process(line.format("web01"), "x")
    assert second.rule is not None and second.rule.id == "102"
    assert second.event.fields == {"dstuser": "bob"} and decoded == ["t: fail user=bob"]
    # The remembered fields are copied, never shared between events.
    assert second.event.fields is not first.event.fields
    # Memo hits still feed correlation memory: the second failure in the group completes 111.
    third = session.process(line.format("db01"), "x")
    assert third.rule is not None and third.rule.id == "111" and len(decoded) == 1


def test_memo_keeps_walks_that_read_only_the_message(tmp_path: Path) -> None:
    session = AnalysisSession(load(tmp_path), manager_name="mgr")
    session.process("Jan  6 10:00:00 h prog: t: quiet", "x")
    (kept,) = [session.memo.get("prog", "t: quiet")]
    assert kept is not None and kept.kept and kept.final is not None and kept.quiet
    assert kept.final.rule.sid == 108
    # A walk that searched correlation memory (101 has frequency children) is not kept.
    session.process("Jan  6 10:00:00 h prog: t: fail srcip=10.1.2.3", "x")
    fail = session.memo.get("prog", "t: fail srcip=10.1.2.3")
    assert fail is not None and not fail.kept and not fail.quiet


def test_memo_is_bounded_and_keeps_messages_that_come_back(tmp_path: Path) -> None:
    session = AnalysisSession(load(tmp_path), manager_name="mgr", memo_capacity=4)
    for i in range(10):
        session.process(f"Jan  6 10:00:00 h prog: t: message {i}", "x")
        assert len(session.memo) <= 2 * 4
        # One message seen on every round stays remembered however many others pass through.
        session.process("Jan  6 10:00:00 h prog: t: again", "x")
        if i:
            assert session.memo.get("prog", "t: again") is not None
    assert session.memo.get("prog", "t: message 0") is None  # long gone
    session.process("Jan  6 10:00:00 h prog: t: " + "x" * MAX_MESSAGE_CHARS, "x")
    assert session.memo.get("prog", "t: " + "x" * MAX_MESSAGE_CHARS) is None


def test_quiet_repeats_skip_the_event_but_not_the_clock_or_the_alert_ids(tmp_path: Path) -> None:
    ruleset = load(tmp_path)
    lines = [
        "Jan  6 10:00:00 h prog: t: nothing here",
        "Jan  6 10:00:05 h prog: t: nothing here",  # a quiet repeat: no Event is built
        "t: fail srcip=10.1.2.3",  # no header: gets the time of the line before
        "Jan  6 10:00:09 h prog: t: fail srcip=10.1.2.3",
    ]
    full = AnalysisSession(ruleset, manager_name="mgr", clock=ReplayClock(year=2025))
    expected = [(r.alert_id, r.epoch) for r in (full.process(line) for line in lines) if r.alert]
    fast = AnalysisSession(ruleset, manager_name="mgr", clock=ReplayClock(year=2025))
    got = [(r.alert_id, r.epoch) for r in (fast.process_alert(line) for line in lines) if r is not None]
    assert got == expected and len(got) == 2
    assert got[0][1] == ReplayClock(year=2025).time_of("Jan  6 10:00:05")


_HEADERS = st.sampled_from(
    [
        "Jan  6 06:25:03 db01 sshd[2963]: ",
        "Oct 10 10:00:01 host prog: ",
        "Oct 10 10:00:01 host prog:",
        "Oct 10 10:00:01 host prog[12] ",
        "Oct 10 10:00:01 host prog[12]: [ID 702911 auth.notice] ",
        "<13>Oct 10 10:00:01 host prog: ",
        "2024-01-01T10:00:00.123+01:00 host prog[1]: ",
        "<13>1 2024-01-01T00:00:00Z h app 12 - - ",
        "Mär 02 17:30:55 h p: ",
        "",
    ]
)


@settings(max_examples=400)
@given(head=_HEADERS, rest=st.text(max_size=40), location=st.sampled_from(["stdin", "/var/log/x"]))
def test_predecode_event_equals_the_event_built_from_predecode(head: str, rest: str, location: str) -> None:
    line = head + rest
    assert predecode_event(line, location) == Event.from_predecoded(predecode(line), line, location)


@settings(max_examples=400)
@given(head=_HEADERS, rest=st.text(max_size=40))
def test_bsd_header_gives_the_parts_predecode_gives(head: str, rest: str) -> None:
    line = head + rest
    parts = bsd_header(line)
    if parts is None:
        return
    found = predecode(line)
    assert parts == (found.timestamp, found.hostname, found.program_name, found.pid, found.log)
    assert found.hostname_in_alert


_MONTH = st.sampled_from(["Jan", "Feb", "dec", "Xyz"])
_DAY = st.sampled_from([" 6", "06", "31", "6"])
_TWO = st.sampled_from(["00", "05", "59", "99", "7", "0\u0663", "a1"])


@settings(max_examples=400)
@given(st.lists(st.tuples(_MONTH, _DAY, _TWO, _TWO, _TWO), min_size=1, max_size=30))
def test_replay_clock_same_minute_shortcut_equals_a_fresh_parse(
    stamps: list[tuple[str, str, str, str, str]],
) -> None:
    clock = ReplayClock(year=2025, last=123.0)
    last = 123.0
    for month, day, hour, minute, second in stamps:
        stamp = f"{month} {day} {hour}:{minute}:{second}"
        fresh = ReplayClock(year=2025, last=last)._parse(stamp)
        got = clock.time_of(stamp)
        if fresh is not None:
            last = fresh
        assert got == last


def test_sibling_index_gives_the_children_the_plain_test_gives() -> None:
    class Item:
        def __init__(self, quick: tuple[str, ...] | None) -> None:
            self.quick = quick

    rnd = random.Random(5)
    words = ["fail", "login", "root", "port", "error", "ssh", "x"]
    items = [
        Item(None if rnd.random() < 0.2 else tuple(rnd.sample(words, rnd.randint(1, 3)))) for _ in range(40)
    ]
    index = SiblingIndex(items)
    for _ in range(2000):
        text = " ".join(rnd.choice(words) for _ in range(rnd.randint(0, 5)))
        expected = [i for i in items if i.quick is None or any(n in text for n in i.quick)]
        assert list(index.candidates(text)) == expected
        assert list(index.candidates(text)) == expected  # again, from the kept list


def test_analyze_counts_the_same_alerts_with_and_without_alerts_json(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lines = [
        f"Mar  3 10:00:{i:02d} web1 sshd[{i}]: Invalid user admin from 198.51.100.{i % 3} port {4000 + i}"
        for i in range(40)
    ] + ["Mar  3 10:01:00 web1 CRON[1]: (root) CMD (true)"] * 5
    log = tmp_path / "secure"
    log.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    thresholds = gc.get_threshold()
    assert main(["analyze", "--home", str(tmp_path), "--no-progress", str(log)]) == 0
    counted = capsys.readouterr().out.splitlines()
    out_file = tmp_path / "alerts.json"
    assert (
        main(["analyze", "--home", str(tmp_path), "--no-progress", str(log), "--alerts", str(out_file)]) == 0
    )
    written = capsys.readouterr().out.splitlines()
    # Same per-rule table and totals; only the elapsed time may differ.
    assert [line.split(" in ")[0] for line in counted] == [line.split(" in ")[0] for line in written]
    assert counted[-1].startswith("analyzed 45 lines, ") and len(out_file.read_text().splitlines()) > 0
    # The replay's collector settings do not outlive it.
    assert gc.get_threshold() == thresholds and gc.get_freeze_count() == 0


_ZONES = [
    "UTC",
    "Asia/Kolkata",
    "America/St_Johns",
    "Europe/Amsterdam",
    "Australia/Lord_Howe",
    "Europe/Berlin",
]


@settings(max_examples=60, deadline=None)
@given(
    zone=st.sampled_from(_ZONES),
    start=st.floats(min_value=-2_000_000_000, max_value=4_000_000_000, allow_nan=False),
    steps=st.lists(st.floats(min_value=-90, max_value=90, allow_nan=False), min_size=1, max_size=40),
)
def test_timestamp_formatter_equals_format_timestamp(zone: str, start: float, steps: list[float]) -> None:
    saved = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time.tzset()
    try:
        cached = TimestampFormatter()
        epoch = start
        for step in steps:
            epoch += step
            assert cached(epoch) == format_timestamp(epoch), (zone, epoch)
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


def test_timestamp_formatter_around_offset_changes_and_old_local_mean_time() -> None:
    saved = os.environ.get("TZ")
    try:
        # Amsterdam left +01:19:32 (summer time of an offset with seconds) at 1937-07-01 00:00:28; Berlin's
        # DST starts 2024-03-31.
        for zone, around in (("Europe/Amsterdam", -1_025_745_572.0), ("Europe/Berlin", 1_711_846_800.0)):
            os.environ["TZ"] = zone
            time.tzset()
            cached = TimestampFormatter()
            for i in range(-7200, 7200, 7):
                epoch = around + i + 0.25
                assert cached(epoch) == format_timestamp(epoch), (zone, epoch)
    finally:
        if saved is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = saved
        time.tzset()


def test_a_match_equal_to_its_needles_is_not_tested_again_and_others_are(tmp_path: Path) -> None:
    rules = """<group name="test,">
<rule id="200" level="3"><match>alpha|beta</match></rule>
<rule id="201" level="3"><match>^gamma|delta</match></rule>
<rule id="202" level="3"><match negate="yes">epsilon</match></rule>
<rule id="203" level="3"><match>zeta</match><match>eta</match></rule>
<rule id="204" level="3"><regex>iota\\d+</regex></rule>
</group>
"""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.xml").write_text(rules, encoding="utf-8")
    (tmp_path / "decoders").mkdir()
    (tmp_path / "decoders" / "d.xml").write_text(DECODERS, encoding="utf-8")
    ruleset = load_ruleset(
        RulesetSources(
            decoder_dirs=(str(tmp_path / "decoders"),), rule_dirs=(str(tmp_path / "rules"),), home=tmp_path
        )
    )
    engine = AnalysisSession(ruleset, manager_name="mgr").engine
    remaining = {sid: len(engine.node_of(ruleset.rules.rules[sid]).conditions) for sid in range(200, 205)}
    # Only 200's plain alternatives are decided by the needle test; anchors, negation, concatenated
    # <match> elements (one pattern "zetaeta") and regexes still run.
    assert remaining == {200: 0, 201: 1, 202: 1, 203: 0, 204: 1}
    session = AnalysisSession(ruleset, manager_name="mgr", memo_capacity=0)
    for text, expected in [
        ("beta", "200"),
        ("gamma", "201"),
        ("xgamma", "202"),  # not anchored at the start: 201 fails, the negated 202 takes it
        ("other", "202"),
        ("epsilon zeta eta", None),
        ("epsilon zetaeta", "203"),
        ("epsilon iota7", "204"),
        ("epsilon", None),
    ]:
        found = session.process(text)
        assert (found.rule.id if found.rule else None) == expected, text
