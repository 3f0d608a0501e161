"""Self-protection: addresses that must never be blocked on a target, or the fleet locks itself out.

Protected on every target: the addresses of the machine running the engine (the manager, or the host
of ``tld runner``, which is also where Ansible connects from). Protected on one target: the source
address this machine uses to reach it (the kernel's route choice, what ``ip route get <ansible_host>``
reports as ``prefsrc``) and the target's own address. Found when the inventory is (re)loaded.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import shutil
import socket
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .inventory import Inventory
from .validate import IPAddress

_IP_TIMEOUT = 5.0
_NOTHING: Mapping[str, str] = {}
_LOOPBACKS = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))


@dataclass(frozen=True)
class SelfProtection:
    enabled: bool = True
    own: frozenset[IPAddress] = frozenset()
    per_host: Mapping[str, Mapping[IPAddress, str]] = field(default_factory=dict)
    _own_text: frozenset[str] = field(init=False, repr=False, compare=False)
    _host_text: Mapping[str, Mapping[str, str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Canonical text forms: the engine has the srcip as text already, and hashing ipaddress objects
        # runs Python code per lookup.
        object.__setattr__(self, "_own_text", frozenset(str(a) for a in self.own))
        object.__setattr__(
            self, "_host_text", {h: {str(a): why for a, why in m.items()} for h, m in self.per_host.items()}
        )

    def reason(self, host: str, addr: IPAddress) -> str | None:
        """Why ``addr`` must not be blocked on ``host``, or None."""
        return self.reason_text(host, str(addr))

    def reason_text(self, host: str, addr: str) -> str | None:
        """``reason`` for an address already in canonical text form (``str(ip_address(...))``)."""
        if not self.enabled:
            return None
        if addr in self._own_text:
            return f"self-protection: {addr} is an address of this manager"
        why = self._host_text.get(host, _NOTHING).get(addr)
        if why is not None:
            return f"self-protection: {addr} is {why}"
        return None


def own_addresses() -> frozenset[IPAddress]:
    """Every address configured on this machine (``ip -j addr``), loopback at least."""
    found: set[IPAddress] = set(_LOOPBACKS)
    ip = shutil.which("ip")
    if ip is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError, ValueError):
            out = subprocess.run(
                [ip, "-j", "addr", "show"], capture_output=True, text=True, timeout=_IP_TIMEOUT, check=True
            ).stdout
            for link in json.loads(out):
                for info in link.get("addr_info", []):
                    with contextlib.suppress(ValueError, TypeError):
                        found.add(ipaddress.ip_address(str(info.get("local", "")).split("%")[0]))
    with contextlib.suppress(OSError):
        for res in socket.getaddrinfo(socket.gethostname(), None):
            with contextlib.suppress(ValueError):
                found.add(ipaddress.ip_address(str(res[4][0]).split("%")[0]))
    return frozenset(found)


def resolve(name: str) -> list[IPAddress]:
    """Addresses of ``name`` (an address literal or a host name); empty when it does not resolve."""
    try:
        return [ipaddress.ip_address(name)]
    except ValueError:
        pass
    out: list[IPAddress] = []
    with contextlib.suppress(OSError, UnicodeError):
        for res in socket.getaddrinfo(name, None, proto=socket.IPPROTO_UDP):
            with contextlib.suppress(ValueError):
                addr = ipaddress.ip_address(str(res[4][0]).split("%")[0])
                if addr not in out:
                    out.append(addr)
    return out


def source_address(dest: IPAddress) -> IPAddress | None:
    """The local address the kernel would use to reach ``dest`` (no packet is sent)."""
    family = socket.AF_INET if dest.version == 4 else socket.AF_INET6
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect((str(dest), 9))  # connect() on UDP only picks the route and source
            return ipaddress.ip_address(str(sock.getsockname()[0]).split("%")[0])
    except (OSError, ValueError):
        return None


def build_self_protection(
    inventory: Inventory,
    *,
    enabled: bool,
    own: Iterable[IPAddress] | None = None,
    logger: logging.Logger | None = None,
) -> SelfProtection:
    """Work out the protected addresses of every inventory host (name lookups: call from a thread)."""
    if not enabled:
        return SelfProtection(enabled=False)
    mine = frozenset(own) if own is not None else own_addresses()
    per_host: dict[str, dict[IPAddress, str]] = {}
    for host in inventory.hosts:
        target = inventory.address_of(host)
        protected: dict[IPAddress, str] = {}
        addresses = resolve(target)
        if not addresses and logger is not None:
            logger.warning(
                "self-protection: %s (ansible_host %r) does not resolve; only this manager's own "
                "addresses are protected on it",
                host,
                target,
            )
        for addr in addresses:
            protected.setdefault(addr, f"the address of {host} itself")
            src = source_address(addr)
            if src is not None:
                protected.setdefault(src, f"the address this manager uses to reach {host}")
        per_host[host] = protected
    return SelfProtection(enabled=True, own=mine, per_host=per_host)
