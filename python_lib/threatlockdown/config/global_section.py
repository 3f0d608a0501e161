"""<global>, <alerts> and the one <cluster> value we use."""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from ..xmlsrc import line_of
from .findings import Findings, quote
from .model import AlertsConfig, GlobalConfig, WhiteListEntry
from .values import (
    address_problem,
    children,
    leaf_text,
    looks_like_address,
    required_text,
    tag_of,
    whole_number,
)

# The <global> flags we model, with the attribute of GlobalConfig each sets.
_MODELLED_FLAGS = ("jsonout_output", "alerts_log", "logall", "logall_json", "email_notification")
# Other yes/no elements Wazuh 4.x accepts in <global>.
_OTHER_FLAGS = ("prelude_output", "zeromq_output", "update_check")
# Numeric elements Wazuh 4.x checks with OS_StrIsNum, with the range it enforces where it has one.
_NUMBERS: dict[str, tuple[int, int | None]] = {
    "stats": (0, None),
    "memory_size": (0, None),
    "host_information": (0, None),
    "integrity_checking": (0, None),
    "rootkit_detection": (0, None),
    "prelude_log_level": (0, None),
    "email_maxperhour": (1, 1000000),
    "queue_size": (1, None),
}
# Free-text elements accepted by some Wazuh 4.x release (some only on certain builds or versions).
_TEXTS = (
    "email_to",
    "email_from",
    "email_reply_to",
    "email_idsname",
    "smtp_server",
    "helo_server",
    "email_log_source",
    "custom_alert_output",
    "compress_alerts",
    "geoipdb",
    "geoip_db_path",
    "geoip6_db_path",
    "prelude_profile",
    "zeromq_uri",
    "zeromq_server_cert",
    "zeromq_client_cert",
    "rotate_interval",
    "max_output_size",
    "agents_disconnection_time",
    "agents_disconnection_alert_time",
    "cti-url",
    "forward_to",
)
# Blocks with children that we accept and do not look into.
_BLOCKS = ("limits",)
GLOBAL_ELEMENTS = ("white_list", *_MODELLED_FLAGS, *_OTHER_FLAGS, *_NUMBERS, *_TEXTS, *_BLOCKS)

ALERTS_ELEMENTS = ("log_alert_level", "email_alert_level", "use_geoip")


@dataclass
class GlobalBuilder:
    """Accumulates every <global> block of the file: later flags win, lists grow (as in Wazuh)."""

    white_list: list[WhiteListEntry] = field(default_factory=list)
    flags: dict[str, bool] = field(default_factory=dict)
    other: dict[str, str] = field(default_factory=dict)

    def read(self, block: etree._Element, found: Findings) -> None:
        for child in children(block):
            tag = tag_of(child)
            if tag == "white_list":
                self._white_list(child, found)
            elif tag in _MODELLED_FLAGS or tag in _OTHER_FLAGS:
                self._flag(child, tag, found)
            elif tag in _NUMBERS:
                low, high = _NUMBERS[tag]
                number = whole_number(child, found, low=low, high=high)
                if number is not None:
                    self.other[tag] = str(number)
            elif tag in _TEXTS:
                text = leaf_text(child, found)
                if text is not None:
                    self._add_other(tag, text)
            elif tag in _BLOCKS:
                continue
            else:
                found.unknown_element(line_of(child), "global", tag, GLOBAL_ELEMENTS)

    def _flag(self, child: etree._Element, tag: str, found: Findings) -> None:
        text = leaf_text(child, found)
        if text is None:
            return
        if text not in ("yes", "no"):
            found.error(line_of(child), tag, f"invalid value {quote(text)} (expected 'yes' or 'no')")
        elif tag in _MODELLED_FLAGS:
            self.flags[tag] = text == "yes"
        else:
            self.other[tag] = text

    def _white_list(self, child: etree._Element, found: Findings) -> None:
        value = required_text(child, found)
        if value is None:
            return
        # Hostname patterns are the AR engine's business; here we only catch broken addresses, which
        # Wazuh would reject or, worse, silently treat as a hostname pattern.
        if looks_like_address(value):
            problem = address_problem(value)
            if problem is not None:
                found.error(
                    line_of(child),
                    "white_list",
                    f"{quote(value)} looks like an IP address but is not valid: {problem}",
                )
                return
        self.white_list.append(WhiteListEntry(value, line_of(child), found.path))

    def _add_other(self, tag: str, text: str) -> None:
        self.other[tag] = f"{self.other[tag]},{text}" if tag in self.other else text

    def build(self) -> GlobalConfig:
        default = GlobalConfig()
        return GlobalConfig(
            white_list=tuple(self.white_list),
            jsonout_output=self.flags.get("jsonout_output", default.jsonout_output),
            alerts_log=self.flags.get("alerts_log", default.alerts_log),
            logall=self.flags.get("logall", default.logall),
            logall_json=self.flags.get("logall_json", default.logall_json),
            email_notification=self.flags.get("email_notification", default.email_notification),
            other=dict(self.other),
        )


@dataclass
class AlertsBuilder:
    log_alert_level: int = AlertsConfig.log_alert_level
    email_alert_level: int = AlertsConfig.email_alert_level

    def read(self, block: etree._Element, found: Findings) -> None:
        for child in children(block):
            tag = tag_of(child)
            if tag == "log_alert_level":
                level = whole_number(child, found)
                if level is not None:
                    self.log_alert_level = level
            elif tag == "email_alert_level":
                level = whole_number(child, found)
                if level is not None:
                    self.email_alert_level = level
            elif tag == "use_geoip":  # only on old GeoIP builds; accepted and ignored
                leaf_text(child, found)
            else:
                found.unknown_element(line_of(child), "alerts", tag, ALERTS_ELEMENTS)

    def build(self) -> AlertsConfig:
        return AlertsConfig(log_alert_level=self.log_alert_level, email_alert_level=self.email_alert_level)


def cluster_node_name(block: etree._Element, found: Findings) -> str | None:
    """The <node_name> of a <cluster> block; everything else in it is Wazuh's business."""
    for child in children(block):
        if tag_of(child) == "node_name":
            text = leaf_text(child, found)
            return text or None
    return None
