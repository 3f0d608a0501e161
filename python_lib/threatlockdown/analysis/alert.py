"""The alerts.json object, in Wazuh 4.x's schema and key order."""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any

import orjson

from ..ruleset.engine import Match
from ..ruleset.event import Event
from ..ruleset.rules import COMPLIANCE_PREFIXES, Rule
from . import mitre

# Static data fields first, in the order Wazuh writes them.
STATIC_FIELDS = (
    "protocol",
    "action",
    "srcip",
    "srcport",
    "srcuser",
    "dstip",
    "dstport",
    "dstuser",
    "id",
    "status",
    "url",
    "data",
    "extra_data",
    "system_name",
)
MAX_DATA_DEPTH = 64  # nesting levels made from one dotted field name
_DESC_FIELD = re.compile(r"\$\(([^)]+)\)")


def _split_millis(epoch: float) -> tuple[int, int]:
    """(seconds, milliseconds), truncated like Wazuh's tv_nsec / 1000000.

    A float epoch such as 1652272159.905 is stored as ...159.90499997: the extra microsecond keeps
    that representation error from showing as .904. Rounded down, not toward zero: before 1970 the
    milliseconds still count up from the second before (-1.0 is 23:59:59.000, not .001).
    """
    return divmod(math.floor(epoch * 1000 + 0.001), 1000)


def format_timestamp(epoch: float) -> str:
    """2022-05-11T12:29:19.905+0000"""
    second, millis = _split_millis(epoch)
    lt = time.localtime(second)
    return time.strftime("%Y-%m-%dT%H:%M:%S", lt) + f".{millis:03d}" + time.strftime("%z", lt)


def minute_texts(minute: int) -> tuple[str, str] | None:
    """The local "%Y-%m-%dT%H:%M:" and "%z" texts of ``minute`` (epoch // 60), if every second of it is
    written as that head, its two-digit second and that zone; None otherwise.

    That holds when the zone offset is whole minutes and the same at both ends of the minute (no change
    of offset inside it) and the minute runs from local second 0 to 59 (no leap second).
    """
    first = time.localtime(minute * 60)
    last = time.localtime(minute * 60 + 59)
    if (
        first.tm_gmtoff != last.tm_gmtoff
        or first.tm_gmtoff % 60
        or first.tm_sec != 0
        or last.tm_sec != 59
        or first.tm_min != last.tm_min
    ):
        return None
    return time.strftime("%Y-%m-%dT%H:%M:", first), time.strftime("%z", first)


class TimestampFormatter:
    """format_timestamp with the formatted minute remembered: alerts come many per minute."""

    __slots__ = ("_head", "_minute", "_zone")

    def __init__(self) -> None:
        self._minute: int | None = None  # epoch // 60 of the remembered minute
        self._head = ""  # its local "%Y-%m-%dT%H:%M:"
        self._zone = ""

    def __call__(self, epoch: float) -> str:
        second, millis = _split_millis(epoch)
        minute, sec = divmod(second, 60)
        if minute != self._minute:
            texts = minute_texts(minute)
            if texts is None:
                return format_timestamp(epoch)
            self._minute = minute
            self._head, self._zone = texts
        return f"{self._head}{sec:02d}.{millis:03d}{self._zone}"


def alert_line(obj: dict[str, Any]) -> bytes:
    """One compact alerts.json line (no newline), UTF-8, as Wazuh writes it."""
    try:
        return orjson.dumps(obj)
    except (orjson.JSONEncodeError, TypeError):
        # Lone surrogates (undecodable bytes kept by a reader) are escaped instead of refused.
        return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def describe(rule: Rule, event: Event) -> str:
    """The description with $(field) replaced by the event's value (empty when absent)."""
    desc = rule.description
    if "$(" not in desc:
        return desc
    return _DESC_FIELD.sub(lambda m: _lookup(event, m.group(1)), desc)


def _lookup(event: Event, name: str) -> str:
    if name in ("program_name", "hostname", "location"):
        return str(getattr(event, name))
    return event.fields.get(name, "")


