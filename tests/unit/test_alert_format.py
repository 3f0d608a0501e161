"""alerts.json objects: the schema and key order of Wazuh 4.x, checked against a real Wazuh alert.

The real alert (rule 5712) is GPL test data kept outside the repository and read at run time.
"""

from __future__ import annotations

import json
import re
import time
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from threatlockdown.analysis.alert import TimestampFormatter, alert_object, data_object, format_timestamp
from threatlockdown.analysis.session import AgentInfo, AnalysisSession, ProcessResult
from threatlockdown.ruleset.engine import Match
from threatlockdown.ruleset.event import Event
from threatlockdown.ruleset.loader import Ruleset, load_ruleset

WAZUH_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "wazuh"
REAL_ALERT = WAZUH_DATA / "cases_integratord_read_valid_json_alerts.yaml"
needs_real_alert = pytest.mark.skipif(
    not REAL_ALERT.is_file(), reason=f"Wazuh test data not found: {REAL_ALERT}"
)
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4}$")


@cache
def shipped() -> Ruleset:
    return load_ruleset()


@cache
def real_alert() -> dict[str, Any]:
    cases = yaml.safe_load(REAL_ALERT.read_text(encoding="utf-8"))
    sample: str = cases[0]["metadata"]["alert_sample"]
    return dict(json.loads(sample))


def replay_real_alert() -> ProcessResult:
    """The eight events of the real alert, oldest first, through the shipped ruleset."""
    real = real_alert()
    lines = [*reversed(real["previous_output"].split("\n")), real["full_log"]]
    session = AnalysisSession(shipped(), manager_name="localhost.localdomain")
    results = [session.process(line, location=real["location"]) for line in lines]
    return results[-1]


@needs_real_alert
def test_correlation_alert_has_the_keys_and_key_order_of_a_real_wazuh_alert() -> None:
    real, ours = real_alert(), replay_real_alert().output()
    assert list(ours) == list(real)
    for part in ("rule", "decoder", "predecoder", "data", "agent", "manager"):
        assert list(ours[part]) == list(real[part]), part
    assert list(ours["rule"]["mitre"]) == list(real["rule"]["mitre"])


@needs_real_alert
def test_correlation_alert_values_that_do_not_depend_on_the_clock() -> None:
    real, ours = real_alert(), replay_real_alert().output()
    for key in (
        "previous_output",
        "full_log",
        "predecoder",
        "decoder",
        "data",
        "location",
        "agent",
        "manager",
    ):
        assert ours[key] == real[key], key
    for key in ("level", "id", "frequency", "firedtimes", "mail", "groups", "pci_dss", "gdpr", "mitre"):
        assert ours["rule"][key] == real["rule"][key], key


@needs_real_alert
def test_previous_output_lists_the_earlier_events_newest_first() -> None:
    real = real_alert()
    stamps = [line[:15] for line in real["previous_output"].split("\n")]
    assert stamps == sorted(stamps, reverse=True)  # what Wazuh wrote: newest first
    result = replay_real_alert()
    assert [e.full_log for e in result.match.previous] == real["previous_output"].split("\n")
    assert real["full_log"] not in result.output()["previous_output"]


@needs_real_alert
def test_types_of_rule_fields_are_those_of_wazuh() -> None:
    rule = replay_real_alert().output()["rule"]
    real = real_alert()["rule"]
    for key in real:
        assert type(rule[key]) is type(real[key]), key
    assert isinstance(rule["id"], str) and isinstance(rule["level"], int)


