"""Filters that turn inventory variables into the manager's <command> and <active-response> lists.

Ansible never merges lists across groups: a host in two groups gets one group's list and silently loses
the other's. The active-response policy therefore comes from every variable whose name starts with a
prefix, concatenated in name order: ``threatlockdown_manager_active_responses*`` on the manager,
``threatlockdown_agent_active_responses*`` on each monitored host. Host policies become
<active-response> blocks whose <target> is the inventory group holding exactly the hosts that share the
block (else the hosts, joined with ':'), so each group gets its own policy. See docs/deployment.md.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

HOST_POLICY_PATTERN = re.compile(r"^threatlockdown_agent_active_responses(_.+)?$")
AR_KEYS = (
    "command",
    "location",
    "agent_id",
    "level",
    "rules_group",
    "rules_id",
    "timeout",
    "repeated_offenders",
    "disabled",
    "target",
)
COMMAND_KEYS = ("name", "executable", "timeout_allowed", "extra_args")
BUILTIN_GROUPS = ("all", "ungrouped")


def _fail(where: str, message: str) -> AnsibleFilterError:
    return AnsibleFilterError(f"{where}: {message}")


def _unknown_key(where: str, key: object, known: Sequence[str]) -> AnsibleFilterError:
    close = difflib.get_close_matches(str(key), known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(known)})"
    return _fail(where, f"unknown key '{key}'{hint}")


def _text(where: str, value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _fail(where, f"expected a string, got {type(value).__name__}")
    text = str(value).strip()
    if not text:
        raise _fail(where, "must not be empty")
    return text


def _number(where: str, value: object, low: int, high: int | None = None) -> int:
    # YAML gives ints; a string of digits (from -e or a template) is accepted too.
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip().isdigit():
        raise _fail(where, f"expected a whole number, got {value!r}")
    number = int(str(value).strip())
    if number < low or (high is not None and number > high):
        upper = f" to {high}" if high is not None else " or more"
        raise _fail(where, f"{number} is out of range ({low}{upper})")
    return number


def _numbers(where: str, value: object, low: int) -> list[int]:
    """A list, one number, or text such as "5710,5712" / "5710 5712"."""
    if isinstance(value, list):
        items: list[object] = list(value)
    elif isinstance(value, str):
        items = [part for part in re.split(r"[,\s]+", value) if part]
    else:
        items = [value]
    if not items:
        raise _fail(where, "must not be empty")
    return [_number(f"{where}[{i}]", item, low) for i, item in enumerate(items)]


def _flag(where: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("yes", "no", "true", "false"):
        return value.lower() in ("yes", "true")
    raise _fail(where, f"expected true or false, got {value!r}")


def normalise_response(where: str, item: object, *, allow_target: bool = True) -> dict[str, Any]:
    """One <active-response> item with checked types, in a fixed key order, unset keys left out."""
    if not isinstance(item, Mapping):
        raise _fail(where, f"expected a mapping, got {type(item).__name__}")
    for key in item:
        if key not in AR_KEYS:
            raise _unknown_key(where, key, AR_KEYS)
    if not allow_target and "target" in item:
        raise _fail(
            where,
            "'target' is set by the manager role from the group that holds the policy; "
            "write explicit targets in threatlockdown_manager_active_responses instead",
        )
    out: dict[str, Any] = {}
    disabled = _flag(f"{where}.disabled", item.get("disabled", False))
    if "command" in item:
        out["command"] = _text(f"{where}.command", item["command"])
    elif not disabled:
        raise _fail(where, "missing 'command'")
    location = item.get("location", "local")
    if isinstance(location, list):
        location = ",".join(_text(f"{where}.location[{i}]", word) for i, word in enumerate(location))
    out["location"] = _text(f"{where}.location", location)
    if item.get("agent_id") is not None:
        out["agent_id"] = _text(f"{where}.agent_id", item["agent_id"])
    if item.get("level") is not None:
        out["level"] = _number(f"{where}.level", item["level"], 0, 20)
    if item.get("rules_group") is not None:
        out["rules_group"] = _text(f"{where}.rules_group", item["rules_group"])
    if item.get("rules_id") is not None:
        out["rules_id"] = _numbers(f"{where}.rules_id", item["rules_id"], 1)
    if item.get("timeout") is not None:
        out["timeout"] = _number(f"{where}.timeout", item["timeout"], 0)
    if item.get("repeated_offenders") is not None:
        out["repeated_offenders"] = _numbers(f"{where}.repeated_offenders", item["repeated_offenders"], 1)
    if disabled:
        out["disabled"] = True
    if item.get("target") is not None:
        out["target"] = _text(f"{where}.target", item["target"])
    if not any(key in out for key in ("level", "rules_group", "rules_id")) and not disabled:
        raise _fail(where, "binds no rule: give level, rules_group or rules_id")
    return out


def _items(where: str, value: object) -> list[object]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail(where, f"expected a list, got {type(value).__name__}")
    return list(value)


def manager_responses(sources: Mapping[str, object]) -> list[dict[str, Any]]:
    """Concatenate the manager-side lists (variable name -> list) in name order."""
    out: list[dict[str, Any]] = []
    for name in sorted(sources):
        for i, item in enumerate(_items(name, sources[name])):
            out.append(normalise_response(f"{name}[{i}]", item))
    return out


def _target_for(hosts: Sequence[str], groups: Mapping[str, Iterable[str]]) -> str:
    members = frozenset(hosts)
    named = sorted(
        g for g, hs in groups.items() if g not in BUILTIN_GROUPS and frozenset(hs) == members and members
    )
    if named:
        return named[0]
    if frozenset(groups.get("all", ())) == members:
        return "all"
    return ":".join(hosts)


def host_responses(
    hostvars: Mapping[str, Mapping[str, Any]], hosts: Sequence[str], groups: Mapping[str, Iterable[str]]
) -> list[dict[str, Any]]:
    """Blocks from the monitored hosts' own policy variables, one per distinct block, with its <target>."""
    holders: dict[str, list[str]] = {}
    blocks: dict[str, dict[str, Any]] = {}
    for host in hosts:
        try:
            host_vars = hostvars[host]
        except KeyError:
            raise _fail(f"threatlockdown_manager_policy_hosts: {host}", "not in the inventory") from None
        names = sorted(name for name in host_vars if HOST_POLICY_PATTERN.match(str(name)))
        for name in names:
            for i, item in enumerate(_items(f"host {host}: {name}", host_vars[name])):
                block = normalise_response(f"host {host}: {name}[{i}]", item, allow_target=False)
                key = json.dumps(block, sort_keys=True)
                blocks.setdefault(key, block)
                if host not in holders.setdefault(key, []):
                    holders[key].append(host)
    return [{**blocks[key], "target": _target_for(holders[key], groups)} for key in blocks]


