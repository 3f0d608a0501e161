"""ThreatLockDown's shipped ruleset on lines beyond Wazuh's own tests.

Covers the OpenSSH 8.x/9.x messages handled by rules 110100-110199, the active-response audit rules
(650-657), sudo, su, PAM, and the worked paths of the Wazuh reference (frequency, ignore, ordering).
Every case checks the final rule, its level, whether it alerts, and the decoded fields an active
response depends on (srcip above all).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from threatlockdown.analysis.alert import describe
from threatlockdown.analysis.session import AnalysisSession, ProcessResult
from threatlockdown.ruleset.event import Event
from threatlockdown.ruleset.loader import Ruleset, load_ruleset

ATTACKER = "198.51.100.7"
OTHER = "203.0.113.99"
ABSENT = None  # marks a field that must not be decoded


@cache
def shipped() -> Ruleset:
    return load_ruleset()


@dataclass
class ManualClock:
    """Event time under the test's control, so timeframes can be crossed without sleeping."""

    now: float = 1_700_000_000.0

    def __call__(self, event: Event) -> float:
        return self.now


def new_session(clock: ManualClock | None = None) -> AnalysisSession:
    return AnalysisSession(shipped(), clock=clock)


def syslog(program: str, message: str) -> str:
    return f"Mar  3 10:00:00 web1 {program}: {message}"


def sshd(message: str, program: str = "sshd[1234]") -> str:
    return syslog(program, message)


def check(
    result: ProcessResult, rule: str, level: int, alert: bool, fields: Mapping[str, str | None]
) -> None:
    assert result.rule is not None, f"no rule matched {result.event.full_log!r}"
    assert (result.rule.id, result.rule.level) == (rule, level), result.event.full_log
    assert result.alert is alert
    for name, value in fields.items():
        assert result.event.fields.get(name) == value, f"{name} of {result.event.full_log!r}"


@dataclass(frozen=True)
class Case:
    id: str
    line: str
    want: tuple[str, int, str]  # rule id, level, decoder name
    fields: dict[str, str | None]  # decoded fields that must have these values (None: absent)


def _penalty(reason: str) -> str:
    return sshd(f"drop connection #0 from [{ATTACKER}]:4242 on [203.0.113.5]:22 {reason}")


