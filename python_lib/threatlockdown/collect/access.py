"""Which syslog senders belong: <allowed-ips> and <denied-ips> of a <remote>."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import SourceError, SourceErrors

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class AddressRule:
    """One <allowed-ips>/<denied-ips> value: an address or network, '!' negating it."""

    network: Network
    negated: bool = False

    def matches(self, ip: Address) -> bool:
        inside = ip.version == self.network.version and ip in self.network
        return inside != self.negated


def parse_rules(
    values: Iterable[str], *, path: str, line: int | None, element: str
) -> tuple[AddressRule, ...]:
    rules: list[AddressRule] = []
    problems: list[SourceError] = []
    for value in values:
        text = value.strip()
        negated = text.startswith("!")
        bare = text[1:] if negated else text
        if bare == "any":
            nets: list[Network] = [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
            rules.extend(AddressRule(n, negated) for n in nets)
            continue
        try:
            # strict=False: Wazuh accepts host bits in a network (10.0.0.1/8).
            rules.append(AddressRule(ipaddress.ip_network(bare, strict=False), negated))
        except ValueError as exc:
            problems.append(
                SourceError(path, line, element, f"invalid IP address or network {value!r}: {exc}")
            )
    if problems:
        raise SourceErrors(problems)
    return tuple(rules)


def sender_ip(host: str) -> str:
    """The address a sender is known by: IPv4-mapped IPv6 as plain IPv4, no zone index."""
    ip = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


@dataclass(frozen=True, slots=True)
class SenderPolicy:
    """Wazuh's order: a denied match refuses, then an allowed match accepts, anything else is refused."""

    allowed: tuple[AddressRule, ...]
    denied: tuple[AddressRule, ...] = ()

    @classmethod
    def from_config(
        cls, allowed: Iterable[str], denied: Iterable[str], *, path: str, line: int | None
    ) -> SenderPolicy:
        problems: list[SourceError] = []
        parsed: list[tuple[AddressRule, ...]] = []
        for values, element in ((allowed, "allowed-ips"), (denied, "denied-ips")):
            try:
                parsed.append(parse_rules(values, path=path, line=line, element=element))
            except SourceErrors as exc:
                problems.extend(exc.errors)
                parsed.append(())
        if problems:
            raise SourceErrors(problems)
        return cls(parsed[0], parsed[1])

    def allows(self, ip_text: str) -> bool:
        ip = ipaddress.ip_address(ip_text)
        if any(rule.matches(ip) for rule in self.denied):
            return False
        return any(rule.matches(ip) for rule in self.allowed)
