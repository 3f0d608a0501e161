"""Refusals of attacker-chosen values, the whitelist, and self-protection."""

from __future__ import annotations

import ipaddress
import json
import logging
from pathlib import Path

import pytest

from threatlockdown.config.model import WhiteListEntry
from threatlockdown.response.alertfacts import facts_from_alert
from threatlockdown.response.policy import AlertPlan, Policy
from threatlockdown.response.selfprotect import SelfProtection, build_self_protection, source_address
from threatlockdown.response.testkit import alert, config_with, inventory_of
from threatlockdown.response.validate import Refusal, check_user, parse_srcip
from threatlockdown.response.whitelist import WhiteList

NO_PROTECTION = SelfProtection(enabled=False)
INV = inventory_of({"web": ["web1", "web2"]})
JINJA = "{{ lookup('pipe','id') }}"

GOOD_IPS = [
    ("198.51.100.7", "198.51.100.7"),
    ("2001:db8::1", "2001:db8::1"),
    ("2001:DB8:0:0::1", "2001:db8::1"),
    ("::ffff:192.0.2.9", "192.0.2.9"),
    ("::FFFF:192.0.2.9", "192.0.2.9"),
    ("::ffff:c000:209", "192.0.2.9"),  # IPv4-mapped written in hex
]
BAD_IPS = [
    ("1.2.3.4; rm -rf /", "shell character ';'"),
    ("$(id)", "shell character '$'"),
    ("`id`", "shell character '`'"),
    ("1.2.3.4|nc", "shell character '|'"),
    (JINJA, "template marker '{{'"),
    ("{% raw %}", "template marker '{%'"),
    ("1.2.3.4 ", "shell character ' '"),
    ("1.2.3.4\n5.6.7.8", "shell character '\\n'"),
    ("", "empty"),
    ("fe80::1%eth0", "scope"),
    ("attacker.example.com", "not an IPv4 or IPv6 address"),
    ("256.1.1.1", "not an IPv4 or IPv6 address"),
    ("::ffff:1.2.3.4;id", "shell character ';'"),
]


@pytest.mark.parametrize(("raw", "expected"), GOOD_IPS)
def test_srcip_accepted_and_normalised(raw: str, expected: str) -> None:
    parsed = parse_srcip(raw)
    assert not isinstance(parsed, Refusal)
    assert str(parsed) == expected


@pytest.mark.parametrize(("raw", "problem"), BAD_IPS)
def test_srcip_refused_with_reason(raw: str, problem: str) -> None:
    refused = parse_srcip(raw)
    assert isinstance(refused, Refusal)
    assert problem in refused.problem
    assert "possible logging attack" in str(refused)


@pytest.mark.parametrize(
    "name", ["alice", "bob.smith", "svc_backup", "jane@CORP.example", "u-1", "root", "_x"]
)
def test_user_accepted(name: str) -> None:
    assert check_user(name) == name


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        (JINJA, "template marker"),
        ("{{7*7}}", "template marker"),
        ("a;b", "shell character ';'"),
        ("$(reboot)", "shell character '$'"),
        ("a b", "shell character ' '"),
        ("-rf", "must not start with '-'"),
        (".hidden", "must not start with '.'"),
        ("../etc/passwd", "'..'"),
        ("a/b", "'/' is not allowed"),
        ("a..b", "'..'"),
        ("jösé", "'ö' is not allowed"),
        ("x" * 257, "longer than 256"),
        ("", "empty"),
        ("a:b", "':' is not allowed"),
    ],
)
def test_user_refused(name: str, problem: str) -> None:
    refused = check_user(name)
    assert isinstance(refused, Refusal)
    assert problem in refused.problem


def plan_for(
    body: str, white_list: tuple[str, ...] = (), protection: SelfProtection = NO_PROTECTION, **kw: object
) -> AlertPlan:
    policy = Policy(config_with(body, white_list=white_list))
    return policy.plan(facts_from_alert(alert(**kw)), INV, protection)  # type: ignore[arg-type]


