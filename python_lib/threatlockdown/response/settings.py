"""Engine settings that ossec.conf has no place for, read from ``etc/response.xml``.

The file is optional; every element is optional. Example::

    <response_engine>
      <batch_window>200ms</batch_window>      <!-- coalesce actions due within this window -->
      <offender_reset>1d</offender_reset>     <!-- 0: never forget an offender (Wazuh) -->
      <revert_on_stop>no</revert_on_stop>
    </response_engine>

Durations take a unit (``ms``, ``s``, ``m``, ``h``, ``d``); a bare number is seconds.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from ..errors import SourceError, SourceErrors
from ..xmlsrc import line_of, read_xml_file, text_of

ROOT = "response_engine"
_DURATION = re.compile(r"([0-9]{1,9}(?:\.[0-9]{1,6})?)\s*(ms|s|m|h|d)?")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


@dataclass(frozen=True)
class ResponseSettings:
    batch_window: float = 0.2  # seconds actions wait for others of the same (command, action)
    max_batch_items: int = 500  # items in one execution at most
    max_concurrency: int = 4  # executions running at once
    queue_size: int = 10_000  # actions waiting for dispatch; producers wait when it is full
    add_attempts: int = 5  # tries of an add before it is given up (reverts are retried forever)
    retry_initial: float = 2.0  # first retry delay; doubles per attempt
    retry_max: float = 300.0  # longest retry delay
    offender_reset: float = 86400.0  # an offender's count restarts after this long without offence; 0: never
    self_protection: bool = True
    revert_on_stop: bool = False  # a graceful stop reverts every active response
    manager_host: str | None = None  # inventory host of the manager (location "server")
    inventory: str | None = None  # default HOME/etc/inventory.yml
    flush_interval: float = 1.0  # longest time a refresh stays only in memory
    history_days: int = 30  # history rows older than this are purged
    inventory_timeout: float = 60.0  # seconds ansible-inventory may take


_FLOATS = {
    "batch_window": (0.0, 60.0),
    "retry_initial": (0.001, 86400.0),
    "retry_max": (0.001, 7 * 86400.0),
    "offender_reset": (0.0, 3650 * 86400.0),
    "flush_interval": (0.01, 60.0),
    "inventory_timeout": (1.0, 3600.0),
}
_INTS = {
    "max_batch_items": (1, 100_000),
    "max_concurrency": (1, 1024),
    "queue_size": (1, 10_000_000),
    "add_attempts": (1, 1000),
    "history_days": (1, 36500),
}
_BOOLS = ("self_protection", "revert_on_stop")
_TEXTS = ("manager_host", "inventory")
ELEMENTS = (*_FLOATS, *_INTS, *_BOOLS, *_TEXTS)


def parse_duration(text: str) -> float | None:
    """Seconds in ``text`` ("200ms", "1.5", "5m", "1d"), or None when it is not a duration."""
    m = _DURATION.fullmatch(text.strip())
    if m is None:
        return None
    return float(m.group(1)) * _UNIT_SECONDS[m.group(2)]


def read_settings(path: Path) -> ResponseSettings:
    """The settings in ``path`` (defaults when it does not exist); SourceErrors for every problem."""
    if not path.exists():
        return ResponseSettings()
    roots = read_xml_file(path)
    errors: list[SourceError] = []
    values: dict[str, object] = {}
    name = str(path)
    for root in roots:
        if root.tag != ROOT:
            errors.append(SourceError(name, line_of(root), str(root.tag), f"expected <{ROOT}>"))
            continue
        for child in root:
            if not isinstance(child.tag, str):
                continue
            problem = _read_element(child, values)
            if problem is not None:
                errors.append(SourceError(name, line_of(child), str(child.tag), problem))
    if errors:
        raise SourceErrors(errors)
    return dataclasses.replace(ResponseSettings(), **values)  # type: ignore[arg-type]


def _read_element(child: etree._Element, values: dict[str, object]) -> str | None:
    tag = str(child.tag)
    text = text_of(child)
    if tag in values:
        return "appears twice"
    if len(child):
        return "expected a text value, found child elements"
    if tag in _FLOATS:
        low, high = _FLOATS[tag]
        seconds = parse_duration(text)
        if seconds is None or not low <= seconds <= high:
            return (
                f"invalid duration {text!r} (expected e.g. 200ms, 30s, 5m, 1d; from {low:g} s to {high:g} s)"
            )
        values[tag] = seconds
    elif tag in _INTS:
        low_i, high_i = _INTS[tag]
        if not re.fullmatch(r"[0-9]{1,9}", text) or not low_i <= int(text) <= high_i:
            return f"invalid value {text!r} (expected a whole number from {low_i} to {high_i})"
        values[tag] = int(text)
    elif tag in _BOOLS:
        if text not in ("yes", "no"):
            return f"invalid value {text!r} (expected 'yes' or 'no')"
        values[tag] = text == "yes"
    elif tag in _TEXTS:
        if not text:
            return "value is empty"
        values[tag] = text
    else:
        close = difflib.get_close_matches(tag, ELEMENTS, n=1)
        hint = f" (did you mean <{close[0]}>?)" if close else ""
        return f"unknown element{hint}"
    return None