OPENSSH9 = [
    Case(
        "closed-authenticating-user",
        sshd(
            f"Connection closed by authenticating user root {ATTACKER} port 4242 [preauth]",
            "sshd-session[77]",
        ),
        ("110100", 5, "sshd"),
        {"srcip": ATTACKER, "srcport": "4242", "dstuser": "root"},
    ),
    Case(
        "closed-invalid-user",
        sshd(f"Connection closed by invalid user admin {ATTACKER} port 4242 [preauth]"),
        ("110101", 5, "sshd"),
        {"srcip": ATTACKER, "srcport": "4242", "srcuser": "admin"},
    ),
    Case(
        "closed-before-banner-stays-5722",
        sshd("Connection closed by 10.0.2.2 port 55462 [preauth]"),
        ("5722", 0, "sshd"),
        {"srcip": "10.0.2.2", "srcport": "55462"},
    ),
    Case(
        "disconnected-invalid-user-is-5710",
        sshd(f"Disconnected from invalid user admin {ATTACKER} port 4242 [preauth]"),
        ("5710", 5, "sshd"),
        {"srcip": ATTACKER, "srcuser": "admin"},
    ),
    Case(
        "disconnected-authenticating-user",
        sshd(f"Disconnected from authenticating user root {ATTACKER} port 4242 [preauth]"),
        ("110102", 5, "sshd"),
        {"srcip": ATTACKER, "srcport": "4242", "dstuser": "root"},
    ),
    Case(
        "disconnecting-after-maxauthtries",
        sshd(
            f"Disconnecting authenticating user root {ATTACKER} port 4242: Too many authentication failures"
            " [preauth]"
        ),
        ("110104", 0, "sshd"),
        {"srcip": ATTACKER, "dstuser": "root"},
    ),
    Case(
        "reset-authenticating-user",
        sshd(f"Connection reset by authenticating user root {ATTACKER} port 4242 [preauth]"),
        ("5762", 4, "sshd"),
        {"srcip": ATTACKER, "dstuser": "root"},
    ),
    Case(
        "banner-invalid-format",
        sshd(f"banner exchange: Connection from {ATTACKER} port 4242: invalid format"),
        ("110107", 6, "sshd"),
        {"srcip": ATTACKER, "srcport": "4242"},
    ),
    Case(
        "banner-other-failure",
        sshd(f"banner exchange: Connection from {ATTACKER} port 4242: could not read protocol version"),
        ("110108", 2, "sshd"),
        {"srcip": ATTACKER},
    ),
    Case(
        "banner-reset-stays-5740",
        sshd(f"banner exchange: Connection from {ATTACKER} port 4242: Connection reset by peer"),
        ("5740", 4, "sshd"),
        {"srcip": ATTACKER},
    ),
    Case(
        "kex-invalid-identifier",
        sshd('error: kex_exchange_identification: client sent invalid protocol identifier "GET / HTTP/1.1"'),
        ("110109", 0, "sshd"),
        {"srcip": ABSENT},
    ),
    Case(
        "kex-closed-stays-5722",
        sshd("error: kex_exchange_identification: Connection closed by remote host"),
        ("5722", 0, "sshd"),
        {"srcip": ABSENT},
    ),
    Case(
        "timeout-openssh98",
        sshd(f"Timeout before authentication for {ATTACKER} port 4242", "sshd-session[77]"),
        ("110105", 4, "sshd"),
        {"srcip": ATTACKER, "srcport": "4242"},
    ),
    Case(
        "timeout-fatal-stays-5704",
        sshd(f"fatal: Timeout before authentication for {ATTACKER} port 4242"),
        ("5704", 4, "sshd"),
        {"srcip": ATTACKER},
    ),
    Case(
        "penalty-failed-auth",
        _penalty("penalty: failed authentication"),
        ("110111", 8, "sshd"),
        {"srcip": ATTACKER, "srcport": "4242", "dstip": "203.0.113.5", "dstport": "22"},
    ),
    Case(
        "penalty-invalid-user",
        _penalty("penalty: attempted authentication by invalid user"),
        ("110112", 8, "sshd"),
        {"srcip": ATTACKER},
    ),
    Case(
        "penalty-grace",
        _penalty("penalty: exceeded LoginGraceTime"),
        ("110113", 6, "sshd"),
        {"srcip": ATTACKER},
    ),
    Case("penalty-crash", _penalty("penalty: caused crash"), ("110114", 10, "sshd"), {"srcip": ATTACKER}),
    Case(
        "penalty-refuseconnection",
        _penalty("penalty: connection prohibited by RefuseConnection"),
        ("110115", 4, "sshd"),
        {"srcip": ATTACKER},
    ),
    Case(
        "penalty-noauth",
        _penalty("penalty: connections without attempting authentication"),
        ("110116", 0, "sshd"),
        {"srcip": ATTACKER},
    ),
    Case("drop-maxstartups", _penalty("past Maxstartups"), ("110117", 4, "sshd"), {"srcip": ATTACKER}),
    Case(
        "drop-unknown-reason",
        _penalty("penalty: some future reason"),
        ("110118", 3, "sshd"),
        {"srcip": ATTACKER},
    ),
    Case(
        "drop-ipv6",
        sshd("drop connection #3 from [2001:db8::7]:4242 on [2001:db8::1]:22 penalty: failed authentication"),
        ("110111", 8, "sshd"),
        {"srcip": "2001:db8::7", "dstip": "2001:db8::1"},
    ),
    Case(
        "negotiate-without-fatal",
        sshd(
            f"Unable to negotiate with {ATTACKER} port 4242: no matching host key type found. Their offer:"
            " ssh-rsa,ssh-dss [preauth]"
        ),
        ("5750", 0, "sshd"),
        {"srcip": ATTACKER, "srcport": "4242"},
    ),
    Case(
        "received-disconnect-with-port",
        sshd(f"Received disconnect from {ATTACKER} port 4242:11: Bye Bye [preauth]"),
        ("5721", 0, "sshd"),
        {"srcip": ATTACKER, "srcport": "4242"},
    ),
    Case(
        "failed-publickey",
        sshd(f"Failed publickey for root from {ATTACKER} port 4242 ssh2: RSA SHA256:AbCdEf"),
        ("5716", 5, "sshd"),
        {"srcip": ATTACKER, "srcport": "4242", "dstuser": "root"},
    ),
    Case(
        "failed-password-sshd-session",
        sshd(f"Failed password for root from {ATTACKER} port 4242 ssh2", "sshd-session[77]"),
        ("5760", 5, "sshd"),
        {"srcip": ATTACKER, "dstuser": "root"},
    ),
    Case(
        "failed-keyboard-interactive-existing-user",
        sshd(f"Failed keyboard-interactive/pam for root from {ATTACKER} port 4242 ssh2"),
        ("5760", 5, "sshd"),
        {"srcip": ATTACKER, "dstuser": "root"},
    ),
    Case(
        "accepted-publickey",
        sshd("Accepted publickey for deploy from 192.0.2.10 port 50022 ssh2: ED25519 SHA256:xyz"),
        ("5715", 3, "sshd"),
        {"srcip": "192.0.2.10", "srcport": "50022", "dstuser": "deploy"},
    ),
]

