"""What the engine reads from an alert: the alerts.json object, or an analysis result from the manager.

Everything is taken from the alert dict (``tld runner`` only has alerts.json lines). A ProcessResult adds
what alerts.json does not carry: the rule's exact group string and its ``no_ar`` option.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..analysis.session import ProcessResult
from ..ruleset.rules import COMPLIANCE_PREFIXES

MANAGER_AGENT_ID = "000"
# Decoders of an active-response log (ours and Wazuh's): alerts about responses never trigger one,
# or a block's own "Host Blocked" alert would count as a new offence and an unblock would block again.
AUDIT_DECODERS = frozenset(("ar_log_json", "ar_log"))


class AlertShapeError(ValueError):
    """The object is not an alert the engine can use (no rule, wrong types)."""


@dataclass(slots=True)  # built per alert; a frozen dataclass costs several times more to build
class AlertFacts:
    alert: Mapping[str, Any]
    rule_id: int
    level: int
    # "syslog,sshd,authentication_failed," as <rules_group> patterns expect; None: rebuilt from the
    # alert's rule object when needed (Policy caches it per rule)
    group_string: str | None
    no_ar: bool
    srcip: str | None  # raw, as decoded
    dstuser: str | None
    agent_id: str
    agent_name: str
    manager_name: str
    alert_id: str
    decoder: str
    rule: Mapping[str, Any] = field(default_factory=dict)  # alert["rule"], read once here

    @property
    def from_audit_log(self) -> bool:
        return self.decoder in AUDIT_DECODERS

    @property
    def from_manager(self) -> bool:
        return self.agent_id == MANAGER_AGENT_ID


_EMPTY: Mapping[str, Any] = {}


def _text(value: Any) -> str | None:
    if type(value) is str:  # the common case first: isinstance on ABCs is slow per alert
        return value
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _obj(value: Any) -> Mapping[str, Any]:
    if type(value) is dict:
        return value
    return value if isinstance(value, Mapping) else _EMPTY


GROUP_KEYS = ("groups", *(prefix[:-1] for prefix in COMPLIANCE_PREFIXES))


def group_string_of(rule: Mapping[str, Any]) -> str:
    """Rebuild Wazuh's group string from an alert's ``rule`` object.

    alerts.json splits compliance groups (pci_dss_11.4, ...) into their own arrays; they are put back
    after the plain groups. Within a rule file they may have been interleaved, so a <rules_group>
    pattern spanning a plain and a compliance group can differ from Wazuh for alerts.json input.
    """
    parts: list[str] = []
    groups = rule.get("groups")
    if isinstance(groups, list):
        parts.extend(g for g in groups if isinstance(g, str))
    for prefix in COMPLIANCE_PREFIXES:
        values = rule.get(prefix[:-1])
        if isinstance(values, list):
            parts.extend(prefix + v for v in values if isinstance(v, str))
    return "".join(f"{p}," for p in parts)


def facts_from_alert(
    alert: Mapping[str, Any], *, no_ar: bool = False, group_string: str | None = None
) -> AlertFacts:
    """The facts of an alerts.json object; AlertShapeError when it has no usable rule."""
    # Runs for every alert: plain dicts and strings (what JSON gives) are tested by type inline, the
    # general checks (Mapping, numbers) run only for anything else.
    rule = alert.get("rule")
    if type(rule) is not dict and not isinstance(rule, Mapping):
        raise AlertShapeError("no 'rule' object")
    raw_id = rule.get("id")
    rule_id_text = raw_id if type(raw_id) is str else _text(raw_id)
    if rule_id_text is None or not rule_id_text.isascii() or not rule_id_text.isdigit():
        raise AlertShapeError(f"rule.id {raw_id!r} is not a number")
    level = rule.get("level")
    if type(level) is not int:
        if isinstance(level, str) and level.isascii() and level.isdigit():
            level = int(level)
        if not isinstance(level, int) or isinstance(level, bool):
            raise AlertShapeError(f"rule.level {rule.get('level')!r} is not a number")
    data = alert.get("data")
    if type(data) is not dict:
        data = _obj(data)
    agent = alert.get("agent")
    if type(agent) is not dict:
        agent = _obj(agent)
    decoder = alert.get("decoder")
    if type(decoder) is not dict:
        decoder = _obj(decoder)
    manager = alert.get("manager")
    if type(manager) is not dict:
        manager = _obj(manager)
    srcip = data.get("srcip")
    dstuser = data.get("dstuser")
    agent_id = agent.get("id")
    agent_name = agent.get("name")
    manager_name = manager.get("name")
    alert_id = alert.get("id")
    parent = decoder.get("parent") or decoder.get("name")
    return AlertFacts(
        alert,
        int(rule_id_text),
        level,
        group_string,
        no_ar,
        srcip if type(srcip) is str else _text(srcip),
        dstuser if type(dstuser) is str or dstuser is None else _text(dstuser),
        (agent_id if type(agent_id) is str else _text(agent_id)) or MANAGER_AGENT_ID,
        (agent_name if type(agent_name) is str else _text(agent_name)) or "",
        (manager_name if type(manager_name) is str else _text(manager_name)) or "",
        (alert_id if type(alert_id) is str else _text(alert_id)) or "",
        (parent if type(parent) is str else _text(parent)) or "",
        rule,
    )


def facts_from_result(result: ProcessResult, alert: Mapping[str, Any]) -> AlertFacts:
    """The facts of a manager alert, with the rule's exact group string and options."""
    rule = result.rule
    if rule is None:
        raise AlertShapeError("no rule matched")
    return facts_from_alert(alert, no_ar="no_ar" in rule.options, group_string=rule.group_string)
