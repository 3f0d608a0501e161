"""The syslog pre-decoder: Wazuh's conformance cases, every header form, journald records, robustness."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from threatlockdown.ruleset.event import Predecoded
from threatlockdown.ruleset.predecoder import _general, predecode, predecode_journald

# Wazuh's own test data is read from ../shared at run time and never copied into the repository.
SHARED = Path(__file__).resolve().parents[2].parent / "shared"
SYSLOG_CASES = SHARED / "conformance" / "wazuh" / "cases_syslog_socket_input.yaml"


def _wazuh_cases() -> list[Any]:
    if not SYSLOG_CASES.is_file():
        reason = f"Wazuh conformance data not found at {SYSLOG_CASES}"
        return [pytest.param(None, marks=pytest.mark.skip(reason=reason), id="data-missing")]
    cases = yaml.safe_load(SYSLOG_CASES.read_text(encoding="utf-8"))
    return [pytest.param(case, id=case["name"]) for case in cases]


@pytest.mark.parametrize("case", _wazuh_cases())
def test_wazuh_predecoder_stage_cases(case: dict[str, Any]) -> None:
    request = json.loads(case["metadata"]["input"])
    expected = json.loads(case["metadata"]["output"])
    found = predecode(request["parameters"]["event"])
    # The alert's predecoder block: program_name and timestamp when set, hostname only for
    # classic BSD headers.
    shown: dict[str, str] = {}
    if found.program_name:
        shown["program_name"] = found.program_name
    if found.timestamp:
        shown["timestamp"] = found.timestamp
    if found.hostname_in_alert:
        shown["hostname"] = found.hostname
    assert shown == expected


def test_wazuh_case_file_has_every_format() -> None:
    if not SYSLOG_CASES.is_file():
        pytest.skip(f"Wazuh conformance data not found at {SYSLOG_CASES}")
    assert len(yaml.safe_load(SYSLOG_CASES.read_text(encoding="utf-8"))) >= 11


# --------------------------------------------------------------------------------------------------
# Header forms


def P(
    log: str, program: str = "", ts: str = "", host: str = "", in_alert: bool = False, pid: str = ""
) -> Predecoded:
    return Predecoded(log, program, ts, host, in_alert, pid)


TS = "Dec 29 10:00:01"

CASES: list[tuple[str, Predecoded]] = [
    # BSD
    (
        f"{TS} linux-agent sshd[29205]: Invalid user x",
        P("Invalid user x", "sshd", TS, "linux-agent", True, "29205"),
    ),
    (
        "Mar  8 22:39:13 ip-10-0-0-10 sshd[2742]: Accepted",
        P("Accepted", "sshd", "Mar  8 22:39:13", "ip-10-0-0-10", True, "2742"),
    ),
    (f"{TS} host prog: msg", P("msg", "prog", TS, "host", True)),
    (f"{TS} host prog:msg", P("msg", "prog", TS, "host", True)),  # space after ':' optional
    (f"{TS} host prog[12] msg", P("msg", "prog", TS, "host", True, "12")),  # no ':'
    (f"{TS} host prog[12]:msg", P("msg", "prog", TS, "host", True, "12")),
    (f"{TS} host prog[12x]: msg", P("prog[12x]: msg", "", TS, "host", True)),  # not a pid
    (f"{TS} host [kernel] msg", P("[kernel] msg", "", TS, "host", True)),
    (f"{TS} host (sd-pam)[9]: ok", P("ok", "(sd-pam)", TS, "host", True, "9")),
    (
        f"{TS} host.example.com systemd-logind[1]: x",
        P("x", "systemd-logind", TS, "host.example.com", True, "1"),
    ),
    # Solaris: no hostname; Wazuh's alert still shows predecoder.hostname (its own host name)
    (f"{TS} sshd: Solaris style", P("Solaris style", "sshd", TS, "", True)),
    (f"{TS} sshd: [ID 800047 auth.info] Failed x", P("Failed x", "sshd", TS, "", True)),
    (f"{TS} host sshd[1]: [ID 800047 auth.info] Failed x", P("Failed x", "sshd", TS, "host", True, "1")),
    (f"{TS} host sshd[1]: [ID 800047", P("[ID 800047", "sshd", TS, "host", True, "1")),  # unterminated ID
    # AIX
    (
        f"{TS} aixhost auth|security:info sshd[123]: Failed x",
        P("Failed x", "sshd", TS, "aixhost", True, "123"),
    ),
    (f"{TS} aixhost auth|security:info sshd: Failed x", P("Failed x", "sshd", TS, "aixhost", True)),
    (
        f"{TS} aixhost auth|security:info sshd[1] x",
        P("auth|security:info sshd[1] x", "sshd", TS, "aixhost", True, "1"),
    ),
    (f"{TS} aixhost auth|security info", P("auth|security info", "", TS, "aixhost", True)),
    # not a hostname / extra space
    (f"{TS} bad#host x: y", P("bad#host x: y", "", TS, "", True)),
    (f"{TS}  host prog: msg", P("msg", "prog", TS, "host", False)),
    (f"{TS}  sshd: msg", P("msg", "sshd", TS, "", False)),  # Solaris form, not a classic header
    ("Mär 02 17:30:52 bad#host x", P("bad#host x", "", "Mär 02 17:30:5", "", False)),
    # <PRI> from the network
    (f"<38>{TS} host sshd[5]: msg", P("msg", "sshd", TS, "host", True, "5")),
    (f"<0>{TS} host prog[5] msg", P("msg", "prog", TS, "host", True, "5")),
    (f"<999>{TS} host sshd[5]: msg", P(f"<999>{TS} host sshd[5]: msg")),  # not a PRI (max 191)
    # ISO 8601 and friends: no predecoder.hostname in alerts
    ("2022-12-20T15:02:53Z host sshd[1]: m", P("m", "sshd", "2022-12-20T15:02:53Z", "host", False, "1")),
    ("2007-06-14T15:48:55-04:00 host prog: m", P("m", "prog", "2007-06-14T15:48:55-04:00", "host")),
    ("2022-12-20T15:02:53.123456789+0100 h p: m", P("m", "p", "2022-12-20T15:02:53.123456789+0100", "h")),
    ("2024-01-01T00:00:00 h p: m", P("m", "p", "2024-01-01T00:00:00", "h")),
    (
        "2016 Jan  3 08:00:00 box KERN:WARN kernel: x",
        P("WARN kernel: x", "KERN", "2016 Jan  3 08:00:00", "box"),
    ),
    (
        "2019-02-03 04:05:06,789 ftp proftpd[7]: login",
        P("login", "proftpd", "2019-02-03 04:05:06,789", "ftp", pid="7"),
    ),
    (
        "2022-03-04 05:06:07.123456+0100 mac sshd[8]: x",
        P("x", "sshd", "2022-03-04 05:06:07.123456+0100", "mac", pid="8"),
    ),
    # timestamp-only formats
    (
        "Mon Apr 17 18:27:14 2006 1 64.160.42.130 5 /f b _ o r u ftp 0 * c",
        P("1 64.160.42.130 5 /f b _ o r u ftp 0 * c", ts="Mon Apr 17 18:27:14 2006"),
    ),
    ("01/28-09:13:16.240702  [**] [1:2:3] Portscan", P("[**] [1:2:3] Portscan", ts="01/28-09:13:16.240702")),
    ("01/28/1979-09:13:16.240702  [**] [1:2:3] x", P("[**] [1:2:3] x", ts="01/28/1979-09:13:16.240702")),
    (
        "[Fri Feb 11 18:06:35 2004] [warn] [client 1.2.3.4] x",
        P("[warn] [client 1.2.3.4] x", ts="Fri Feb 11 18:06:35 2004"),
    ),
    (
        "1140804070.368  11623 192.168.1.1 TCP_MISS/200 512 GET http://x/ - DIRECT/1.2.3.4 text/html",
        P(
            "11623 192.168.1.1 TCP_MISS/200 512 GET http://x/ - DIRECT/1.2.3.4 text/html",
            ts="1140804070.368 ",
        ),
    ),
    # macOS ASL: the message is the [Message ...] field; Wazuh reports no timestamp
    (
        "[Time 2006.12.28 15:53:55 UTC] [Facility auth] [Sender sshd] [PID 483] "
        "[Message error: PAM: failed for x] [Level 3] [UID -2] [Host myhost]",
        P("error: PAM: failed for x", "sshd", "", "myhost"),
    ),
    (
        "[Time 2006.12.28 15:53:55 UTC] [Sender sshd] [Message a [Message b] [Host h]",
        P("a [Message b", "sshd", "", "h"),
    ),
    ("[Time 2006.12.28 15:53:55 UTC] [Sender sshd] [Message unterminated", P("unterminated", "sshd")),
    # Wazuh's "Mär" repair: the timestamp comes out one character short
    ("Mär 02 17:30:52 host sshd[1]: msg", P("msg", "sshd", "Mär 02 17:30:5", "host", False, "1")),
    # RFC 5424 (an addition: program = APP-NAME, message after the structured data)
    (
        "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 "
        '[ex@32473 iut="3" src="A]p\\"p"] \ufeff\'su root\' failed',
        P("'su root' failed", "su", "2003-10-11T22:14:15.003Z", "mymachine.example.com"),
    ),
    (
        "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time",
        P("%% It's time", "myproc", "2003-08-24T05:14:15.000003-07:00", "192.0.2.1", pid="8710"),
    ),
    ("<13>1 - - - - - -", P("")),
    (
        '<13>1 2024-01-01T00:00:00Z h app 1 id [a][b x="1"] msg',
        P("msg", "app", "2024-01-01T00:00:00Z", "h", pid="1"),
    ),
    ("1 2024-01-01T00:00:00Z h app - - - bare", P("bare", "app", "2024-01-01T00:00:00Z", "h")),
    (
        "<13>1 2024-01-01T00:00:00Z h app - - [unterminated msg",
        P("1 2024-01-01T00:00:00Z h app - - [unterminated msg"),
    ),
    # nothing recognised
    ("just some text", P("just some text")),
    ("", P("")),
    ("<13>no header here", P("no header here")),
]


@pytest.mark.parametrize(("line", "expected"), CASES, ids=[c[0][:48] for c in CASES])
def test_header_forms(line: str, expected: Predecoded) -> None:
    assert predecode(line) == expected


# --------------------------------------------------------------------------------------------------
# journald


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


NOV_14 = "1700000000000000"  # 2023-11-14 22:13:20 UTC, in microseconds


@pytest.mark.usefixtures("utc")
@pytest.mark.parametrize(
    ("record", "full_log"),
    [
        (
            {
                "__REALTIME_TIMESTAMP": NOV_14,
                "_HOSTNAME": "web1",
                "SYSLOG_IDENTIFIER": "sshd",
                "_PID": "42",
                "MESSAGE": "Failed password for root",
            },
            "Nov 14 22:13:20 web1 sshd[42]: Failed password for root",
        ),
        (
            {
                "__REALTIME_TIMESTAMP": NOV_14,
                "_HOSTNAME": "web1",
                "SYSLOG_IDENTIFIER": "sshd",
                "SYSLOG_PID": "7",
                "_PID": "42",
                "MESSAGE": "x",
            },
            "Nov 14 22:13:20 web1 sshd[7]: x",
        ),
        (
            {"__REALTIME_TIMESTAMP": NOV_14, "_HOSTNAME": "web1", "_COMM": "cron", "MESSAGE": "x"},
            "Nov 14 22:13:20 web1 cron: x",
        ),
        (
            {"__REALTIME_TIMESTAMP": NOV_14, "SYSLOG_IDENTIFIER": "kernel", "MESSAGE": "x"},
            "Nov 14 22:13:20 localhost kernel: x",
        ),
        (
            {
                "__REALTIME_TIMESTAMP": "1709856000000000",
                "_HOSTNAME": "h",
                "SYSLOG_IDENTIFIER": "p",
                "MESSAGE": "x",
            },
            "Mar  8 00:00:00 h p: x",
        ),
        (
            {
                "__REALTIME_TIMESTAMP": NOV_14,
                "_HOSTNAME": "h",
                "SYSLOG_IDENTIFIER": "p",
                "MESSAGE": [70, 97, 105, 108, 255, 33],
            },
            "Nov 14 22:13:20 h p: Fail\ufffd!",
        ),
        (
            {
                "__REALTIME_TIMESTAMP": NOV_14,
                "_HOSTNAME": "h",
                "SYSLOG_IDENTIFIER": ["first", "second"],
                "MESSAGE": "x",
            },
            "Nov 14 22:13:20 h first: x",
        ),
        (
            {
                "__REALTIME_TIMESTAMP": NOV_14,
                "_HOSTNAME": "h",
                "SYSLOG_IDENTIFIER": "p",
                "MESSAGE": "a\nb\tc",
            },
            "Nov 14 22:13:20 h p: a#012b#011c",
        ),
        (
            {"__REALTIME_TIMESTAMP": NOV_14, "_HOSTNAME": "h", "SYSLOG_IDENTIFIER": "p", "MESSAGE": ""},
            "Nov 14 22:13:20 h p: ",
        ),
    ],
)
def test_journald_records_become_rsyslog_lines(record: dict[str, Any], full_log: str) -> None:
    line, found = predecode_journald(record)
    assert line == full_log
    assert found == predecode(full_log)


@pytest.mark.usefixtures("utc")
def test_journald_fields_reach_the_rules_like_rsyslog() -> None:
    record = {
        "__REALTIME_TIMESTAMP": NOV_14,
        "_HOSTNAME": "web1",
        "SYSLOG_IDENTIFIER": "sshd",
        "_PID": "42",
        "MESSAGE": "Invalid user admin from 1.2.3.4 port 5",
    }
    _, found = predecode_journald(record)
    assert found == P("Invalid user admin from 1.2.3.4 port 5", "sshd", "Nov 14 22:13:20", "web1", True, "42")


def test_journald_uses_local_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")  # UTC+9, no daylight saving
    time.tzset()
    try:
        line, _ = predecode_journald({"__REALTIME_TIMESTAMP": NOV_14, "MESSAGE": "x", "_COMM": "p"})
    finally:
        monkeypatch.undo()
        time.tzset()
    assert line.startswith("Nov 15 07:13:20 ")


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ({"__REALTIME_TIMESTAMP": NOV_14, "_COMM": "p"}, "no MESSAGE"),
        ({"__REALTIME_TIMESTAMP": NOV_14, "MESSAGE": None}, "no MESSAGE"),
        ({"MESSAGE": "x"}, "no __REALTIME_TIMESTAMP"),
        ({"__REALTIME_TIMESTAMP": "yesterday", "MESSAGE": "x"}, "not a number"),
    ],
)
def test_journald_bad_records(record: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        predecode_journald(record)


# --------------------------------------------------------------------------------------------------
# Properties and robustness

_ANY_CHAR = st.one_of(st.characters(), st.characters(categories=["Cs"]), st.sampled_from("\x00 :[]<>|"))
_HEADERS = st.sampled_from(
    [
        f"{TS} ",
        "Mar  8 22:39:13 ",
        "<13>",
        "<34>1 ",
        "2022-12-20T15:02:53.123+00:00 ",
        "2015 Dec 29 10:00:01 ",
        "2015-04-16 21:51:02,805 ",
        "2021-04-21 10:16:09.404756-0700 ",
        "Mon Apr 17 18:27:14 2006 1 ",
        "01/28-09:13:16.240702  ",
        "01/28/1979-09:13:16.240702  ",
        "[Fri Feb 11 18:06:35 2004] ",
        "[Time 2006.12.28 15:53:55 UTC] ",
        "1140804070.368  11623 ",
        "Mär 02 17:30:52 ",
        "",
    ]
)
_TAILS = st.lists(
    st.sampled_from(
        [
            "host",
            "sshd",
            "[12]",
            ":",
            ": ",
            " ",
            "[ID 1 a.b] ",
            "|auth:info ",
            "[Sender x] ",
            "[Message m] ",
            "[Host h]",
            "-",
            '[a="]"]',
            "\ufeff",
            "x",
        ]
    ),
    max_size=8,
).map("".join)
_LINES = st.one_of(
    st.text(_ANY_CHAR, max_size=80),
    st.tuples(_HEADERS, _TAILS, st.text(_ANY_CHAR, max_size=20)).map("".join),
)


def _without_pri(line: str) -> str:
    if line.startswith("<") and ">" in line[:5]:
        return line[line.index(">") + 1 :]
    return line


@settings(max_examples=500)
@given(_LINES)
def test_predecode_never_raises_and_log_comes_from_the_line(line: str) -> None:
    found = predecode(line)
    assert isinstance(found, Predecoded)
    rest = _without_pri(line)
    if rest.startswith("[Time "):
        # macOS ASL: the message is the [Message ...] field, as in Wazuh.
        assert found.log in rest
    else:
        # The log is what follows the header (an RFC 5424 message loses its BOM).
        assert line.endswith(found.log) or rest.endswith("\ufeff" + found.log)
    for value in (found.program_name, found.hostname, found.timestamp, found.pid):
        assert value in line


@given(
    day=st.sampled_from(["29", " 8", "01"]),
    host=st.text(st.sampled_from("ab.-_@()/9"), min_size=1, max_size=8),
    prog=st.text(st.sampled_from("sd-_./()9"), min_size=1, max_size=8),
    pid=st.one_of(st.just(""), st.integers(0, 99999).map(str)),
    sep=st.sampled_from([":", ": "]),
    rest=st.text(_ANY_CHAR, max_size=30),
)
def test_fast_path_agrees_with_the_general_parser(
    day: str, host: str, prog: str, pid: str, sep: str, rest: str
) -> None:
    line = f"Oct {day} 10:00:01 {host} {prog}{f'[{pid}]' if pid else ''}{sep}{rest}"
    assert predecode(line) == _general(line)


@pytest.mark.parametrize(
    "line",
    [
        f"{TS} host prog: " + "x" * 1_000_000,
        "x" * 1_000_000,
        "[Time 2006.12.28 15:53:55 UTC] " + "[" * 1_000_000,
        "<13>1 2024-01-01T00:00:00Z h app - - [" + '"' * 1_000_000,
        "1140804070.368" + " " * 1_000_000 + "x" * 40,
        f"{TS} " + "a" * 1_000_000,
        "\x00" * 1_000_000,
        "\ud800" * 1_000_000,
    ],
    ids=["bsd", "text", "asl", "rfc5424", "squid", "host", "nul", "surrogates"],
)
def test_megabyte_lines_are_handled_quickly(line: str) -> None:
    started = time.perf_counter()
    found = predecode(line)
    assert time.perf_counter() - started < 0.5
    assert _without_pri(line).endswith(found.log) or found.log in line


def test_bsd_lines_are_cheap() -> None:
    # A loose bound that still fails if the fast path stops being taken (the general path and a
    # dataclass per call are several times slower on any machine).
    line = f"{TS} linux-agent sshd[29205]: Invalid user blimey from 18.18.18.18 port 48928"
    started = time.perf_counter()
    for _ in range(20000):
        predecode(line)
    assert time.perf_counter() - started < 1.0