WORKED_PATHS = [
    Case(
        "failed-password-invalid-user-is-5710",
        sshd(f"Failed password for invalid user x from {ATTACKER} port 4242 ssh2"),
        ("5710", 5, "sshd"),
        {"srcip": ATTACKER, "srcuser": "x"},
    ),
    Case(
        "invalid-user",
        sshd(f"Invalid user admin from {ATTACKER} port 4242"),
        ("5710", 5, "sshd"),
        {"srcip": ATTACKER, "srcport": "4242", "srcuser": "admin"},
    ),
    Case(
        "invalid-user-empty-name",
        sshd(f"Invalid user  from {ATTACKER} port 4242"),
        ("5710", 5, "sshd"),
        {"srcip": ATTACKER, "srcport": "4242", "srcuser": ABSENT},
    ),
    Case(
        "input-userauth-request-no-alert",
        sshd("input_userauth_request: invalid user x [preauth]"),
        ("5711", 0, "sshd"),
        {},
    ),
    Case(
        "max-auth-invalid-user-is-5758",
        sshd(
            "error: maximum authentication attempts exceeded for invalid user x"
            f" from {ATTACKER} port 4242 ssh2 [preauth]"
        ),
        ("5758", 8, "sshd"),
        {"srcip": ATTACKER, "srcport": "4242", "srcuser": "x"},
    ),
    Case(
        "max-auth-existing-user",
        sshd(
            "error: maximum authentication attempts exceeded for root"
            f" from {ATTACKER} port 4242 ssh2 [preauth]"
        ),
        ("5758", 8, "sshd"),
        {"srcip": ATTACKER, "dstuser": "root"},
    ),
    Case(
        "denied-user",
        sshd(f"User root from {ATTACKER} not allowed because listed in DenyUsers"),
        ("5718", 5, "sshd"),
        {"srcip": ATTACKER, "dstuser": "root"},
    ),
    Case(
        "pam-error-existing-user",
        sshd(f"error: PAM: Authentication failure for root from {ATTACKER}"),
        ("5716", 5, "sshd"),
        {"srcip": ATTACKER, "dstuser": "root"},
    ),
    Case(
        "pam-error-illegal-user",
        sshd(f"error: PAM: Authentication failure for illegal user admin from {ATTACKER}"),
        ("5710", 5, "sshd"),
        {"srcip": ATTACKER, "srcuser": "admin", "dstuser": ABSENT},
    ),
    Case(
        "pam-summary-through-sshd-is-2502",
        sshd(
            "PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser="
            f" rhost={ATTACKER}  user=root"
        ),
        ("2502", 10, "sshd"),
        {"srcip": ATTACKER, "dstuser": "root"},
    ),
    Case(
        "unknown-sshd-error-is-1002",
        sshd("error: something nobody wrote a rule for"),
        ("1002", 2, "sshd"),
        {},
    ),
    Case(
        "known-harmless-is-1009", syslog("backupd[9]", "worker terminated without error"), ("1009", 0, ""), {}
    ),
]

