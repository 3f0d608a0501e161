"""Against Wazuh's own test data (read from ../shared at run time, never copied): a real alerts.json
line for rule 5712, and the messages Wazuh's analysisd sends execd for firewall-drop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from threatlockdown.response.alertfacts import facts_from_alert
from threatlockdown.response.audit import ar_message
from threatlockdown.response.policy import Policy
from threatlockdown.response.selfprotect import SelfProtection
from threatlockdown.response.testkit import config_with, inventory_of

WAZUH = Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "wazuh"
pytestmark = pytest.mark.skipif(not WAZUH.is_dir(), reason=f"{WAZUH} not available")
INV = inventory_of(
    {"managers": ["mgr"], "web": ["web1"]}, hostvars={"mgr": {"threatlockdown_agent_id": "000"}}
)
NO_PROTECTION = SelfProtection(enabled=False)


def real_5712_alert() -> dict[str, Any]:
    cases = yaml.safe_load((WAZUH / "cases_integratord_read_valid_json_alerts.yaml").read_text())
    alert: dict[str, Any] = json.loads(cases[0]["metadata"]["alert_sample"])
    return alert


def execd_messages() -> list[tuple[str, dict[str, Any] | None]]:
    cases = yaml.safe_load((WAZUH / "cases_execd_firewall_drop.yaml").read_text())
    out: list[tuple[str, dict[str, Any] | None]] = []
    for case in cases:
        text = case["metadata"]["input"].split(" ", 1)[1]
        try:
            out.append((case["name"], json.loads(text)))
        except ValueError:
            out.append((case["name"], None))
    return out


def test_real_5712_alert_binds_by_compliance_group_and_blocks_on_the_manager() -> None:
    alert = real_5712_alert()
    # The documented Wazuh idiom: OR of groups, each ended with ',' (pci_dss_11.4 comes from the alert's
    # "pci_dss" array, alerts.json keeps no group string).
    body = """<active-response><command>firewall-drop</command><location>local</location>
    <rules_group>apache,|pci_dss_11.4,</rules_group><timeout>600</timeout></active-response>"""
    plan = Policy(config_with(body)).plan(facts_from_alert(alert), INV, NO_PROTECTION)
    assert [(i.key, i.srcip) for i in plan.intents] == [("firewall-drop/mgr/172.17.1.1", "172.17.1.1")]
    assert "event came from the manager" in plan.intents[0].why
    assert plan.intents[0].user is None, "5712 decodes srcuser; Wazuh's responses use dstuser only"


def test_execd_cases_valid_message_blocks_and_missing_srcip_is_explained() -> None:
    body = """<active-response><command>firewall-drop</command><location>local</location>
    <rules_id>5715</rules_id><timeout>5</timeout></active-response>"""
    policy = Policy(config_with(body))
    results = {}
    for name, message in execd_messages():
        if message is None or "parameters" not in message:
            continue  # Wazuh's own malformed-message cases: nothing for the engine to read
        plan = policy.plan(facts_from_alert(message["parameters"]["alert"]), INV, NO_PROTECTION)
        results[name] = (plan.intents, plan.skips)
    intents, _ = results["Command execution succeed"]
    assert [i.key for i in intents] == ["firewall-drop/mgr/3.3.3.3"]
    intents, skips = results["Command execution fail - missing 'srcip'"]
    # Wazuh's firewall-drop fails with "Cannot read 'srcip' from data"; we say why before running it.
    assert intents == [] and "the alert has no srcip" in skips[0].reason


def test_our_message_has_the_shape_wazuh_sends_scripts() -> None:
    _, wazuh = execd_messages()[0]
    assert wazuh is not None
    ours = ar_message(
        node_name="node01",
        action="add",
        executable="firewall-drop",
        extra_args=[],
        alert=wazuh["parameters"]["alert"],
        target="mgr",
    )
    assert set(wazuh) == set(ours) == {"version", "origin", "command", "parameters"}
    assert ours["version"] == wazuh["version"] == 1
    assert set(ours["origin"]) == set(wazuh["origin"]) == {"name", "module"}
    assert set(wazuh["parameters"]) <= set(ours["parameters"])
    assert ours["parameters"]["alert"] == wazuh["parameters"]["alert"]
    assert ours["parameters"]["program"] == "active-response/bin/firewall-drop"
