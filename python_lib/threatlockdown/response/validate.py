"""Checks on what an alert offers a response: a source address and a user name.

Both come from log lines, so an attacker chooses them. Only an address that ``ipaddress`` parses and a
user name of a small safe alphabet reach an executor; anything else is refused and audited as a possible
logging attack (Wazuh's messages 1271/1272). Wazuh's own checks are looser (``^[a-zA-Z.:_0-9-]*$`` for
srcip lets host names through); ours only admit what a response can act on.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAPPED_PREFIX = "::ffff:"
MAX_USER_LENGTH = 256
# A first character that no option parser or shell reads specially; then a conservative alphabet.
_SAFE_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._@-]*")
_SHELL_CHARS = frozenset(";&|`$<>()\\\"'*?[]!#~\n\r\t ")
_TEMPLATE_MARKERS = ("{{", "}}", "{%", "%}", "{#", "#}")
_SHOWN = 80  # characters of a refused value kept in messages


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a value was refused; ``value`` is the raw value, cut to a readable length."""

    field: str  # "srcip" or "dstuser"
    value: str
    problem: str

    def __str__(self) -> str:
        return f"invalid {self.field} {self.value!r}: {self.problem}; possible logging attack"


def strip_mapped(text: str) -> str:
    """``::ffff:1.2.3.4`` -> ``1.2.3.4`` (what Wazuh removes before its own checks)."""
    if text[: len(MAPPED_PREFIX)].lower() == MAPPED_PREFIX and "." in text:
        return text[len(MAPPED_PREFIX) :]
    return text


def _problem(text: str) -> str | None:
    """A specific reason for hostile-looking text, or None."""
    for marker in _TEMPLATE_MARKERS:
        if marker in text:
            return f"contains the template marker {marker!r}"
    for ch in text:
        if ch in _SHELL_CHARS:
            return f"contains the shell character {ch!r}"
        if ord(ch) < 32 or ord(ch) == 127:
            return f"contains the control character {ch!r}"
    return None


def parse_srcip(raw: str) -> IPAddress | Refusal:
    """The address in ``raw`` (``::ffff:`` stripped, IPv4-mapped IPv6 unwrapped), or why not."""
    parsed = parse_srcip_text(raw)
    return parsed if isinstance(parsed, Refusal) else parsed[0]


def dotted_quad(text: str) -> int | None:
    """The value of ``text`` as a dotted-quad IPv4 address, or None.

    The usual srcip, checked first: inet_pton takes exactly what ipaddress takes (four decimal octets
    up to 255, no leading zeros, nothing around them; tested against it), several times cheaper, and
    such text is already the address's canonical form."""
    try:
        return int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    except (OSError, ValueError):
        return None


def parse_srcip_text(raw: str) -> tuple[IPAddress, str] | Refusal:
    """``parse_srcip`` with the address's canonical text (``str`` of it)."""
    text = strip_mapped(raw)
    value = dotted_quad(text)
    if value is not None:
        return ipaddress.IPv4Address(value), text
    shown = raw[:_SHOWN]
    if not text:
        return Refusal("srcip", shown, "empty")
    problem = _problem(text)
    if problem is not None:
        return Refusal("srcip", shown, problem)
    if "%" in text:
        return Refusal("srcip", shown, "IPv6 scope identifiers are not accepted")
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return Refusal("srcip", shown, "not an IPv4 or IPv6 address")
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr, str(addr)


def check_user(raw: str) -> str | Refusal:
    """``raw`` when it is a safe user name, else why not."""
    shown = raw[:_SHOWN]
    if not raw:
        return Refusal("dstuser", shown, "empty")
    if len(raw) > MAX_USER_LENGTH:
        return Refusal("dstuser", shown, f"longer than {MAX_USER_LENGTH} characters")
    problem = _problem(raw)
    if problem is not None:
        return Refusal("dstuser", shown, problem)
    if ".." in raw:
        return Refusal("dstuser", shown, "contains '..'")
    if not _SAFE_USER.fullmatch(raw):
        bad = next((c for c in raw if not re.fullmatch(r"[A-Za-z0-9._@-]", c)), None)
        if bad is None:  # only the first character is wrong: an option-like or hidden name
            return Refusal("dstuser", shown, f"a user name must not start with {raw[0]!r}")
        return Refusal("dstuser", shown, f"the character {bad!r} is not allowed in a user name")
    return raw