# A user name is chosen by the client and may contain spaces: the address must come from sshd's tail.
INJECTION = [
    Case(
        "invalid-user-name-with-fake-address",
        sshd(f"Invalid user x from 6.6.6.6 port 7 from {ATTACKER} port 4242"),
        ("5710", 5, "sshd"),
        {"srcip": ATTACKER, "srcport": "4242"},
    ),
    Case(
        "failed-password-name-with-fake-address",
        sshd(f"Failed password for invalid user a from 6.6.6.6 port 7 ssh2 from {ATTACKER} port 4242 ssh2"),
        ("5710", 5, "sshd"),
        {"srcip": ATTACKER, "srcport": "4242"},
    ),
    Case(
        "closed-invalid-user-name-with-fake-address",
        sshd(f"Connection closed by invalid user a 6.6.6.6 port 7 [preauth] {ATTACKER} port 4242 [preauth]"),
        ("110101", 5, "sshd"),
        {"srcip": ATTACKER, "srcport": "4242"},
    ),
]

PAM = [
    Case(
        "sshd-pam-auth-failure",
        sshd(
            "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser="
            f" rhost={ATTACKER}  user=root"
        ),
        ("5503", 5, "pam"),
        {"srcip": ATTACKER, "dstuser": "root", "tty": "ssh", "uid": "0", "srcuser": ABSENT},
    ),
    Case(
        "sudo-pam-auth-failure",
        syslog(
            "sudo",
            "pam_unix(sudo:auth): authentication failure; logname=bob uid=1000 euid=0 tty=/dev/pts/0"
            " ruser=bob rhost=  user=bob",
        ),
        ("5503", 5, "pam"),
        {"srcuser": "bob", "dstuser": "bob", "logname": "bob", "srcip": ABSENT},
    ),
    Case(
        # ruser= (who asked) and user= (the target account) must not be confused.
        "su-pam-auth-failure",
        syslog(
            "su[2468]",
            "pam_unix(su:auth): authentication failure; logname=deploy uid=1004 euid=0 tty=/dev/pts/2"
            " ruser=deploy rhost=  user=root",
        ),
        ("5503", 5, "pam"),
        {"srcuser": "deploy", "dstuser": "root", "uid": "1004", "euid": "0", "tty": "/dev/pts/2"},
    ),
    Case(
        "session-opened-modern",
        syslog("sudo", "pam_unix(sudo:session): session opened for user root(uid=0) by bob(uid=1000)"),
        ("5501", 3, "pam"),
        {"dstuser": "root", "srcuser": "bob", "uid": "1000"},
    ),
    Case(
        "session-opened-old-layout",
        syslog("sshd(pam_unix)[17365]", "session opened for user test by (uid=508)"),
        ("5501", 3, "pam"),
        {"dstuser": "test", "uid": "508"},
    ),
    Case(
        "cron-session-ignored",
        syslog("CRON[999]", "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)"),
        ("5521", 0, "pam"),
        {"dstuser": "root"},
    ),
    Case(
        "password-changed",
        syslog("passwd[2679]", "pam_unix(passwd:chauthtok): password changed for marge"),
        ("5555", 3, "pam"),
        {"dstuser": "marge"},
    ),
    Case(
        "check-pass-duplicate-ignored",
        sshd("pam_unix(sshd:auth): check pass; user unknown"),
        ("5523", 0, "pam"),
        {},
    ),
    Case(
        "unix-chkpwd",
        syslog("unix_chkpwd[2274]", "password check failed for user (bob)"),
        ("5557", 5, "unix_chkpwd"),
        {"dstuser": "bob"},
    ),
]

