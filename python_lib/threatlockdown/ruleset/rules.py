"""Wazuh-format rules: the Rule model and loading rule XML into a rule tree.

Tree construction follows Wazuh 4.x: rules without ``if_*`` parents are roots; ``if_sid`` attaches a rule
under each listed (already loaded) rule, ``if_group`` under every loaded rule with that group, ``if_level``
under every loaded rule of at least that level. ``if_matched_sid``/``if_matched_group`` imply the same
parent. Siblings are ordered level-0 first, then by level descending, ties in load order; ``accuracy="0"``
puts a rule last.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from ..errors import SourceError, SourceErrors
from ..xmlsrc import line_of, raw_text_of, text_of
from .conditions import (
    Condition,
    DecodedAs,
    FieldPattern,
    IpCondition,
    ListCondition,
    LogPattern,
    TimeOfDay,
    WeekDay,
    parse_clock,
    parse_weekdays,
)
from .lists import AddressList, KeyValueList
from .osregex import OsMatch, OsRegex, PatternError, compile_pattern
from .quickfilter import required_literals
from .variables import Variables

DEFAULT_TIMEFRAME = 360
COMPLIANCE_PREFIXES = ("pci_dss_", "gdpr_", "gpg13_", "hipaa_", "nist_800_53_", "tsc_", "cis_")

# Elements compared with an event value, by element name -> event key (OS_Match by default).
_STRING_FIELDS = {
    "program_name": "program_name",
    "hostname": "hostname",
    "user": "user",
    "srcport": "srcport",
    "dstport": "dstport",
    "id": "id",
    "url": "url",
    "location": "location",
    "action": "action",
    "status": "status",
    "system_name": "system_name",
    "protocol": "protocol",
    "data": "data",
    "extra_data": "extra_data",
    "srcuser": "srcuser",
    "dstuser": "dstuser",
    "srcgeoip": "srcgeoip",
    "dstgeoip": "dstgeoip",
}
# same_*/different_* elements -> the event value compared with earlier events.
_SAME = {
    "same_source_ip": "srcip",
    "same_srcip": "srcip",
    "same_src_port": "srcport",
    "same_srcport": "srcport",
    "same_dst_port": "dstport",
    "same_dstport": "dstport",
    "same_location": "location",
    "same_user": "user",
    "same_srcuser": "srcuser",
    "same_dstuser": "dstuser",
    "same_id": "id",
    "same_protocol": "protocol",
    "same_action": "action",
    "same_url": "url",
    "same_data": "data",
    "same_extra_data": "extra_data",
    "same_status": "status",
    "same_system_name": "system_name",
    "same_dstip": "dstip",
    "same_srcgeoip": "srcgeoip",
    "same_dstgeoip": "dstgeoip",
}
_DIFFERENT = {
    "different_srcip": "srcip",
    "not_same_source_ip": "srcip",
    "different_url": "url",
    "not_same_user": "user",
    "different_user": "user",
    "not_same_id": "id",
    "different_id": "id",
    "not_same_agent": "agent",
    "different_srcgeoip": "srcgeoip",
    "different_dstgeoip": "dstgeoip",
    "different_location": "location",
    "different_srcuser": "srcuser",
    "different_dstuser": "dstuser",
}
_OPTIONS = frozenset({"alert_by_email", "no_email_alert", "no_log", "no_ar", "no_full_log", "no_counter"})
_ACCEPTED_IGNORED = frozenset(
    {
        "info",
        "cve",
        "check_diff",
        "check_if_ignored",
        "compiled_rule",
        "if_fts",
        "fts",
        "var",
        "ignore",
        "mitre",
        "group",
        "description",
        "options",
    }
)
_LIST_LOOKUPS = frozenset(
    {
        "match_key",
        "not_match_key",
        "match_key_value",
        "address_match_key",
        "not_address_match_key",
        "address_match_key_value",
    }
)


@dataclass(eq=False)
class Rule:
    sid: int
    level: int
    path: str
    line: int | None
    description: str = ""
    groups: tuple[str, ...] = ()
    frequency: int | None = None
    timeframe: int = DEFAULT_TIMEFRAME
    ignore: int = 0
    noalert: bool = False
    accuracy: bool = True
    maxsize: int | None = None
    options: frozenset[str] = frozenset()
    mitre_ids: tuple[str, ...] = ()
    info: tuple[tuple[str, str], ...] = ()
    conditions: tuple[Condition, ...] = ()
    # Literal needles of which at least one must be in the lowered log; None = no cheap filter.
    quick: tuple[str, ...] | None = None
    category: str | None = None
    if_sid: tuple[int, ...] = ()
    if_group: str | None = None
    if_level: int | None = None
    if_matched_sid: int | None = None
    if_matched_group: str | None = None
    same: tuple[str, ...] = ()
    different: tuple[str, ...] = ()
    same_fields: tuple[str, ...] = ()
    different_fields: tuple[str, ...] = ()
    global_frequency: bool = False
    children: list[Rule] = field(default_factory=list)
    # The alert's unchanging rule parts, filled by analysis.alert on first use.
    alert_parts: Any = None
    # Mutable engine state lives in the engine, keyed by sid; not here.

    @property
    def id(self) -> str:
        return str(self.sid)

    @property
    def group_string(self) -> str:
        """Comma-joined groups with a trailing comma, as <rules_group> patterns expect."""
        return "".join(f"{g}," for g in self.groups)

    @property
    def is_correlation(self) -> bool:
        return self.if_matched_sid is not None or self.if_matched_group is not None

    def sort_key(self) -> int:
        if not self.accuracy:
            return -1
        return 9900 if self.level == 0 else self.level * 100


@dataclass
class RuleSet:
    """Rules in load order plus the tree roots."""

    rules: dict[int, Rule] = field(default_factory=dict)
    roots: list[Rule] = field(default_factory=list)
    warnings: list[SourceError] = field(default_factory=list)


def _insert_sorted(siblings: list[Rule], rule: Rule) -> None:
    key = rule.sort_key()
    for i, other in enumerate(siblings):
        if key > other.sort_key():
            siblings.insert(i, rule)
            return
    siblings.append(rule)


@dataclass
class RuleLoader:
    """Parses rule files into Rule objects and builds the tree; collects every error."""

    variables: Variables
    list_resolver: ListResolver
    errors: list[SourceError] = field(default_factory=list)
    warnings: list[SourceError] = field(default_factory=list)
    ruleset: RuleSet = field(default_factory=RuleSet)
    excluded_ids: frozenset[int] = frozenset()

    def _err(self, path: str, el: etree._Element, tag: str, msg: str) -> None:
        self.errors.append(SourceError(path, line_of(el), tag, msg))

    def load_elements(self, path: str, elements: Iterable[etree._Element]) -> None:
        for el in elements:
            if el.tag == "var":
                name = el.get("name")
                if name:
                    self.variables.define(name, text_of(el))
                else:
                    self._err(path, el, "var", "missing name attribute")
            elif el.tag == "group":
                base = tuple(g.strip() for g in (el.get("name") or "").split(",") if g.strip())
                for rel in el:
                    if not isinstance(rel.tag, str):
                        continue
                    if rel.tag == "rule":
                        self._add_rule(path, rel, base)
                    elif rel.tag == "var":
                        name = rel.get("name")
                        if name:
                            self.variables.define(name, text_of(rel))
                    else:
                        self._err(path, rel, str(rel.tag), "unknown element in <group> (expected <rule>)")
            else:
                self._err(path, el, str(el.tag), "unknown element in a rule file (expected <group> or <var>)")

    # -- one rule

    def _int_attr(self, path: str, el: etree._Element, name: str, lo: int, hi: int) -> int | None:
        raw = el.get(name)
        if raw is None:
            return None
        try:
            value = int(raw.strip())
        except ValueError:
            self._err(path, el, "rule", f"attribute {name}='{raw}' is not a number")
            return None
        if not lo <= value <= hi:
            self._err(path, el, "rule", f"attribute {name}={value} out of range {lo}..{hi}")
            return None
        return value

    def _pattern(self, path: str, el: etree._Element, default: str) -> OsMatch | OsRegex | None:
        try:
            return compile_pattern(
                self.variables.expand(raw_text_of(el)), el.get("type", ""), default=default
            )
        except PatternError as exc:
            self._err(path, el, str(el.tag), f"invalid pattern: {exc}")
            return None

    def _add_rule(self, path: str, el: etree._Element, base_groups: tuple[str, ...]) -> None:
        n_errors = len(self.errors)
        sid = self._int_attr(path, el, "id", 1, 999999)
        level = self._int_attr(path, el, "level", 0, 16)
        if el.get("id") is None:
            self._err(path, el, "rule", "missing id attribute")
        if el.get("level") is None:
            self._err(path, el, "rule", "missing level attribute")
        if sid is None or level is None:
            return
        rule = Rule(sid=sid, level=level, path=path, line=line_of(el))
        freq = self._int_attr(path, el, "frequency", 2, 9999)
        rule.frequency = freq
        tf = self._int_attr(path, el, "timeframe", 1, 10**7)
        if tf is not None:
            rule.timeframe = tf
        rule.ignore = self._int_attr(path, el, "ignore", 0, 10**7) or 0
        rule.maxsize = self._int_attr(path, el, "maxsize", 1, 10**7)
        rule.noalert = (el.get("noalert") or "").strip() not in ("", "0", "no")
        rule.accuracy = (el.get("accuracy") or "1").strip() != "0"
        overwrite = (el.get("overwrite") or "").strip().lower() == "yes"

        groups = list(base_groups)
        conditions: list[Condition] = []
        matches: list[tuple[etree._Element, str]] = []
        match_negate = False
        regexes: list[tuple[etree._Element, str]] = []
        regex_negate = False
        mitre: list[str] = []
        options: set[str] = set()
        same: list[str] = []
        different: list[str] = []
        same_fields: list[str] = []
        different_fields: list[str] = []
        info: list[tuple[str, str]] = []
        for child in el:
            if not isinstance(child.tag, str):
                continue
            tag = str(child.tag)
            value = text_of(child)
            negate = (child.get("negate") or "").strip().lower() == "yes"
            if tag == "match":
                matches.append((child, raw_text_of(child)))
                match_negate = match_negate or negate
            elif tag == "regex":
                regexes.append((child, raw_text_of(child)))
                regex_negate = regex_negate or negate
            elif tag == "decoded_as":
                conditions.append(DecodedAs(value))
            elif tag == "category":
                rule.category = value
            elif tag in _STRING_FIELDS:
                pat = self._pattern(path, child, "osmatch")
                if pat is not None:
                    conditions.append(FieldPattern(_STRING_FIELDS[tag], pat, negate))
            elif tag == "field":
                fname = (child.get("name") or "").strip()
                if not fname:
                    self._err(path, child, tag, "missing name attribute")
                    continue
                pat = self._pattern(path, child, "osregex")
                if pat is not None:
                    conditions.append(FieldPattern(fname, pat, negate))
            elif tag in ("srcip", "dstip"):
                cond = self._ip_condition(path, child, tag)
                if cond is not None:
                    conditions.append(cond)
            elif tag == "time":
                start, _, end = value.partition("-")
                neg = value.startswith("!")
                a, b = parse_clock(start.lstrip("!")), parse_clock(end)
                if a is None or b is None:
                    self._err(path, child, tag, f"invalid time range '{value}' (e.g. '6 pm - 8:30 am')")
                else:
                    conditions.append(TimeOfDay(a, b, neg or negate))
            elif tag == "weekday":
                neg = value.startswith("!")
                days = parse_weekdays(value.lstrip("!"))
                if days is None:
                    self._err(path, child, tag, f"invalid weekday list '{value}'")
                else:
                    conditions.append(WeekDay(days, neg or negate))
            elif tag == "list":
                cond2 = self._list_condition(path, child)
                if cond2 is not None:
                    conditions.append(cond2)
            elif tag == "if_sid":
                ids = self._id_list(path, child, value)
                if ids is not None:
                    rule.if_sid = ids
            elif tag == "if_group":
                rule.if_group = value
            elif tag == "if_level":
                try:
                    rule.if_level = int(value)
                except ValueError:
                    self._err(path, child, tag, f"'{value}' is not a level")
            elif tag == "if_matched_sid":
                ids = self._id_list(path, child, value)
                if ids is not None:
                    if len(ids) != 1:
                        self._err(path, child, tag, "takes exactly one rule id")
                    else:
                        rule.if_matched_sid = ids[0]
            elif tag == "if_matched_group":
                rule.if_matched_group = value
            elif tag in _SAME:
                same.append(_SAME[tag])
            elif tag in _DIFFERENT:
                different.append(_DIFFERENT[tag])
            elif tag == "same_field":
                same_fields.append(value)
            elif tag in ("different_field", "not_same_field"):
                different_fields.append(value)
            elif tag == "global_frequency":
                rule.global_frequency = True
            elif tag == "description":
                rule.description = value
            elif tag == "group":
                groups.extend(g.strip() for g in value.split(",") if g.strip())
            elif tag == "options":
                for opt in (o.strip() for o in value.replace(",", " ").split()):
                    if opt not in _OPTIONS:
                        self._err(path, child, tag, f"unknown option '{opt}'")
                    else:
                        options.add(opt)
            elif tag == "mitre":
                for mid in child:
                    if isinstance(mid.tag, str) and mid.tag == "id" and text_of(mid):
                        mitre.append(text_of(mid))
            elif tag == "info":
                info.append((child.get("type") or "text", value))
            elif tag in _ACCEPTED_IGNORED:
                continue
            else:
                self._err(path, child, tag, f"unknown element in rule {sid}")
        if matches:
            # Several <match> elements are concatenated into one pattern, as Wazuh does.
            joined = "".join(v for _, v in matches)
            first = matches[0][0]
            try:
                pat = compile_pattern(self.variables.expand(joined), first.get("type", ""), default="osmatch")
                conditions.insert(0, LogPattern(pat, match_negate, first.get("type") or "osmatch"))
            except PatternError as exc:
                self._err(path, first, "match", f"invalid pattern: {exc}")
        if regexes:
            # Several <regex> elements are concatenated too.
            first = regexes[0][0]
            joined = "".join(v for _, v in regexes)
            kind = first.get("type") or "osregex"
            try:
                rpat = compile_pattern(self.variables.expand(joined), kind, default="osregex")
                conditions.insert(1 if matches else 0, LogPattern(rpat, regex_negate, kind))
            except PatternError as exc:
                self._err(path, first, "regex", f"invalid pattern: {exc}")
        if (rule.frequency is not None or same or different or same_fields) and not rule.is_correlation:
            self._err(
                path,
                el,
                "rule",
                f"rule {sid}: frequency/same_*/different_* need if_matched_sid or if_matched_group",
            )
        if len(self.errors) > n_errors:
            return
        rule.groups = tuple(dict.fromkeys(groups))
        rule.conditions = tuple(conditions)
        rule.quick = _quick_filter(rule.conditions)
        rule.options = frozenset(options)
        rule.mitre_ids = tuple(mitre)
        rule.info = tuple(info)
        rule.same, rule.different = tuple(same), tuple(different)
        rule.same_fields, rule.different_fields = tuple(same_fields), tuple(different_fields)
        if rule.if_matched_sid is not None and not rule.if_sid:
            rule.if_sid = (rule.if_matched_sid,)
        if rule.if_matched_group is not None and rule.if_group is None:
            rule.if_group = rule.if_matched_group
        if sid in self.excluded_ids:
            return
        self._place(path, el, rule, overwrite)

    def _id_list(self, path: str, el: etree._Element, value: str) -> tuple[int, ...] | None:
        parts = [p for p in value.replace(",", " ").split() if p]
        if not parts or not all(p.isdigit() for p in parts):
            self._err(path, el, str(el.tag), f"invalid rule id list '{value}'")
            return None
        return tuple(int(p) for p in parts)

    def _ip_condition(self, path: str, el: etree._Element, tag: str) -> IpCondition | None:
        pos: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        neg: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for raw in self.variables.expand(text_of(el)).replace(",", " ").split():
            negated = raw.startswith("!")
            text = raw.lstrip("!")
            try:
                net = ipaddress.ip_network(text, strict=False)
            except ValueError:
                self._err(path, el, tag, f"'{raw}' is not an IP address or network")
                return None
            (neg if negated else pos).append(net)
        if (el.get("negate") or "").lower() == "yes":
            pos, neg = neg, pos
        return IpCondition(tag, tuple(pos), tuple(neg))

    def _list_condition(self, path: str, el: etree._Element) -> ListCondition | None:
        fname = (el.get("field") or "").strip()
        lookup = (el.get("lookup") or "match_key").strip()
        if not fname:
            self._err(path, el, "list", "missing field attribute")
            return None
        if lookup not in _LIST_LOOKUPS:
            self._err(path, el, "list", f"unknown lookup '{lookup}'")
            return None
        try:
            table = self.list_resolver.resolve(
                text_of(el), address=lookup.startswith(("address", "not_address"))
            )
        except SourceErrors as exc:
            for e in exc.errors:
                self.errors.append(SourceError(path, line_of(el), "list", str(e)))
            return None
        check = None
        if el.get("check_value"):
            try:
                check = compile_pattern(el.get("check_value") or "", "", default="osregex")
            except PatternError as exc:
                self._err(path, el, "list", f"invalid check_value: {exc}")
                return None
        return ListCondition(fname, lookup, table, check)

    def _place(self, path: str, el: etree._Element, rule: Rule, overwrite: bool) -> None:
        rs = self.ruleset
        existing = rs.rules.get(rule.sid)
        if existing is not None:
            if not overwrite:
                self._err(
                    path,
                    el,
                    "rule",
                    f"duplicate rule id {rule.sid} (first at {existing.path}:"
                    f'{existing.line}); use overwrite="yes" to replace it',
                )
                return
            # Overwrite keeps the tree position (if_* cannot change) and replaces the rest.
            if (rule.if_sid, rule.if_group, rule.if_level) != (
                existing.if_sid,
                existing.if_group,
                existing.if_level,
            ):
                self.warnings.append(
                    SourceError(
                        path,
                        line_of(el),
                        "rule",
                        f"rule {rule.sid}: if_sid, if_group and if_level cannot be overwritten; kept",
                    )
                )
            keep_children = existing.children
            for name in (
                "level",
                "description",
                "groups",
                "frequency",
                "timeframe",
                "ignore",
                "noalert",
                "accuracy",
                "maxsize",
                "options",
                "mitre_ids",
                "info",
                "conditions",
                "quick",
                "category",
                "same",
                "different",
                "same_fields",
                "different_fields",
                "global_frequency",
                "alert_parts",
                "path",
                "line",
            ):
                setattr(existing, name, getattr(rule, name))
            existing.children = keep_children
            return
        if overwrite:
            self.warnings.append(
                SourceError(
                    path, line_of(el), "rule", f'rule {rule.sid} has overwrite="yes" but no rule to overwrite'
                )
            )
        rs.rules[rule.sid] = rule
        if rule.if_sid:
            placed = False
            # Point at the element naming the parent: <if_sid>, or <if_matched_sid> which implies it.
            sid_el = el.find("if_sid")
            if sid_el is None:
                sid_el = el.find("if_matched_sid")
            sid_line = line_of(sid_el) if sid_el is not None else line_of(el)
            for psid in rule.if_sid:
                parent = rs.rules.get(psid)
                if parent is None or parent is rule:
                    self.warnings.append(
                        SourceError(
                            path, sid_line, "if_sid", f"rule {rule.sid}: parent rule {psid} not found"
                        )
                    )
                    continue
                _insert_sorted(parent.children, rule)
                placed = True
            if not placed:
                del rs.rules[rule.sid]
                self.warnings.append(
                    SourceError(
                        path,
                        line_of(el),
                        "rule",
                        f"rule {rule.sid} dropped: none of its if_sid parents exist",
                    )
                )
        elif rule.if_level is not None:
            parents = [r for r in rs.rules.values() if r is not rule and r.level >= rule.if_level]
            self._attach_all(path, el, rule, parents, f"no rule of level >= {rule.if_level}")
        elif rule.if_group is not None:
            parents = [r for r in rs.rules.values() if r is not rule and rule.if_group in r.groups]
            self._attach_all(path, el, rule, parents, f"no rule in group '{rule.if_group}'")
        else:
            _insert_sorted(rs.roots, rule)

    def _attach_all(self, path: str, el: etree._Element, rule: Rule, parents: list[Rule], why: str) -> None:
        if not parents:
            del self.ruleset.rules[rule.sid]
            self.warnings.append(SourceError(path, line_of(el), "rule", f"rule {rule.sid} dropped: {why}"))
            return
        for parent in parents:
            _insert_sorted(parent.children, rule)

    def finish(self) -> RuleSet:
        self.ruleset.warnings = list(self.warnings)
        return self.ruleset


def _quick_filter(conditions: tuple[Condition, ...]) -> tuple[str, ...] | None:
    """Needles from the first non-negated log pattern: a cheap 'cannot match' test before full checks."""
    for cond in conditions:
        if isinstance(cond, LogPattern) and not cond.negate:
            return required_literals(cond.pattern.source, cond.kind)
    return None


@dataclass
class ListResolver:
    """Finds list files named by rules, relative to the home directory, and caches them."""

    home: Path | None
    allowed: tuple[str, ...] = ()
    cache: dict[tuple[str, bool], KeyValueList | AddressList] = field(default_factory=dict)

    def resolve(self, name: str, *, address: bool) -> KeyValueList | AddressList:
        key = (name, address)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        path = Path(name)
        if not path.is_absolute() and self.home is not None:
            path = self.home / path
        if not path.exists() and path.with_suffix(path.suffix + ".cdb").exists():
            path = path.with_suffix(path.suffix + ".cdb")
        table: KeyValueList | AddressList = AddressList.load(path) if address else KeyValueList.load(path)
        self.cache[key] = table
        return table
