"""<localfile>: the log sources to read."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lxml import etree

from ..xmlsrc import line_of
from .findings import Findings, did_you_mean, quote
from .model import LocalFile
from .values import children, leaf_text, parse_uint, required_text, tag_of

# Every log format Wazuh 4.x accepts, besides "multi-line: N".
LOG_FORMATS = (
    "syslog",
    "generic",
    "json",
    "snort-full",
    "snort-fast",
    "apache",
    "iis",
    "squid",
    "nmapg",
    "mysql_log",
    "ossecalert",
    "mssql_log",
    "postgresql_log",
    "djb-multilog",
    "syslog-pipe",
    "command",
    "full_command",
    "audit",
    "multi-line-regex",
    "eventlog",
    "eventchannel",
    "macos",
    "journald",
)
COMMAND_FORMATS = ("command", "full_command")
# Formats whose location is fixed: Wazuh fills it in, or replaces another value with a warning.
FIXED_LOCATION_FORMATS = ("journald", "macos")
_SINGLE = ("location", "command", "log_format")
_OTHERS = (
    "frequency",
    "alias",
    "only-future-events",
    "query",
    "label",
    "target",
    "out_format",
    "reconnect_time",
    "age",
    "exclude",
    "ignore_binaries",
    "ignore",
    "restrict",
    "multiline_regex",
    "filter",
)
LOCALFILE_ELEMENTS = (*_SINGLE, *_OTHERS)
# Wazuh compares these element names without regard to case.
_ANY_CASE = frozenset(
    ("log_format", "multiline_regex", "exclude", "alias", "ignore_binaries", "ignore", "restrict", "filter")
)
_MULTI_LINE = re.compile(r"multi-line\s*:\s*([0-9]{1,9})\s*")
_AGE = re.compile(r"([0-9]{1,9})[wdhms]?")


@dataclass
class _LocalFileFields:
    log_format: str | None = None
    log_format_line: int | None = None
    multiline_lines: int | None = None
    location: str | None = None
    location_line: int | None = None
    command: str | None = None
    filters: list[tuple[str, str]] = field(default_factory=list)
    filter_line: int | None = None
    ignore_if_missing: list[str] = field(default_factory=list)
    other: dict[str, str] = field(default_factory=dict)
    seen: dict[str, int | None] = field(default_factory=dict)

    def add_other(self, key: str, text: str) -> None:
        self.other[key] = f"{self.other[key]},{text}" if key in self.other else text


def _canonical(tag: str) -> str:
    return tag.lower() if tag.lower() in _ANY_CASE else tag


def read_localfile(block: etree._Element, found: Findings) -> LocalFile | None:
    errors_before = len(found.errors)
    f = _LocalFileFields()
    for child in children(block):
        tag = _canonical(tag_of(child))
        if tag not in LOCALFILE_ELEMENTS:
            found.unknown_element(line_of(child), "localfile", tag_of(child), LOCALFILE_ELEMENTS)
            continue
        if tag in _SINGLE and tag in f.seen:
            found.error(line_of(child), "localfile", f"<{tag}> appears twice (first at line {f.seen[tag]})")
            continue
        f.seen.setdefault(tag, line_of(child))
        _read_element(child, tag, f, found)
    _check_combination(block, f, found)
    if len(found.errors) > errors_before or f.log_format is None:
        return None
    return LocalFile(
        log_format=f.log_format,
        location=f.location,
        command=f.command,
        filters=tuple(f.filters),
        multiline_lines=f.multiline_lines,
        other=dict(f.other),
        path=found.path,
        line=line_of(block),
    )


def _read_element(child: etree._Element, tag: str, f: _LocalFileFields, found: Findings) -> None:
    line = line_of(child)
    if tag == "log_format":
        f.log_format_line = line
        f.log_format = _log_format(child, f, found)
    elif tag == "location":
        f.location, f.location_line = required_text(child, found), line
    elif tag == "command":
        f.command = required_text(child, found)
    elif tag == "filter":
        _filter(child, f, found)
    elif tag == "label":
        _label(child, f, found)
    else:
        text = leaf_text(child, found)
        if text is not None and _valid_other(child, tag, text, found):
            f.add_other(tag, text)


def _log_format(child: etree._Element, f: _LocalFileFields, found: Findings) -> str | None:
    text = required_text(child, found)
    if text is None or text in LOG_FORMATS:
        return text
    multi = _MULTI_LINE.fullmatch(text)
    if multi is not None and int(multi.group(1)) >= 1:
        f.multiline_lines = int(multi.group(1))
        return text
    if text.startswith("multi-line") and text != "multi-line-regex":
        found.error(
            line_of(child), "log_format", f"invalid value {quote(text)} (expected 'multi-line: N', N >= 1)"
        )
    else:
        hint = did_you_mean(text, LOG_FORMATS)
        found.error(line_of(child), "log_format", f"unknown log format {quote(text)}{hint}")
    return None


def _filter(child: etree._Element, f: _LocalFileFields, found: Findings) -> None:
    # <filter field="_SYSTEMD_UNIT" ignore_if_missing="yes">^ssh.service$</filter>: a journald condition.
    pattern = required_text(child, found)
    attrs = {str(k): str(v) for k, v in child.attrib.items()}
    name = attrs.get("field", "").strip()
    if not name:
        found.error(line_of(child), "filter", "missing the 'field' attribute (the journal field to test)")
        return
    missing = attrs.get("ignore_if_missing")
    if missing is not None and missing not in ("yes", "no"):
        found.error(
            line_of(child), "filter", f"invalid ignore_if_missing {quote(missing)} (expected 'yes' or 'no')"
        )
        return
    if pattern is None:
        return
    if f.filter_line is None:
        f.filter_line = line_of(child)
    f.filters.append((name, pattern))
    if missing == "yes":
        f.ignore_if_missing.append(name)
        f.other["ignore_if_missing"] = ",".join(f.ignore_if_missing)


def _label(child: etree._Element, f: _LocalFileFields, found: Findings) -> None:
    text = leaf_text(child, found)
    key = str(child.attrib.get("key", ""))
    if not key:
        found.error(line_of(child), "label", "missing the 'key' attribute")
    elif key.startswith("_"):
        found.info(line_of(child), "label", f"key {quote(key)} is reserved (starts with '_'); label ignored")
    elif text is not None:
        f.add_other(f"label:{key}", text)


def _valid_other(child: etree._Element, tag: str, text: str, found: Findings) -> bool:
    """Checks Wazuh makes fatal for the elements we only pass through."""
    if tag == "ignore_binaries" and text not in ("yes", "no"):
        found.error(line_of(child), tag, f"invalid value {quote(text)} (expected 'yes' or 'no')")
        return False
    if tag == "frequency" and text not in ("hourly", "daily") and parse_uint(text) is None:
        found.error(
            line_of(child), tag, f"invalid value {quote(text)} (expected seconds, 'hourly' or 'daily')"
        )
        return False
    if tag == "age":
        age = _AGE.fullmatch(text)
        if age is None or int(age.group(1)) == 0:
            found.error(line_of(child), tag, f"invalid value {quote(text)} (expected e.g. '90', '30m', '1d')")
            return False
    return True


def _check_combination(block: etree._Element, f: _LocalFileFields, found: Findings) -> None:
    """Rules about which elements go together, checked once the whole block is read."""
    line = line_of(block)
    if "log_format" not in f.seen:
        found.error(line, "localfile", "missing <log_format>")
        return
    fmt = f.log_format
    if fmt is None:
        return
    if fmt in FIXED_LOCATION_FORMATS:
        if f.location is not None and f.location != fmt:
            found.info(
                f.location_line, "location", f"log format {quote(fmt)} always reads location {quote(fmt)}"
            )
        f.location = fmt
    elif fmt in COMMAND_FORMATS:
        if "command" not in f.seen:
            found.error(line, "localfile", f"log format {quote(fmt)} needs a <command>")
    elif "location" not in f.seen:
        found.error(line, "localfile", "missing <location>")
    if f.filters and fmt != "journald":
        found.info(f.filter_line, "filter", "only used with log format 'journald'; ignored")
        f.filters.clear()
        f.other.pop("ignore_if_missing", None)
    if fmt == "multi-line-regex" and "multiline_regex" not in f.seen:
        found.error(line, "localfile", "log format 'multi-line-regex' needs a <multiline_regex>")