SUDO = [
    Case(
        "sudo-root",
        syslog("sudo", "     bob : TTY=pts/0 ; PWD=/home/bob ; USER=root ; COMMAND=/usr/bin/id -u"),
        ("5402", 3, "sudo"),
        {
            "srcuser": "bob",
            "dstuser": "root",
            "tty": "pts/0",
            "pwd": "/home/bob",
            "command": "/usr/bin/id -u",
        },
    ),
    Case(
        "sudo-other-user",
        syslog("sudo", "     bob : TTY=pts/0 ; PWD=/home/bob ; USER=www-data ; COMMAND=/usr/bin/id"),
        ("5407", 3, "sudo"),
        {"srcuser": "bob", "dstuser": "www-data"},
    ),
    Case(
        "sudo-one-wrong-password",
        syslog(
            "sudo",
            "     bob : 1 incorrect password attempt ; TTY=pts/0 ; PWD=/home/bob ; USER=root ;"
            " COMMAND=/bin/sh",
        ),
        ("5401", 5, "sudo"),
        {"srcuser": "bob"},
    ),
    Case(
        "sudo-three-wrong-passwords",
        syslog(
            "sudo",
            "     bob : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/home/bob ; USER=root ;"
            " COMMAND=/bin/sh",
        ),
        ("5404", 10, "sudo"),
        {"srcuser": "bob", "dstuser": "root"},
    ),
    Case(
        "sudo-not-in-sudoers",
        syslog(
            "sudo",
            "   homer : user NOT in sudoers ; TTY=pts/2 ; PWD=/home/homer ; USER=root ; COMMAND=/bin/ls",
        ),
        ("5405", 5, "sudo"),
        {"srcuser": "homer"},
    ),
    Case(
        "sudo-command-not-allowed",
        syslog(
            "sudo", "    bart : command not allowed ; TTY=pts/0 ; PWD=/home ; USER=root ; COMMAND=/bin/rm"
        ),
        ("5406", 5, "sudo"),
        {"srcuser": "bart"},
    ),
]

SU = [
    Case(
        "su-failed-to-root",
        syslog("su[2238]", "FAILED SU (to root) bob on pts/0"),
        ("5302", 9, "su"),
        {"dstuser": "root", "srcuser": "bob"},
    ),
    Case(
        "su-to-root",
        syslog("su[2238]", "(to root) bob on pts/0"),
        ("5303", 3, "su"),
        {"dstuser": "root", "srcuser": "bob"},
    ),
    Case(
        "su-to-other",
        syslog("su[2238]", "(to postgres) bob on pts/0"),
        ("5304", 3, "su"),
        {"dstuser": "postgres", "srcuser": "bob"},
    ),
    Case(
        "su-quoted-failure",
        syslog("su", "'su root' failed for chapman on /dev/pts/1"),
        ("5302", 9, "su"),
        {"dstuser": "root", "srcuser": "chapman"},
    ),
    Case(
        "su-failed-other-user",
        syslog("su[2601]", "FAILED su for god by root"),
        ("5301", 5, "su"),
        {"dstuser": "god", "srcuser": "root"},
    ),
]

SINGLE_LINES = OPENSSH9 + WORKED_PATHS + INJECTION + PAM + SUDO + SU


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in SINGLE_LINES])
def test_single_line(case: Case) -> None:
    rule, level, decoder = case.want
    result = new_session().process(case.line)
    # 3 is the session's default log_alert_level.
    check(result, rule, level, level >= 3, case.fields)
    assert result.event.decoder_name == decoder


# ---------------------------------------------------------------- active-response audit log


