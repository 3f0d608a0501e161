"""Wazuh CDB list sources (``key:value`` per line) used by a rule's ``<list>`` element.

We read the text source directly; Wazuh compiles it to a .cdb file first, which adds nothing here.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SourceError, SourceErrors

MAX_LIST_BYTES = 64 * 1024 * 1024
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _split_entry(line: str) -> tuple[str, str]:
    """'key:value', '"key:with:colons":value' or 'key' -> (key, value)."""
    if line.startswith('"'):
        end = line.find('"', 1)
        if end > 0:
            key = line[1:end]
            rest = line[end + 1 :]
            return key, rest[1:] if rest.startswith(":") else ""
    key, _, value = line.partition(":")
    return key, value


def read_entries(path: Path) -> list[tuple[str, str, int]]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceErrors(
            [SourceError(str(path), None, "list", f"cannot read list: {exc.strerror}")]
        ) from None
    if len(data) > MAX_LIST_BYTES:
        raise SourceErrors([SourceError(str(path), None, "list", "list file too large")])
    text = data.decode("utf-8", "replace")
    entries = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, value = _split_entry(line)
        entries.append((key, value, number))
    return entries


@dataclass
class KeyValueList:
    path: str
    table: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> KeyValueList:
        return cls(str(path), {k: v for k, v, _ in read_entries(path)})

    def lookup(self, key: str) -> str | None:
        return self.table.get(key)


@dataclass
class AddressList:
    """Keys are addresses, CIDRs or dotted IPv4 prefixes such as ``10.0.``."""

    path: str
    exact: dict[Address, str] = field(default_factory=dict)
    networks: list[tuple[Network, str]] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> AddressList:
        out = cls(str(path))
        errors = []
        for key, value, number in read_entries(path):
            net = _parse_key(key)
            if net is None:
                errors.append(SourceError(str(path), number, "list", f"not an address or network: {key!r}"))
            elif net.num_addresses == 1:
                out.exact[net.network_address] = value
            else:
                out.networks.append((net, value))
        if errors:
            raise SourceErrors(errors)
        return out

    def lookup(self, ip: Address) -> str | None:
        hit = self.exact.get(ip)
        if hit is not None:
            return hit
        for net, value in self.networks:
            if ip in net:
                return value
        return None


def _parse_key(key: str) -> Network | None:
    key = key.strip()
    try:
        return ipaddress.ip_network(key, strict=False)
    except ValueError:
        pass
    # Dotted IPv4 prefix: "10.0." or "10.0" means 10.0.0.0/16.
    parts = [p for p in key.rstrip(".").split(".") if p != ""]
    if 1 <= len(parts) <= 3 and all(p.isdigit() and int(p) < 256 for p in parts):
        padded = parts + ["0"] * (4 - len(parts))
        return ipaddress.ip_network(f"{'.'.join(padded)}/{8 * len(parts)}")
    return None
