"""Binding (Wazuh 4.x Rule_AddAR), locations, <target>, and what is refused or skipped before state."""

from __future__ import annotations

import pytest

from threatlockdown.errors import SourceErrors
from threatlockdown.response.alertfacts import facts_from_alert, group_string_of
from threatlockdown.response.policy import IMPLICIT_LOCALHOST, Policy, make_key, split_key
from threatlockdown.response.selfprotect import SelfProtection
from threatlockdown.response.testkit import alert, config_with, inventory_of

NO_PROTECTION = SelfProtection(enabled=False)
INV = inventory_of(
    {"web": ["web1", "web2"], "db": ["db1"], "edge": ["fw1"]},
    hostvars={
        "manager": {"threatlockdown_agent_id": "000"},
        "db1": {"threatlockdown_agent_name": "database-01"},
        "fw1": {"threatlockdown_agent_id": 7},
    },
)


def block(
    *, level: int | None = None, group: str | None = None, ids: str | None = None, extra: str = ""
) -> str:
    parts = ["<command>firewall-drop</command>", "<location>local</location>", "<timeout>60</timeout>"]
    if level is not None:
        parts.append(f"<level>{level}</level>")
    if group is not None:
        parts.append(f"<rules_group>{group}</rules_group>")
    if ids is not None:
        parts.append(f"<rules_id>{ids}</rules_id>")
    return f"<active-response>{''.join(parts)}{extra}</active-response>"


def bound(body: str, **alert_args: object) -> bool:
    policy = Policy(config_with(body))
    return bool(policy.bound(facts_from_alert(alert(**alert_args))))  # type: ignore[arg-type]


# rule 5712 level 10, groups syslog,sshd,authentication_failures
BINDINGS = [
    # level alone: rule level >= <level>
    (dict(level=10), True),
    (dict(level=11), False),
    (dict(level=3), True),
    # group alone: OS_Regex on the comma-joined group string
    (dict(group="sshd,"), True),
    (dict(group="apache,"), False),
    (dict(group="sshd,|pci_dss_11.4,"), True),
    (dict(group="^syslog,sshd,"), True),
    (dict(group="authentication_failed,"), False),  # authentication_failures is another group
    (dict(group="authentication_fail"), True),  # unanchored substring, why docs say to end with ','
    # both: AND
    (dict(level=5, group="sshd,"), True),
    (dict(level=12, group="sshd,"), False),
    (dict(level=5, group="apache,"), False),
    # rules_id alone, and OR-ed on top of everything
    (dict(ids="5712"), True),
    (dict(ids="5710, 5711"), False),
    (dict(ids="5710,5712"), True),
    (dict(level=12, ids="5712"), True),
    (dict(level=12, group="apache,", ids="5712"), True),
    (dict(level=5, group="apache,", ids="100"), False),
    (dict(group="apache,", ids="5712"), True),
    # none of the three: binds nothing
    ({}, False),
]


@pytest.mark.parametrize(("fields", "expected"), BINDINGS, ids=[str(f) for f, _ in BINDINGS])
def test_binding_combinations(fields: dict[str, object], expected: bool) -> None:
    assert bound(block(**fields)) is expected  # type: ignore[arg-type]


def test_group_match_uses_compliance_groups_of_the_alert() -> None:
    extra = {"pci_dss": ["11.4", "10.2.4"], "gdpr": ["IV_35.7.d"]}
    rule = alert(extra_rule=extra)["rule"]
    assert (
        group_string_of(rule)
        == "syslog,sshd,authentication_failures,pci_dss_11.4,pci_dss_10.2.4,gdpr_IV_35.7.d,"
    )
    assert bound(block(group="pci_dss_11.4,"), extra_rule=extra)
    assert not bound(block(group="pci_dss_11.4,"))


def test_disabled_block_never_binds() -> None:
    body = block(ids="5712", extra="<disabled>yes</disabled>") + block(level=3)
    policy = Policy(config_with(body))
    bindings = policy.bound(facts_from_alert(alert()))
    assert [b.response.rules_id for b in bindings] == [()], "only the enabled level-3 block binds"