def test_timestamp_format_is_wazuh_s(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        assert format_timestamp(1652272159.905) == "2022-05-11T12:29:19.905+0000"
        assert format_timestamp(1652272159.0) == "2022-05-11T12:29:19.000+0000"
        assert format_timestamp(1652272159.0004) == "2022-05-11T12:29:19.000+0000"
        # The cached formatter sessions use gives the same text, also across second boundaries.
        cached = TimestampFormatter()
        for i in range(3000):
            epoch = 1652272159.0 + i * 0.001
            assert cached(epoch) == format_timestamp(epoch), epoch
        assert cached(1652272159.905) == "2022-05-11T12:29:19.905+0000"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert TIMESTAMP.match(format_timestamp(time.time()))


def test_timestamp_shows_the_local_offset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        assert format_timestamp(1652272159.25) == "2022-05-11T17:59:19.250+0530"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_live_alert_timestamp_and_id() -> None:
    session = AnalysisSession(shipped(), manager_name="mgr")
    line = "Mar  3 10:00:00 web1 sshd[1]: Invalid user admin from 198.51.100.7 port 4242"
    first, second = session.process(line).output(), session.process(line).output()
    assert TIMESTAMP.match(first["timestamp"]), first["timestamp"]
    # "<epoch seconds>.<counter>", the counter growing within a session.
    sec1, n1 = first["id"].split(".")
    _, n2 = second["id"].split(".")
    assert sec1.isdigit() and abs(int(sec1) - time.time()) < 60
    assert int(n2) > int(n1)


@pytest.mark.parametrize(
    ("line", "predecoder"),
    [
        (
            "Mar  3 10:00:00 web1 sshd[1]: Invalid user admin from 198.51.100.7 port 4242",
            {"program_name": "sshd", "timestamp": "Mar  3 10:00:00", "hostname": "web1"},
        ),
        (
            "2024-05-01T10:00:00.123456+02:00 web1 sshd[1]: Invalid user admin from 198.51.100.7 port 4242",
            {"program_name": "sshd", "timestamp": "2024-05-01T10:00:00.123456+02:00"},
        ),
    ],
)
def test_predecoder_hostname_only_for_classic_bsd_headers(line: str, predecoder: dict[str, str]) -> None:
    out = AnalysisSession(shipped(), manager_name="mgr").process(line).output()
    assert out["predecoder"] == predecoder


def test_agent_block_for_local_and_remote_events() -> None:
    session = AnalysisSession(shipped(), manager_name="manager1")
    line = "Mar  3 10:00:00 web1 sshd[1]: Invalid user admin from 198.51.100.7 port 4242"
    assert session.process(line).output()["agent"] == {"id": "000", "name": "manager1"}
    remote = session.process(line, agent=AgentInfo(id="007", name="web1", ip="192.0.2.10")).output()
    assert remote["agent"] == {"id": "007", "name": "web1", "ip": "192.0.2.10"}
    assert remote["manager"] == {"name": "manager1"}


def test_no_rule_means_no_rule_key_and_no_previous_output() -> None:
    out = AnalysisSession(shipped(), manager_name="mgr").process("something nobody decodes").output()
    assert "rule" not in out and "previous_output" not in out and "decoder" not in out
    assert out["full_log"] == "something nobody decodes"
    assert list(out) == ["timestamp", "agent", "manager", "id", "full_log", "location"]


def test_data_puts_static_fields_first_and_nests_dotted_names() -> None:
    fields = {
        "custom": "x",
        "audit.user.name": "bob",
        "audit.user.id": "7",
        "dstuser": "root",
        "srcip": "1.2.3.4",
    }
    data = data_object(fields)
    assert list(data) == ["srcip", "dstuser", "custom", "audit"]
    assert data["audit"] == {"user": {"name": "bob", "id": "7"}}


def test_single_event_alert_has_no_frequency_and_counts_firedtimes() -> None:
    session = AnalysisSession(shipped(), manager_name="mgr")
    line = "Mar  3 10:00:00 web1 sshd[1]: Invalid user admin from 198.51.100.7 port 4242"
    out = session.process(line).output()
    assert "frequency" not in out["rule"] and "previous_output" not in out
    assert out["rule"]["firedtimes"] == 1
    assert session.process(line).output()["rule"]["firedtimes"] == 2


def test_alert_serialises_to_one_json_line_keeping_non_ascii() -> None:
    event = Event(full_log="t: usér ünïcode\tand tab", location="/var/log/x", log="t: usér")
    out = alert_object(event, Match(None), epoch=1_700_000_000.5, alert_id="1700000000.1", manager_name="m")
    text = json.dumps(out, ensure_ascii=False)
    assert "\n" not in text and "usér ünïcode" in text
    assert json.loads(text) == out
