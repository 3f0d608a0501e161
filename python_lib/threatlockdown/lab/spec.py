"""What a lab should look like (``LabSpec``/``HostSpec``) and the concrete layout it resolves to.

A spec is pure data and can be built anywhere; ``resolve_layout`` turns it into names, addresses and paths
once the free address slot is known. Nothing here touches the system.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import LabError

# Lab names are prefixes of kernel interface names (15 characters at most) and own every interface and
# namespace called "<lab>-...". No dash in a lab name keeps that prefix unambiguous between labs.
_LAB_NAME = re.compile(r"^[a-z][a-z0-9]{0,9}$")
_HOST_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
IFNAMSIZ_MAX = 15
BRIDGE_SUFFIX = "br0"
# Not under /run (nor any other directory in PER_HOST_DIRS): each host gets its own copy bind-mounted over
# those, which would hide the lab's own host directories from the mount set-up that needs them.
DEFAULT_WORKDIR_ROOT = Path("/var/lib/threatlockdown/lab")
# Directories of the machine that each host sees replaced by its own copy.
PER_HOST_DIRS: tuple[str, ...] = ("/etc", "/run", "/var/log", "/var/ossec")

_DOC_V4 = tuple(ipaddress.IPv4Network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"))
_DOC_V6 = ipaddress.IPv6Network("2001:db8::/32")


def _address_slots() -> tuple[tuple[str, str], ...]:
    # Documentation networks (RFC 5737 / RFC 3849) cut into /26 slots (52 hosts each from offset 11), tried
    # in order when a spec leaves the subnets open: twelve labs fit, even when the machine's own uplink
    # happens to sit in one of the three /24s. Slot n pairs with 2001:db8:0:n::/64.
    v4 = [sub for net in _DOC_V4 for sub in net.subnets(new_prefix=26)]
    return tuple((str(sub), f"2001:db8:0:{n:x}::/64") for n, sub in enumerate(v4, start=1))


ADDRESS_SLOTS: tuple[tuple[str, str], ...] = _address_slots()


@dataclass(frozen=True)
class HostSpec:
    """One lab host. ``ipv4``/``ipv6`` pin an address inside the lab subnets; otherwise it is numbered."""

    name: str
    sshd: bool = True
    ipv4: str | None = None
    ipv6: str | None = None


@dataclass(frozen=True)
class LabSpec:
    """A whole lab. ``ipv4_subnet``/``ipv6_subnet`` of None mean: the first free documentation slot."""

    name: str = "tld"
    hosts: Sequence[HostSpec] = ()
    workdir: Path | None = None
    ipv4_subnet: str | None = None
    ipv6_subnet: str | None = None
    first_host_offset: int = 11
    sshd_timeout: float = 10.0

    def __post_init__(self) -> None:
        # Accept lists from callers while keeping the dataclass hashable and immutable.
        object.__setattr__(self, "hosts", tuple(self.hosts))
        validate_spec(self)

    @property
    def effective_workdir(self) -> Path:
        return self.workdir if self.workdir is not None else DEFAULT_WORKDIR_ROOT / self.name


@dataclass(frozen=True)
class HostLayout:
    """Resolved names, addresses and root-namespace paths of one host."""

    name: str
    netns: str
    veth: str
    ipv4: str
    ipv6: str
    sshd: bool
    root: Path
    mnt_ns_file: Path
    uts_ns_file: Path

    @property
    def etc_dir(self) -> Path:
        return self.root / "etc"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_dir(self) -> Path:
        return self.root / "var" / "log"

    @property
    def ossec_dir(self) -> Path:
        return self.root / "var" / "ossec"

    @property
    def console_dir(self) -> Path:
        """stdout/stderr of the host's daemons (their real logs go to the host's syslog)."""
        return self.root / "console"


@dataclass(frozen=True)
class LabLayout:
    """Everything a running lab is made of; serialised into the state file."""

    name: str
    workdir: Path
    bridge: str
    ipv4_subnet: str
    ipv6_subnet: str
    controller_ipv4: str
    controller_ipv6: str
    hosts: tuple[HostLayout, ...] = field(default=())

    @property
    def ns_dir(self) -> Path:
        return self.workdir / "ns"

    @property
    def key_file(self) -> Path:
        return self.workdir / "ssh" / "id_ed25519"

    @property
    def state_file(self) -> Path:
        return self.workdir / "state.json"

    def host(self, name: str) -> HostLayout:
        for h in self.hosts:
            if h.name == name:
                return h
        known = ", ".join(h.name for h in self.hosts) or "none"
        raise LabError(f"lab {self.name!r} has no host {name!r} (hosts: {known})")


def validate_spec(spec: LabSpec) -> None:
    problems: list[str] = []
    if not _LAB_NAME.match(spec.name):
        problems.append(
            f"lab name {spec.name!r} must be 1-10 lowercase letters/digits starting with a letter (no dash)"
        )
    seen: set[str] = set()
    for h in spec.hosts:
        if not _HOST_NAME.match(h.name):
            problems.append(f"host name {h.name!r} must be lowercase letters, digits and inner dashes")
        if h.name == BRIDGE_SUFFIX:
            problems.append(f"host name {h.name!r} is reserved for the lab bridge")
        if len(spec.name) + 1 + len(h.name) > IFNAMSIZ_MAX:
            problems.append(
                f"host {h.name!r}: interface name {spec.name}-{h.name} exceeds {IFNAMSIZ_MAX} characters"
            )
        if h.name in seen:
            problems.append(f"host {h.name!r} is listed twice")
        seen.add(h.name)
    if spec.first_host_offset < 2:
        problems.append("first_host_offset must be at least 2 (offset 1 is the controller on the bridge)")
    if spec.sshd_timeout <= 0:
        problems.append("sshd_timeout must be positive")
    if spec.workdir is not None:
        shadowing = shadowing_host_dir(spec.workdir)
        if shadowing is not None:
            problems.append(
                f"workdir {spec.workdir} is under {shadowing}, which every lab host replaces with its own "
                f"copy (hiding the lab's files from the hosts' set-up); choose another directory "
                f"(default: {DEFAULT_WORKDIR_ROOT}/NAME)"
            )
    for text, kind in ((spec.ipv4_subnet, 4), (spec.ipv6_subnet, 6)):
        if text is not None:
            try:
                _parse_subnet(text, kind)
            except LabError as exc:
                problems.append(str(exc))
    if problems:
        raise LabError("invalid lab spec: " + "; ".join(problems))


def shadowing_host_dir(path: Path) -> str | None:
    """The per-host directory that ``path`` lies in (after symlinks, e.g. /var/run -> /run), if any."""
    resolved = path.resolve()
    for base in PER_HOST_DIRS:
        if resolved == Path(base) or Path(base) in resolved.parents:
            return base
    return None


def _parse_subnet(text: str, version: int) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise LabError(f"subnet {text!r}: {exc}") from None
    if net.version != version:
        raise LabError(f"subnet {text!r} is not an IPv{version} network")
    # Only documentation ranges: lab traffic must never look like a real network's.
    if isinstance(net, ipaddress.IPv4Network):
        if not any(net.subnet_of(d) for d in _DOC_V4):
            raise LabError(f"subnet {text!r} is not inside 192.0.2.0/24, 198.51.100.0/24 or 203.0.113.0/24")
    elif not net.subnet_of(_DOC_V6):
        raise LabError(f"subnet {text!r} is not inside 2001:db8::/32")
    return net


def _offset_v6(offset: int) -> int:
    # IPv6 host part reuses the decimal digits of the IPv4 offset (…::11 next to ….11) so that the two
    # addresses of a host are easy to pair by eye.
    return int(str(offset), 16)


def resolve_layout(spec: LabSpec, ipv4_subnet: str, ipv6_subnet: str) -> LabLayout:
    """Assign names, addresses and paths. Subnets are passed in because choosing them needs the system."""
    v4 = _parse_subnet(ipv4_subnet, 4)
    v6 = _parse_subnet(ipv6_subnet, 6)
    workdir = spec.effective_workdir
    controller4 = v4.network_address + 1
    controller6 = v6.network_address + 1
    taken4: dict[ipaddress.IPv4Address | ipaddress.IPv6Address, str] = {controller4: "the controller"}
    taken6: dict[ipaddress.IPv4Address | ipaddress.IPv6Address, str] = {controller6: "the controller"}
    hosts: list[HostLayout] = []
    for index, h in enumerate(spec.hosts):
        offset = spec.first_host_offset + index
        addr4 = _host_address(h.name, h.ipv4, v4, offset, taken4)
        if h.ipv6 is not None:
            addr6 = _host_address(h.name, h.ipv6, v6, 0, taken6)
        else:
            v4_offset = int(addr4) - int(v4.network_address)
            addr6 = _host_address(h.name, None, v6, _offset_v6(v4_offset), taken6)
        root = workdir / "hosts" / h.name
        ns_base = f"{spec.name}-{h.name}"
        hosts.append(
            HostLayout(
                name=h.name,
                netns=ns_base,
                veth=ns_base,
                ipv4=str(addr4),
                ipv6=str(addr6),
                sshd=h.sshd,
                root=root,
                mnt_ns_file=workdir / "ns" / f"{ns_base}.mnt",
                uts_ns_file=workdir / "ns" / f"{ns_base}.uts",
            )
        )
    return LabLayout(
        name=spec.name,
        workdir=workdir,
        bridge=f"{spec.name}-{BRIDGE_SUFFIX}",
        ipv4_subnet=str(v4),
        ipv6_subnet=str(v6),
        controller_ipv4=str(controller4),
        controller_ipv6=str(controller6),
        hosts=tuple(hosts),
    )


def _host_address(
    host: str,
    pinned: str | None,
    net: ipaddress.IPv4Network | ipaddress.IPv6Network,
    offset: int,
    taken: dict[ipaddress.IPv4Address | ipaddress.IPv6Address, str],
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if pinned is not None:
        try:
            addr = ipaddress.ip_address(pinned)
        except ValueError as exc:
            raise LabError(f"host {host!r}: {exc}") from None
    else:
        addr = net.network_address + offset
    if addr.version != net.version or addr not in net:
        raise LabError(f"host {host!r}: address {addr} is not inside the lab subnet {net}")
    last = net.broadcast_address if isinstance(net, ipaddress.IPv4Network) else None
    if addr == net.network_address or addr == last:
        raise LabError(f"host {host!r}: address {addr} is the network or broadcast address of {net}")
    if addr in taken:
        raise LabError(f"host {host!r}: address {addr} is already used by {taken[addr]}")
    taken[addr] = f"host {host!r}"
    return addr


def host_specs(hosts: Sequence[HostSpec | str]) -> tuple[HostSpec, ...]:
    """Convenience: plain names become hosts with sshd."""
    return tuple(h if isinstance(h, HostSpec) else HostSpec(h) for h in hosts)