def ar_line(program: str, command: str, *, compact: bool = True, **data: str) -> str:
    alert: dict[str, Any] = {
        "rule": {"id": "5712", "level": 10},
        # The attacker-controlled text comes first and mentions srcip: it must not be taken.
        "full_log": f'Invalid user {{"srcip":"6.6.6.6"}} from {data.get("srcip", "-")}',
        "data": data,
    }
    message = {
        "version": 1,
        "origin": {"name": "node01", "module": "threatlockdown"},
        "command": command,
        "parameters": {"extra_args": [], "alert": alert, "program": f"active-response/bin/{program}"},
    }
    text = json.dumps(message, separators=(",", ":")) if compact else json.dumps(message)
    return f"2024/05/01 12:00:00 active-response/bin/{program}: {text}"


AR_CASES = [
    ("firewall-drop", "add", "651", "Host Blocked by firewall-drop Active Response"),
    ("firewall-drop", "delete", "652", "Host Unblocked by firewall-drop Active Response"),
    ("host-deny", "add", "653", "Host Blocked by host-deny Active Response"),
    ("host-deny", "delete", "654", "Host Unblocked by host-deny Active Response"),
    ("route-null", "add", "655", "Host Blocked by route-null Active Response"),
    ("route-null", "delete", "656", "Host Unblocked by route-null Active Response"),
    ("custom-block", "add", "657", "Active response: active-response/bin/custom-block - add"),
]


@pytest.mark.parametrize(
    ("program", "command", "rule", "description"), AR_CASES, ids=[f"{p}-{c}" for p, c, _, _ in AR_CASES]
)
def test_active_response_audit(program: str, command: str, rule: str, description: str) -> None:
    result = new_session().process(
        ar_line(program, command, srcip=ATTACKER, srcport="4242"),
        location="/var/ossec/logs/active-responses.log",
    )
    fields = {
        "command": command,
        "parameters.program": f"active-response/bin/{program}",
        "parameters.alert.data.srcip": ATTACKER,
    }
    check(result, rule, 3, True, fields)
    assert result.event.decoder_name == "ar_log_json"
    assert result.rule is not None
    assert describe(result.rule, result.event) == description
    assert "active_response" in result.rule.groups


# Wazuh 4.x runs the same-name children that follow a plugin_decoder (its own 4.x ar_log_json decoder
# relies on it to fill srcip); so does our engine.
def test_active_response_audit_names_the_blocked_address() -> None:
    result = new_session().process(ar_line("firewall-drop", "add", srcip=ATTACKER, srcport="4242"))
    # The "srcip" inside the JSON-escaped full_log (6.6.6.6) must not be taken.
    check(result, "651", 3, True, {"srcip": ATTACKER})


def test_active_response_audit_names_the_account_from_spaced_json() -> None:
    result = new_session().process(ar_line("disable-account", "add", compact=False, dstuser="mallory"))
    check(result, "657", 3, True, {"dstuser": "mallory", "srcip": ABSENT, "command": "add"})


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(ar_line("firewall-drop", "continue", srcip=ATTACKER), id="continue-reply"),
        pytest.param(
            '2024/05/01 12:00:00 active-response/bin/firewall-drop: {"version":1,"origin":{"name":'
            '"firewall-drop","module":"active-response"},"command":"check_keys","parameters":{"keys":'
            f'["{ATTACKER}"]}}}}',
            id="check-keys",
        ),
        pytest.param("2024/05/01 12:00:00 active-response/bin/firewall-drop: Starting", id="starting"),
        pytest.param("2024/05/01 12:00:01 active-response/bin/firewall-drop: Ended", id="ended"),
    ],
)
def test_active_response_log_noise_is_level_0(line: str) -> None:
    result = new_session().process(line)
    check(result, "650", 0, False, {})
    assert result.event.decoder_name == "ar_log_json"


# ---------------------------------------------------------------- correlation (frequency, ignore)


