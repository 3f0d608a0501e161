"""``<global><white_list>``: addresses and networks that are never acted on.

Entries are IPv4 or IPv6 addresses, CIDR networks, IPv4 networks with a dotted netmask
(``10.0.0.0/255.0.0.0``), or, for anything else, an OS_Match pattern (case-insensitive substring with
``^``, ``$`` and ``|``) matched against the source address text, e.g. ``^localhost.localdomain$``.
A leading ``!`` negates an address entry as in Wazuh: the entry then covers every *other* address.

Wazuh reads IPv6 literals as patterns (its parser only knows IPv4); here they are networks too.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from ..config.model import WhiteListEntry
from ..config.values import looks_like_address
from ..ruleset.osregex import OsMatch, compile_os_match
from .validate import IPAddress

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class WhiteListRule:
    value: str
    where: str  # "path:line", for messages
    network: Network | None = None
    pattern: OsMatch | None = None
    negated: bool = False

    def describe(self) -> str:
        return f"<white_list> {self.value!r} ({self.where})"


def _rule(entry: WhiteListEntry) -> WhiteListRule:
    where = f"{entry.path}:{entry.line}" if entry.line else entry.path
    value = entry.value
    if looks_like_address(value):
        negated = value.startswith("!")
        bare = value[1:] if negated else value
        # strict=False: host bits may be set (10.0.0.1/8), as Wazuh accepts; a dotted netmask works too.
        network = ipaddress.ip_network(bare, strict=False)
        return WhiteListRule(value, where, network=network, negated=negated)
    return WhiteListRule(value, where, pattern=compile_os_match(value))


class WhiteList:
    """The compiled entries; ``match`` says which entry covers a source address, if any."""

    def __init__(self, entries: Sequence[WhiteListEntry]) -> None:
        self.rules = tuple(_rule(e) for e in entries)
        # Integer (network, mask) pairs per family: much cheaper than ``addr in network`` per alert.
        self._v4: list[tuple[int, int, WhiteListRule]] = []
        self._v6: list[tuple[int, int, WhiteListRule]] = []
        self._negated: list[tuple[int, int, int, WhiteListRule]] = []  # (version, network, mask, rule)
        self._patterns: list[WhiteListRule] = []
        for rule in self.rules:
            if rule.network is not None and rule.negated:
                net = rule.network
                self._negated.append((net.version, int(net.network_address), int(net.netmask), rule))
            elif rule.network is not None:
                bucket = self._v4 if rule.network.version == 4 else self._v6
                bucket.append((int(rule.network.network_address), int(rule.network.netmask), rule))
            else:
                self._patterns.append(rule)

    @property
    def negated_rules(self) -> tuple[WhiteListRule, ...]:
        return tuple(rule for *_, rule in self._negated)

    def match(self, text: str, addr: IPAddress | None) -> WhiteListRule | None:
        """The entry covering the source ``text`` (``::ffff:`` already stripped) / parsed ``addr``."""
        if addr is not None:
            return self.match_value(text, addr.version, int(addr))
        return self._match_text(text)

    def match_value(self, text: str, version: int, value: int) -> WhiteListRule | None:
        """``match`` for an address given as its IP version and integer value."""
        for net, mask, rule in self._v4 if version == 4 else self._v6:
            if value & mask == net:
                return rule
        for rule_version, net, mask, rule in self._negated:
            if version != rule_version or value & mask != net:  # every address but the one named
                return rule
        return self._match_text(text)

    def _match_text(self, text: str) -> WhiteListRule | None:
        if self._patterns:
            lowered = text.lower()
            for rule in self._patterns:
                assert rule.pattern is not None
                if rule.pattern.matches(lowered):
                    return rule
        return None