FW = """<active-response><command>firewall-drop</command><location>local</location>
<rules_id>5712</rules_id><timeout>60</timeout></active-response>"""
DISABLE = """<active-response><command>disable-account</command><location>local</location>
<rules_id>5712</rules_id><timeout>60</timeout></active-response>"""


def test_jinja_user_name_is_refused_for_a_user_response() -> None:
    plan = plan_for(DISABLE, dstuser=JINJA, srcip=None)
    assert plan.intents == []
    (skip,) = plan.skips
    assert (
        skip.outcome == "refused"
        and "template marker" in skip.reason
        and "possible logging attack" in skip.reason
    )


def test_jinja_user_name_does_not_save_the_attackers_address() -> None:
    # Wazuh drops every response of such an alert; that would let an attacker avoid the block by
    # choosing a strange user name. The address is valid: it is blocked, the user name is reported.
    plan = plan_for(FW, dstuser=JINJA)
    assert [(i.key, i.user) for i in plan.intents] == [("firewall-drop/web1/198.51.100.7", None)]
    assert [s.outcome for s in plan.skips] == ["refused"]
    assert "responses acting on srcip go ahead" in plan.skips[0].reason


def test_shell_metacharacters_in_srcip_refuse_every_response_of_the_alert() -> None:
    plan = plan_for(FW + DISABLE, srcip="10.0.0.1;reboot", dstuser="alice")
    assert [i.key for i in plan.intents] == ["disable-account/web1/alice"], (
        "the user response is not about srcip"
    )
    assert plan.skips[0].outcome == "refused" and "';'" in plan.skips[0].reason


def test_mapped_address_is_blocked_as_ipv4() -> None:
    plan = plan_for(FW, srcip="::ffff:203.0.113.5")
    assert [i.key for i in plan.intents] == ["firewall-drop/web1/203.0.113.5"]


# -- whitelist ---------------------------------------------------------------------------------------

WL_CASES = [
    ("192.0.2.1", "192.0.2.1", True),
    ("192.0.2.1", "192.0.2.2", False),
    ("10.0.0.0/8", "10.200.3.4", True),
    ("10.0.0.1/8", "10.9.9.9", True),  # host bits set, as Wazuh accepts
    ("10.0.0.0/8", "11.0.0.1", False),
    ("172.16.0.0/255.240.0.0", "172.31.255.255", True),  # dotted netmask
    ("172.16.0.0/255.240.0.0", "172.32.0.1", False),
    ("2001:db8::1", "2001:db8::1", True),
    ("2001:db8::/32", "2001:db8:ffff::9", True),
    ("2001:db8::/32", "2001:db9::1", False),
    ("192.0.2.1", "::ffff:192.0.2.1", True),  # mapped form of a whitelisted IPv4 address
    ("^localhost.localdomain$", "localhost.localdomain", True),  # pattern on the srcip text
    ("^localhost.localdomain$", "localhost.localdomain.evil", False),
    ("monitor", "MONITOR-01.corp", True),  # OS_Match: case-insensitive substring
    ("^10.0.", "10.0.4.4", True),  # a pattern: textual, not a network
    ("!192.0.2.1", "198.51.100.1", True),  # Wazuh's negation: every other address
    ("!192.0.2.1", "192.0.2.1", False),
]


@pytest.mark.parametrize(("entry", "srcip", "skipped"), WL_CASES)
def test_whitelist(entry: str, srcip: str, skipped: bool) -> None:
    plan = plan_for(FW, white_list=(entry,), srcip=srcip)
    if skipped:
        assert plan.intents == []
        assert (
            plan.skips[0].outcome == "skipped"
            and f"whitelisted by <white_list> {entry!r}" in plan.skips[0].reason
        )
    else:
        assert plan.skips == [] or plan.skips[0].outcome == "refused"
        assert not any("whitelisted" in s.reason for s in plan.skips)


def test_whitelisted_host_name_is_skipped_not_refused() -> None:
    plan = plan_for(FW, white_list=("^scanner.corp$",), srcip="scanner.corp")
    assert plan.skips[0].outcome == "skipped"
    plan = plan_for(FW, white_list=("^scanner.corp$",), srcip="other.corp")
    assert plan.skips[0].outcome == "refused"