def feed(
    session: AnalysisSession, clock: ManualClock, lines: Sequence[str], step: float
) -> list[ProcessResult]:
    results = []
    for line in lines:
        results.append(session.process(line))
        clock.now += step
    return results


def invalid_user(ip: str, port: int = 4242) -> str:
    return sshd(f"Invalid user admin from {ip} port {port}")


def test_5712_fires_on_the_eighth_invalid_user_within_120s() -> None:
    clock = ManualClock()
    results = feed(new_session(clock), clock, [invalid_user(ATTACKER, 4000 + i) for i in range(8)], step=10)
    assert [r.rule.id for r in results if r.rule] == ["5710"] * 7 + ["5712"]
    last = results[-1]
    check(last, "5712", 10, True, {"srcip": ATTACKER})
    assert len(last.match.previous) == 7


def test_5712_needs_the_eight_events_inside_the_timeframe() -> None:
    clock = ManualClock()
    # 20 s apart: the 8th event sees only 6 earlier ones inside 120 s.
    results = feed(new_session(clock), clock, [invalid_user(ATTACKER) for _ in range(8)], step=20)
    check(results[-1], "5710", 5, True, {"srcip": ATTACKER})


def test_5712_counts_per_source_address() -> None:
    clock = ManualClock()
    lines = [invalid_user(ATTACKER if i % 2 else OTHER) for i in range(8)]
    results = feed(new_session(clock), clock, lines, step=1)
    assert {r.rule.id for r in results if r.rule} == {"5710"}


def test_5712_then_ignore_window_reports_the_parent() -> None:
    clock = ManualClock()
    session = new_session(clock)
    first = feed(session, clock, [invalid_user(ATTACKER) for _ in range(8)], step=1)
    assert first[-1].rule is not None and first[-1].rule.id == "5712"
    # Eight more within the 60 s ignore window: the firing is reported as 5710 instead.
    again = feed(session, clock, [invalid_user(ATTACKER) for _ in range(8)], step=1)
    assert again[-1].rule is not None and again[-1].rule.id == "5710"


def test_5763_counts_failed_passwords_and_5720_does_not() -> None:
    clock = ManualClock()
    line = sshd(f"Failed password for root from {ATTACKER} port 4242 ssh2")
    results = feed(new_session(clock), clock, [line] * 8, step=5)
    assert [r.rule.id for r in results if r.rule] == ["5760"] * 7 + ["5763"]


def test_5720_counts_failures_that_end_at_5716() -> None:
    clock = ManualClock()
    line = sshd(f"Failed none for root from {ATTACKER} port 4242 ssh2")
    results = feed(new_session(clock), clock, [line] * 8, step=5)
    assert [r.rule.id for r in results if r.rule] == ["5716"] * 7 + ["5720"]


def test_5719_counts_denied_users_from_any_address() -> None:
    clock = ManualClock()
    lines = [sshd(f"User root from 192.0.2.{i} not allowed because listed in DenyUsers") for i in range(8)]
    results = feed(new_session(clock), clock, lines, step=5)
    check(results[-1], "5719", 10, True, {"srcip": "192.0.2.7"})


def test_5551_pam_failures_from_one_address_within_180s() -> None:
    clock = ManualClock()
    line = sshd(
        f"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ATTACKER}"
        "  user=root"
    )
    results = feed(new_session(clock), clock, [line] * 8, step=20)
    assert [r.rule.id for r in results if r.rule] == ["5503"] * 7 + ["5551"]
    check(results[-1], "5551", 10, True, {"srcip": ATTACKER})


def test_5551_not_for_failures_from_different_addresses() -> None:
    clock = ManualClock()
    lines = [
        sshd(
            f"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser="
            f" rhost=192.0.2.{i}  user=root"
        )
        for i in range(8)
    ]
    results = feed(new_session(clock), clock, lines, step=1)
    assert {r.rule.id for r in results if r.rule} == {"5503"}


