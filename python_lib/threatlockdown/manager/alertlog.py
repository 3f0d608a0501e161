"""One alert in Wazuh's multi-line alerts.log format.

** Alert 1700000000.42: - syslog,sshd,invalid_login,
2026 Nov 26 05:33:21 web1->/var/log/auth.log
Rule: 5710 (level 5) -> 'sshd: Attempt to login using a non-existent user'
Src IP: 192.0.2.66
Src Port: 50022
<the full log line>
<name: value of each other decoded field>
<the correlated events, if any>
<blank line>
"""

from __future__ import annotations

import time

from ..analysis.alert import STATIC_FIELDS, describe
from ..analysis.session import ProcessResult

# Fields with their own header line, in Wazuh's order, and those it never repeats as "name: value".
_HEADER_FIELDS = (("srcip", "Src IP"), ("srcport", "Src Port"), ("dstip", "Dst IP"), ("dstport", "Dst Port"))
_STATIC_FIELDS = frozenset(STATIC_FIELDS)


def origin_of(result: ProcessResult) -> str:
    """``host->location`` for the manager's own events; ``(name) ip->location`` for an agent's."""
    ev = result.event
    if ev.agent_id != "000":
        return f"({ev.agent_name}) {ev.agent_ip or 'any'}->{ev.location}"
    return f"{ev.hostname or result.manager_name}->{ev.location}"


def format_alert_text(result: ProcessResult) -> str:
    """The alerts.log entry of ``result`` (its rule must be set), ending with the blank line."""
    rule = result.rule
    assert rule is not None, "only alerts are written to alerts.log"
    ev = result.event
    stamp = time.strftime("%Y %b %d %H:%M:%S", time.localtime(result.epoch))
    mail = " mail " if "alert_by_email" in rule.options else ""
    lines = [
        f"** Alert {result.alert_id}:{mail} - {rule.group_string}",
        f"{stamp} {origin_of(result)}",
        f"Rule: {rule.sid} (level {rule.level}) -> '{describe(rule, ev)}'",
    ]
    fields = ev.fields
    for key, title in _HEADER_FIELDS:
        if fields.get(key):
            lines.append(f"{title}: {fields[key]}")
    if fields.get("dstuser"):
        lines.append(f"User: {fields['dstuser']}")
    if "no_full_log" not in rule.options:
        lines.append(ev.full_log)
    lines.extend(f"{k}: {v}" for k, v in fields.items() if v and k not in _STATIC_FIELDS)
    lines.extend(e.full_log for e in result.match.previous)
    return "\n".join(lines) + "\n\n"
