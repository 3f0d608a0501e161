"""Small builders for tests, benchmarks and examples: a config from a snippet, an inventory from a
dict, an alert like alerts.json's. Not used by the engine itself."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..config.model import OssecConfig
from ..config.reader import read_config_text
from ..errors import SourceErrors
from .inventory import Inventory, inventory_from_list

STOCK_COMMANDS = """
  <command><name>firewall-drop</name><executable>firewall-drop</executable>
    <timeout_allowed>yes</timeout_allowed></command>
  <command><name>host-deny</name><executable>host-deny</executable>
    <timeout_allowed>yes</timeout_allowed></command>
  <command><name>disable-account</name><executable>disable-account</executable>
    <timeout_allowed>yes</timeout_allowed></command>
  <command><name>restart</name><executable>restart-threatlockdown</executable></command>
  <command><name>custom</name><executable>custom-script</executable>
    <timeout_allowed>yes</timeout_allowed><extra_args>-a b</extra_args></command>
"""


def config_with(body: str, *, white_list: Sequence[str] = (), path: str = "ossec.conf") -> OssecConfig:
    """An OssecConfig of the stock commands plus ``body`` (<active-response> blocks, ...)."""
    wl = "".join(f"<white_list>{w}</white_list>" for w in white_list)
    text = f"<ossec_config>\n<global>{wl}</global>\n{STOCK_COMMANDS}\n{body}\n</ossec_config>\n"
    config, errors = read_config_text(text, path)
    if config is None:
        raise SourceErrors(errors)
    return config


def inventory_of(
    groups: Mapping[str, Sequence[str]],
    hostvars: Mapping[str, Mapping[str, Any]] | None = None,
    source: str = "inventory.yml",
) -> Inventory:
    """An Inventory as ``ansible-inventory --list`` would describe ``groups`` (group -> hosts)."""
    data: dict[str, Any] = {"all": {"children": ["ungrouped", *groups]}, "ungrouped": {"hosts": []}}
    seen: list[str] = []
    for group, hosts in groups.items():
        data[group] = {"hosts": list(hosts)}
        seen.extend(h for h in hosts if h not in seen)
    vars_ = {h: dict((hostvars or {}).get(h, {})) for h in seen}
    for h, v in (hostvars or {}).items():
        if h not in vars_:
            data["ungrouped"]["hosts"].append(h)
            vars_[h] = dict(v)
    data["_meta"] = {"hostvars": vars_}
    return inventory_from_list(data, source)


def alert(
    rule_id: int = 5712,
    level: int = 10,
    *,
    groups: Sequence[str] = ("syslog", "sshd", "authentication_failures"),
    srcip: str | None = "198.51.100.7",
    dstuser: str | None = None,
    agent_id: str = "001",
    agent_name: str = "web1",
    alert_id: str = "1700000000.1",
    extra_rule: Mapping[str, Any] | None = None,
    decoder: str = "sshd",
) -> dict[str, Any]:
    """An alerts.json object with the fields the engine reads."""
    data: dict[str, Any] = {}
    if srcip is not None:
        data["srcip"] = srcip
    if dstuser is not None:
        data["dstuser"] = dstuser
    rule: dict[str, Any] = {"level": level, "description": "test", "id": str(rule_id), "groups": list(groups)}
    rule.update(extra_rule or {})
    out: dict[str, Any] = {
        "timestamp": "2024-05-01T12:00:00.000+0000",
        "rule": rule,
        "agent": {"id": agent_id, "name": agent_name},
        "manager": {"name": "manager"},
        "id": alert_id,
        "full_log": "test",
        "decoder": {"parent": decoder, "name": decoder},
        "location": "/var/log/auth.log",
    }
    if data:
        out["data"] = data
    return out