def test_whitelist_does_not_suppress_responses_that_do_not_act_on_the_address() -> None:
    # Wazuh suppresses every response of the alert (wazuh/wazuh#4422); here only those on srcip.
    plan = plan_for(FW + DISABLE, white_list=("198.51.100.0/24",), dstuser="alice")
    assert [i.key for i in plan.intents] == ["disable-account/web1/alice"]
    assert "whitelisted" in plan.skips[0].reason


def test_whitelist_rule_names_its_source_line() -> None:
    wl = WhiteList([WhiteListEntry("10.0.0.0/8", 12, "/etc/ossec.conf")])
    rule = wl.match("10.1.1.1", ipaddress.ip_address("10.1.1.1"))
    assert rule is not None and rule.describe() == "<white_list> '10.0.0.0/8' (/etc/ossec.conf:12)"


# -- self-protection ---------------------------------------------------------------------------------


def test_managers_own_addresses_are_never_blocked_anywhere() -> None:
    own = frozenset({ipaddress.ip_address("192.0.2.10"), ipaddress.ip_address("2001:db8::10")})
    protection = SelfProtection(enabled=True, own=own)
    for srcip in ("192.0.2.10", "2001:db8::10"):
        plan = plan_for(FW, protection=protection, srcip=srcip)
        assert plan.intents == []
        assert "is an address of this manager" in plan.skips[0].reason
        assert plan.skips[0].host == "web1" and plan.skips[0].key == f"firewall-drop/web1/{srcip}"
    assert plan_for(FW, protection=SelfProtection(enabled=False, own=own), srcip="192.0.2.10").intents


def test_address_used_to_reach_a_target_is_protected_on_that_target_only() -> None:
    inv = inventory_of({"web": ["web1", "web2"]}, hostvars={"web1": {"ansible_host": "127.0.0.5"}})
    protection = build_self_protection(inv, enabled=True, own=[])
    src = source_address(ipaddress.ip_address("127.0.0.5"))
    assert src is not None
    reason = protection.reason("web1", src)
    assert reason is not None and "the address this manager uses to reach web1" in reason
    assert protection.reason("web1", ipaddress.ip_address("127.0.0.5")) == (
        "self-protection: 127.0.0.5 is the address of web1 itself"
    )
    assert protection.reason("web2", ipaddress.ip_address("127.0.0.5")) is None
    policy = Policy(config_with(FW.replace("local", "all")))
    plan = policy.plan(facts_from_alert(alert(srcip=str(src))), inv, protection)
    assert [i.host for i in plan.intents] == ["web2"]
    assert [s.host for s in plan.skips] == ["web1"]


def test_every_skip_is_logged_and_audited(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import asyncio

    from threatlockdown.response.engine import EnginePaths, ResponseEngine
    from threatlockdown.response.executor import InProcessExecutor
    from threatlockdown.response.settings import ResponseSettings

    own = frozenset({ipaddress.ip_address("192.0.2.10")})

    async def run() -> None:
        engine = ResponseEngine(
            config=config_with(FW, white_list=("10.0.0.0/8",)),
            settings=ResponseSettings(),
            inventory=INV,
            executor=InProcessExecutor(),
            paths=EnginePaths(tmp_path / "state.db", tmp_path / "logs"),
            protection=SelfProtection(enabled=True, own=own),
        )
        await engine.start()
        for srcip in ("10.1.1.1", "192.0.2.10", "1.1.1.1$(id)"):
            await engine.handle_alert(alert(srcip=srcip))
        await engine.stop()

    with caplog.at_level(logging.INFO, logger="threatlockdown.response"):
        asyncio.run(run())
    records = [
        json.loads(line) for line in (tmp_path / "logs" / "active-responses.json").read_text().splitlines()
    ]
    assert [(r["event"], r["srcip"]) for r in records] == [
        ("skipped", "10.1.1.1"),
        ("skipped", "192.0.2.10"),
        ("refused", "1.1.1.1$(id)"),
    ]
    assert "whitelisted" in records[0]["reason"] and "self-protection" in records[1]["reason"]
    logged = caplog.text
    assert "whitelisted" in logged and "self-protection" in logged and "possible logging attack" in logged