def threatlockdown_manager_policy(
    sources: Mapping[str, object],
    hostvars: Mapping[str, Mapping[str, Any]],
    hosts: Sequence[str],
    groups: Mapping[str, Iterable[str]],
) -> list[dict[str, Any]]:
    """The manager's <active-response> list: its own lists first, then the hosts' policies."""
    return manager_responses(sources) + host_responses(hostvars, list(hosts), groups)


def threatlockdown_manager_commands(defaults: object, extra: object) -> list[dict[str, Any]]:
    """Default commands, then the user's; a user command with a default's name replaces it in place."""
    merged: dict[str, dict[str, Any]] = {}
    for var, value in (
        ("threatlockdown_manager_default_commands", defaults),
        ("threatlockdown_manager_commands", extra),
    ):
        seen: set[str] = set()
        for i, item in enumerate(_items(var, value)):
            where = f"{var}[{i}]"
            if not isinstance(item, Mapping):
                raise _fail(where, f"expected a mapping, got {type(item).__name__}")
            for key in item:
                if key not in COMMAND_KEYS:
                    raise _unknown_key(where, key, COMMAND_KEYS)
            for key in ("name", "executable"):
                if key not in item:
                    raise _fail(where, f"missing '{key}'")
            name = _text(f"{where}.name", item["name"])
            if name in seen:
                raise _fail(where, f"command '{name}' is defined twice in {var}")
            seen.add(name)
            args = item.get("extra_args", [])
            if isinstance(args, str):
                args = args.split()
            args_where = f"{where}.extra_args"
            merged[name] = {
                "name": name,
                "executable": _text(f"{where}.executable", item["executable"]),
                "timeout_allowed": _flag(f"{where}.timeout_allowed", item.get("timeout_allowed", False)),
                "extra_args": [
                    _text(f"{args_where}[{j}]", a) for j, a in enumerate(_items(args_where, args))
                ],
            }
    return list(merged.values())


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "threatlockdown_manager_policy": threatlockdown_manager_policy,
            "threatlockdown_manager_commands": threatlockdown_manager_commands,
        }
