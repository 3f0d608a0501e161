# Copyright: ThreatLockDown contributors
# SPDX-License-Identifier: Apache-2.0
"""Re-validation of every address and user name a module receives.

Values reach the modules from alerts, i.e. from attackers. Each module checks them again here, whatever the
caller already did, and only the normalised text produced by ``ipaddress`` ever reaches a command line.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Sequence

# Lower-case POSIX-style names as shadow-utils creates them by default; no leading '-' (option injection),
# no '.', '/', ':' or whitespace, at most 32 characters.
SAFE_USER_NAME = re.compile(r"\A[a-z_][a-z0-9_-]{0,31}\Z")


@dataclass(frozen=True)
class ItemProblem:
    """Why one element of a list option was refused."""

    option: str
    index: int
    value: str
    reason: str

    def __str__(self) -> str:
        return f"{self.option}[{self.index}] {self.value}: {self.reason}"


class InvalidItems(Exception):
    """Raised before anything is changed when at least one item is refused; lists every bad item."""

    def __init__(self, problems: Sequence[ItemProblem]) -> None:
        self.problems = list(problems)
        listing = "; ".join(str(p) for p in self.problems)
        super().__init__(f"refused {len(self.problems)} invalid item(s), nothing was changed: {listing}")


@dataclass(frozen=True)
class Address:
    """A validated host address: ``text`` is the canonical form used on command lines."""

    text: str
    version: int
    given: str

    @property
    def family(self) -> str:
        return "ipv4" if self.version == 4 else "ipv6"

    @property
    def host_prefix(self) -> str:
        """``ADDR/32`` or ``ADDR/128``, the form routes and iptables print."""
        return f"{self.text}/{32 if self.version == 4 else 128}"


def describe_value(value: Any) -> str:
    """Quote a refused value so control characters and newlines cannot forge the error message."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return ascii(text)


def parse_address(value: Any) -> Address:
    """Return the canonical address for ``value`` or raise ValueError saying why it is refused.

    ``::ffff:a.b.c.d`` is mapped to the IPv4 address because that is what the kernel matches for IPv4
    packets. Networks, zone ids, loopback, unspecified and multicast addresses are refused: blocking them
    would either not work or cut the host off.
    """
    if not isinstance(value, str):
        raise ValueError("not a string")
    if value != value.strip() or not value:
        raise ValueError("empty or surrounded by whitespace")
    if "%" in value or "/" in value:
        raise ValueError("zone ids and prefixes are not accepted, give a single host address")
    try:
        parsed = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError("not an IPv4 or IPv6 address") from None
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    if parsed.is_unspecified or parsed.is_loopback or parsed.is_multicast:
        raise ValueError("unspecified, loopback and multicast addresses cannot be blocked")
    return Address(text=str(parsed), version=parsed.version, given=value)


def parse_address_list(option: str, values: Sequence[Any]) -> list[Address]:
    """Validate a whole list; duplicates (also ``::ffff:`` aliases) are folded into their first use."""
    problems: list[ItemProblem] = []
    result: list[Address] = []
    seen = set()
    for index, value in enumerate(values):
        try:
            address = parse_address(value)
        except ValueError as exc:
            problems.append(ItemProblem(option, index, describe_value(value), str(exc)))
            continue
        if address.text not in seen:
            seen.add(address.text)
            result.append(address)
    if problems:
        raise InvalidItems(problems)
    if not result:
        raise InvalidItems([ItemProblem(option, 0, "[]", "at least one address is required")])
    return result


def check_user_name(value: Any) -> str:
    """Return ``value`` if it is a safe account name, else raise ValueError."""
    if not isinstance(value, str):
        raise ValueError("not a string")
    if not SAFE_USER_NAME.match(value):
        raise ValueError(f"not a safe account name (expected {SAFE_USER_NAME.pattern})")
    return value


def parse_user_list(option: str, values: Sequence[Any]) -> list[str]:
    problems: list[ItemProblem] = []
    result: list[str] = []
    for index, value in enumerate(values):
        try:
            name = check_user_name(value)
        except ValueError as exc:
            problems.append(ItemProblem(option, index, describe_value(value), str(exc)))
            continue
        if name not in result:
            result.append(name)
    if problems:
        raise InvalidItems(problems)
    if not result:
        raise InvalidItems([ItemProblem(option, 0, "[]", "at least one user is required")])
    return result


def check_alert_user(value: Any) -> str | None:
    """Return None when an alert's user field is harmless to hand to a Wazuh script, else the reason.

    Looser than SAFE_USER_NAME because alerts carry names from any system (Windows, LDAP); it refuses what
    could act as an option, a path or a separator, in the spirit of Wazuh 4.14's own script-side check.
    """
    if not isinstance(value, str):
        return "not a string"
    if not value or len(value) > 256:
        return "empty or longer than 256 characters"
    if value == "root":
        return "root is never acted on"
    if value[0] in "-+~":
        return "starts with '-', '+' or '~'"
    if ".." in value:
        return "contains '..'"
    if any(ch in value for ch in ":,/\\") or any(ch.isspace() or ord(ch) < 32 for ch in value):
        return "contains ':', ',', '/', '\\\\', whitespace or a control character"
    return None