def test_level_zero_and_no_ar_rules_never_trigger() -> None:
    policy = Policy(config_with(block(ids="5712") + block(level=1)))
    assert policy.bound(facts_from_alert(alert(level=0))) == ()
    assert policy.bound(facts_from_alert(alert(), no_ar=True)) == ()
    plan = policy.plan(facts_from_alert(alert(level=0)), INV, NO_PROTECTION)
    assert "level 0" in plan.unbound
    plan = policy.plan(facts_from_alert(alert(), no_ar=True), INV, NO_PROTECTION)
    assert "no_ar" in plan.unbound
    assert len(policy.bound(facts_from_alert(alert()))) == 2


def test_timeout_needs_timeout_allowed() -> None:
    body = """<active-response><command>restart</command><location>server</location><rules_id>5712</rules_id>
    <timeout>600</timeout></active-response>"""
    config = config_with(body)
    assert config.active_responses[0].timeout == 0
    assert any("timeout_allowed" in i.message for i in config.infos)
    (binding,) = Policy(config).bound(facts_from_alert(alert()))
    assert not binding.stateful
    timed = Policy(config_with(block(ids="5712"))).bound(facts_from_alert(alert()))[0]
    assert timed.stateful and timed.response.timeout == 60


# -- locations ---------------------------------------------------------------------------------------


def hosts(
    body: str, *, inventory: object = INV, manager_mode: bool = True, **alert_args: object
) -> list[str]:
    policy = Policy(config_with(body), manager_mode=manager_mode, agents={"003": "web2"})
    plan = policy.plan(facts_from_alert(alert(**alert_args)), inventory, NO_PROTECTION)  # type: ignore[arg-type]
    return sorted(i.host for i in plan.intents)


def ar(location: str, extra: str = "") -> str:
    return (
        f"<active-response><command>firewall-drop</command><location>{location}</location>"
        f"<rules_id>5712</rules_id><timeout>60</timeout>{extra}</active-response>"
    )


def test_local_is_the_agent_host_by_name_by_name_variable_and_by_id_variable() -> None:
    assert hosts(ar("local"), agent_id="001", agent_name="web1") == ["web1"]
    assert hosts(ar("local"), agent_id="002", agent_name="database-01") == ["db1"]
    assert hosts(ar("local"), agent_id="007", agent_name="firewall") == ["fw1"]
    # db1 has its own agent name, so an agent called "db1" is not it
    assert hosts(ar("local"), agent_id="004", agent_name="db1") == []


def test_local_for_the_managers_own_event_is_the_manager() -> None:
    assert hosts(ar("local"), agent_id="000", agent_name="manager") == ["manager"]
    bare = inventory_of({"web": ["web1"]})
    assert hosts(ar("local"), inventory=bare, agent_id="000", agent_name="mgr") == [IMPLICIT_LOCALHOST]
    assert hosts(ar("local"), inventory=bare, manager_mode=False, agent_id="000", agent_name="mgr") == []


def test_server_defined_agent_and_all() -> None:
    assert hosts(ar("server")) == ["manager"]
    assert hosts(ar("defined-agent", "<agent_id>007</agent_id>")) == ["fw1"]
    assert hosts(ar("defined-agent", "<agent_id>003</agent_id>")) == ["web2"], "name from client.keys"
    # all: every inventory host except the manager, as Wazuh excludes the manager
    assert hosts(ar("all")) == ["db1", "fw1", "web1", "web2"]
    assert hosts(ar("local,server"), agent_name="web2", agent_id="003") == ["manager", "web2"]


def test_unresolved_locations_are_skips_with_reasons() -> None:
    policy = Policy(config_with(ar("local") + ar("defined-agent", "<agent_id>009</agent_id>")))
    plan = policy.plan(facts_from_alert(alert(agent_id="005", agent_name="laptop")), INV, NO_PROTECTION)
    reasons = [s.reason for s in plan.skips]
    assert plan.intents == []
    assert any("agent 005 (laptop) has no inventory host" in r for r in reasons)
    assert any("agent 009 has no inventory host" in r for r in reasons)
    server = Policy(config_with(ar("server")), manager_mode=False)
    plan = server.plan(facts_from_alert(alert()), inventory_of({"web": ["web1"]}), NO_PROTECTION)
    assert "the manager is not in the inventory" in plan.skips[0].reason