def test_110103_counts_every_preauth_disconnect_kind() -> None:
    clock = ManualClock()
    kinds = [
        f"Connection closed by authenticating user root {ATTACKER} port 4242 [preauth]",
        f"Connection closed by invalid user admin {ATTACKER} port 4243 [preauth]",
        f"Disconnected from authenticating user root {ATTACKER} port 4244 [preauth]",
    ]
    lines = [sshd(kinds[i % 3], "sshd-session[9]") for i in range(8)]
    results = feed(new_session(clock), clock, lines, step=5)
    assert [r.rule.id for r in results[:7] if r.rule] == ["110100", "110101", "110102"] * 2 + ["110100"]
    check(results[-1], "110103", 10, True, {"srcip": ATTACKER})


def test_110106_many_timeouts_from_one_address() -> None:
    clock = ManualClock()
    line = sshd(f"Timeout before authentication for {ATTACKER} port 4242", "sshd-session[9]")
    results = feed(new_session(clock), clock, [line] * 6, step=30)
    assert [r.rule.id for r in results if r.rule] == ["110105"] * 5 + ["110106"]


# ---------------------------------------------------------------- a real Wazuh alert

REAL_ALERTS = Path(__file__).resolve().parents[2].parent / "shared/conformance/wazuh"
REAL_5712 = REAL_ALERTS / "cases_integratord_read_valid_json_alerts.yaml"


@pytest.mark.skipif(not REAL_5712.is_file(), reason=f"Wazuh conformance data not found at {REAL_5712}")
def test_same_alert_as_a_real_wazuh_5712() -> None:
    # An alerts.json line written by Wazuh 4.x: replay its eight events and compare what the ruleset
    # decides (rule metadata, compliance groups, MITRE, decoded data). Only the wording differs.
    sample = yaml.safe_load(REAL_5712.read_text(encoding="utf-8"))[0]["metadata"]["alert_sample"]
    real = json.loads(sample)
    lines = [*reversed(real["previous_output"].split("\n")), real["full_log"]]
    session = new_session()
    for line in lines:
        result = session.process(line, location=real["location"])
    ours = result.output()
    assert ours["rule"]["description"] == "sshd: brute force with non-existent user names."
    del ours["rule"]["description"], real["rule"]["description"]
    assert ours["rule"] == real["rule"]
    for key in ("decoder", "data", "predecoder", "full_log", "location"):
        assert ours[key] == real[key], key


# ---------------------------------------------------------------- the ruleset itself


def test_ruleset_loads_without_warnings() -> None:
    assert shipped().warnings == []


def test_all_wazuh_sshd_ids_are_present() -> None:
    rules = shipped().rules.rules
    expected = set(range(5700, 5708)) | set(range(5709, 5764))
    assert expected <= set(rules)
    assert 5708 not in rules


def test_own_ids_stay_in_the_documented_range() -> None:
    own = {sid for sid in shipped().rules.rules if sid >= 100000}
    assert own, "the OpenSSH 9.x rules are missing"
    assert all(110100 <= sid <= 110199 for sid in own), sorted(own)


def test_rule_5710_keeps_the_description_and_groups_bindings_use() -> None:
    rule = shipped().rules.rules[5710]
    assert rule.description == "sshd: Attempt to login using a non-existent user"
    assert rule.level == 5
    assert {"syslog", "sshd", "authentication_failed", "invalid_login", "pci_dss_10.2.4"} <= set(rule.groups)
    assert rule.mitre_ids == ("T1110.001", "T1021.004")


@pytest.mark.parametrize("sid", [5712, 5763])
def test_brute_force_rules_keep_wazuh_correlation(sid: int) -> None:
    rule = shipped().rules.rules[sid]
    assert (rule.level, rule.frequency, rule.timeframe, rule.ignore) == (10, 8, 120, 60)
    assert rule.same == ("srcip",)


def test_every_rule_has_a_description() -> None:
    missing = [sid for sid, rule in shipped().rules.rules.items() if not rule.description.strip()]
    assert missing == []
