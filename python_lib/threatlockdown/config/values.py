"""Reading single values (text, yes/no, numbers, addresses) out of ossec.conf elements."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

from lxml import etree

from ..xmlsrc import line_of, text_of
from .findings import Findings, quote

# ASCII digits only (str.isdigit also accepts e.g. '²'), and few enough that int() stays cheap.
_UINT = re.compile(r"[0-9]{1,9}")
_INT = re.compile(r"-?[0-9]{1,9}")
# What makes a value "look like" an address: digits and dots, or hex digits with colons.
_IPV4_LIKE = re.compile(r"[0-9]+(\.[0-9]*)+(/\S*)?")
_IPV6_LIKE = re.compile(r"[0-9A-Fa-f]*:[0-9A-Fa-f:.]*(/\S*)?")


def tag_of(el: etree._Element) -> str:
    return str(el.tag)


def children(el: etree._Element) -> Iterator[etree._Element]:
    """Child elements only (comments and processing instructions are already gone)."""
    for child in el:
        if isinstance(child.tag, str):
            yield child


def leaf_text(el: etree._Element, found: Findings) -> str | None:
    """The trimmed text of an element that must hold a value; None (and an error) if it has children."""
    for child in children(el):
        found.error(
            line_of(child), tag_of(el), f"expected a text value, found child element <{tag_of(child)}>"
        )
        return None
    return text_of(el)


def required_text(el: etree._Element, found: Findings) -> str | None:
    """Like leaf_text, but an empty value is an error too."""
    text = leaf_text(el, found)
    if text == "":
        found.error(line_of(el), tag_of(el), "value is empty")
        return None
    return text


def yes_no(el: etree._Element, found: Findings) -> bool | None:
    """'yes' or 'no', spelled exactly as Wazuh expects."""
    text = leaf_text(el, found)
    if text is None:
        return None
    if text == "yes":
        return True
    if text == "no":
        return False
    found.error(line_of(el), tag_of(el), f"invalid value {quote(text)} (expected 'yes' or 'no')")
    return None


def whole_number(
    el: etree._Element, found: Findings, *, low: int = 0, high: int | None = None, what: str = ""
) -> int | None:
    """A non-negative integer in [low, high]; ``what`` names the expectation in the error."""
    text = leaf_text(el, found)
    if text is None:
        return None
    value = int(text) if _UINT.fullmatch(text) else None
    if value is None or value < low or (high is not None and value > high):
        expected = what or (f"a whole number from {low} to {high}" if high is not None else "a whole number")
        found.error(line_of(el), tag_of(el), f"invalid value {quote(text)} (expected {expected})")
        return None
    return value


def parse_uint(text: str) -> int | None:
    return int(text) if _UINT.fullmatch(text) else None


def parse_int(text: str) -> int | None:
    return int(text) if _INT.fullmatch(text) else None


def looks_like_address(value: str) -> bool:
    """True for text meant as an IP or network (possibly a broken one), not a hostname pattern."""
    bare = value[1:] if value.startswith("!") else value
    return bool(_IPV4_LIKE.fullmatch(bare) or _IPV6_LIKE.fullmatch(bare))


def address_problem(value: str, *, allow_network: bool = True) -> str | None:
    """Why ``value`` (optionally '!'-prefixed) is not a valid IP address or network, or None."""
    bare = value[1:] if value.startswith("!") else value
    # Picking the family ourselves gets ipaddress's precise message ("Octet 300 (> 255) ...").
    v6 = ":" in bare
    try:
        if allow_network and "/" in bare:
            # strict=False: Wazuh accepts host bits in a network (10.0.0.1/8).
            if v6:
                ipaddress.IPv6Network(bare, strict=False)
            else:
                ipaddress.IPv4Network(bare, strict=False)
        elif v6:
            ipaddress.IPv6Address(bare)
        else:
            ipaddress.IPv4Address(bare)
    except ValueError as exc:
        return str(exc)
    return None