def test_target_narrows_the_location_to_a_group_or_pattern() -> None:
    assert hosts(ar("all", "<target>web</target>")) == ["web1", "web2"]
    assert hosts(ar("all", "<target>web*:!web2</target>")) == ["web1"]
    assert hosts(ar("all", "<target>~^(db|fw)1$</target>")) == ["db1", "fw1"]
    assert hosts(ar("all", "<target>all:&amp;edge</target>")) == ["fw1"]
    assert hosts(ar("local", "<target>db</target>"), agent_name="web1") == []
    assert hosts(ar("local", "<target>web</target>"), agent_name="web1") == ["web1"]


def test_a_broken_target_regex_names_file_line_and_element() -> None:
    with pytest.raises(SourceErrors) as caught:
        Policy(config_with(ar("all", "<target>~(web</target>")))
    err = caught.value.errors[0]
    assert (err.path, err.element) == ("ossec.conf", "target") and err.line is not None
    assert "invalid regular expression" in err.message


# -- subjects and keys --------------------------------------------------------------------------------


def test_keys_name_command_host_and_subject() -> None:
    key = make_key("firewall-drop", "web1", "2001:db8::1")
    assert key == "firewall-drop/web1/2001:db8::1"
    assert split_key(key) == ("firewall-drop", "web1", "2001:db8::1")
    assert split_key("nonsense") is None


def test_two_blocks_on_one_key_become_one_intent_with_the_longer_timeout() -> None:
    body = ar("local").replace("<timeout>60</timeout>", "<timeout>60</timeout>") + ar("local").replace(
        "<timeout>60</timeout>", "<timeout>3600</timeout>"
    )
    plan = Policy(config_with(body)).plan(facts_from_alert(alert()), INV, NO_PROTECTION)
    assert len(plan.intents) == 1
    assert plan.intents[0].binding.response.timeout == 3600


def test_response_without_srcip_is_skipped_with_reason() -> None:
    plan = Policy(config_with(ar("local"))).plan(facts_from_alert(alert(srcip=None)), INV, NO_PROTECTION)
    assert plan.intents == []
    assert "the alert has no srcip (firewall-drop acts on it)" in plan.skips[0].reason


def test_user_responses_act_on_dstuser() -> None:
    body = """<active-response><command>disable-account</command><location>local</location>
    <rules_id>5712</rules_id><timeout>60</timeout></active-response>"""
    plan = Policy(config_with(body)).plan(facts_from_alert(alert(dstuser="alice")), INV, NO_PROTECTION)
    assert [(i.key, i.user, i.srcip) for i in plan.intents] == [("disable-account/web1/alice", "alice", None)]


def test_custom_command_uses_srcip_else_dstuser_else_nothing() -> None:
    body = """<active-response><command>custom</command><location>local</location>
    <rules_id>5712</rules_id></active-response>"""
    policy = Policy(config_with(body))
    keys = [
        policy.plan(facts_from_alert(alert(**kw)), INV, NO_PROTECTION).intents[0].key  # type: ignore[arg-type]
        for kw in (dict(srcip="192.0.2.4"), dict(srcip=None, dstuser="bob"), dict(srcip=None))
    ]
    assert keys == ["custom/web1/192.0.2.4", "custom/web1/bob", "custom/web1/-"]


def test_alerts_about_responses_never_trigger_responses() -> None:
    policy = Policy(config_with(ar("local").replace("<rules_id>5712</rules_id>", "<level>3</level>")))
    plan = policy.plan(
        facts_from_alert(alert(rule_id=651, level=3, decoder="ar_log_json")), INV, NO_PROTECTION
    )
    assert plan.intents == [] and "responses never trigger responses" in plan.skips[0].reason


def test_a_settings_only_disabled_block_turns_everything_off() -> None:
    body = "<active-response><disabled>yes</disabled></active-response>" + ar("local")
    plan = Policy(config_with(body)).plan(facts_from_alert(alert()), INV, NO_PROTECTION)
    assert plan.intents == [] and "disabled" in plan.skips[0].reason