def rule_object(rule: Rule, match: Match, event: Event, *, shared: bool = False) -> dict[str, Any]:
    """The alert's ``rule`` object. ``shared``: the lists and dicts that never change are the rule's own
    (for an object serialised at once and dropped); otherwise they are copies the caller may change.
    """
    mitre_part, tail, rule_id = static_parts(rule)
    out: dict[str, Any] = {"level": rule.level, "description": describe(rule, event), "id": rule_id}
    if mitre_part is not None:
        out["mitre"] = mitre_part if shared else {k: list(v) for k, v in mitre_part.items()}
    if rule.frequency is not None and match.previous:
        out["frequency"] = rule.frequency
    if "no_counter" not in rule.options:
        out["firedtimes"] = match.firedtimes
    if shared:
        out.update(tail)
    else:
        for key, value in tail.items():
            out[key] = list(value) if isinstance(value, list) else value
    return out


def static_parts(rule: Rule) -> tuple[dict[str, list[str]] | None, dict[str, Any], str]:
    """The parts of ``rule``'s alert object that never change: its MITRE object (None: no MITRE ids),
    the keys from "mail" on, and its id. Worked out once per rule and kept on it; never to be changed.
    """
    static: tuple[dict[str, list[str]] | None, dict[str, Any], str] | None = rule.alert_parts
    if static is None:
        static = rule.alert_parts = _work_out_static_parts(rule)
    return static


def _work_out_static_parts(rule: Rule) -> tuple[dict[str, list[str]] | None, dict[str, Any], str]:
    tail: dict[str, Any] = {"mail": "alert_by_email" in rule.options}
    plain: list[str] = []
    compliance: dict[str, list[str]] = {}
    for g in rule.groups:
        for prefix in COMPLIANCE_PREFIXES:
            if g.startswith(prefix):
                compliance.setdefault(prefix[:-1], []).append(g[len(prefix) :])
                break
        else:
            plain.append(g)
    tail["groups"] = plain
    for key in sorted(compliance):
        tail[key] = compliance[key]
    for kind, text in rule.info:
        if kind == "cve":
            tail["cve"] = text
        else:
            tail.setdefault("info", text)
    return (mitre.expand(rule.mitre_ids) if rule.mitre_ids else None), tail, rule.id


def data_object(fields: dict[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key in STATIC_FIELDS:
        if key in fields:
            data[key] = fields[key]
    for key, value in fields.items():
        if key in data:
            continue
        if "." not in key:
            data[key] = value
            continue
        node = data
        # A field name from a log line may hold thousands of dots; past MAX_DATA_DEPTH levels the rest
        # of the name stays one key, so the alert can still be serialised (orjson stops at 255 levels).
        parts = key.split(".", MAX_DATA_DEPTH)
        for part in parts[:-1]:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                nxt = {}
                node[part] = nxt
            node = nxt
        node[parts[-1]] = value
    return data


def alert_object(
    event: Event,
    match: Match,
    *,
    epoch: float,
    alert_id: str,
    manager_name: str,
    timestamp: str | None = None,
    shared: bool = False,
) -> dict[str, Any]:
    """The full alerts.json object; ``rule`` is absent when no rule matched (logtest output).

    ``shared`` as for rule_object: only for an object that is serialised at once.
    """
    rule = match.rule
    out: dict[str, Any] = {"timestamp": timestamp if timestamp is not None else format_timestamp(epoch)}
    if rule is not None:
        out["rule"] = rule_object(rule, match, event, shared=shared)
    agent: dict[str, Any] = {"id": event.agent_id, "name": event.agent_name or manager_name}
    if event.agent_ip:
        agent["ip"] = event.agent_ip
    out["agent"] = agent
    out["manager"] = {"name": manager_name}
    out["id"] = alert_id
    if match.previous:
        out["previous_output"] = "\n".join(e.full_log for e in match.previous)
    if rule is None or "no_full_log" not in rule.options:
        out["full_log"] = event.full_log
    pre = predecoder_fields(event)
    if pre:
        out["predecoder"] = pre
    if event.decoder_name:
        dec: dict[str, str] = {}
        if event.decoder_parent:
            dec["parent"] = event.decoder_parent
        dec["name"] = event.decoder_name
        out["decoder"] = dec
    if event.fields:
        out["data"] = data_object(event.fields)
    out["location"] = event.location
    return out


def predecoder_fields(event: Event) -> dict[str, str]:
    """The alert's ``predecoder`` object: what the header gave, hostname only where Wazuh shows it."""
    pre: dict[str, str] = {}
    if event.program_name:
        pre["program_name"] = event.program_name
    if event.timestamp:
        pre["timestamp"] = event.timestamp
    if event.hostname and event.hostname_in_alert:
        pre["hostname"] = event.hostname
    return pre
