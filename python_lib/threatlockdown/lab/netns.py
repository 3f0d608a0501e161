"""The lab network: one bridge in the root namespace, one network namespace and veth pair per host."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .commands import Tools, run
from .errors import LabError
from .spec import ADDRESS_SLOTS, HostLayout, LabLayout, LabSpec

NETNS_DIR = Path("/run/netns")
# Inside every host the lab interface has the same, ordinary name.
HOST_IFNAME = "eth0"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class UsedNetwork:
    """A network the root namespace already reaches, with where it comes from (for error messages)."""

    network: Network
    origin: str


def _ip_json(tools: Tools, *args: str) -> list[dict[str, Any]]:
    out = run([tools.ip, "-j", *args]).stdout.strip()
    # Some iproute2 versions print nothing instead of "[]" for empty lists.
    data = json.loads(out) if out else []
    if not isinstance(data, list):
        raise LabError(f"unexpected output of `ip -j {' '.join(args)}`: {out[:200]}")
    return [d for d in data if isinstance(d, dict)]


def used_networks(tools: Tools) -> list[UsedNetwork]:
    """Networks assigned or routed in the root namespace; a lab subnet must not overlap any of them."""
    used: list[UsedNetwork] = []
    for link in _ip_json(tools, "addr", "show"):
        for info in link.get("addr_info", []):
            try:
                net = ipaddress.ip_network(f"{info['local']}/{info['prefixlen']}", strict=False)
            except (KeyError, ValueError):
                continue
            if not net.is_link_local and not net.is_loopback:
                used.append(
                    UsedNetwork(net, f"address {info['local']}/{info['prefixlen']} on {link['ifname']}")
                )
    for family in ("-4", "-6"):
        for route in _ip_json(tools, family, "route", "show"):
            dst = str(route.get("dst", ""))
            if dst in ("", "default"):
                continue
            try:
                net = ipaddress.ip_network(dst if "/" in dst else f"{dst}/{32 if family == '-4' else 128}")
            except ValueError:
                continue
            if not net.is_link_local and not net.is_multicast:
                used.append(UsedNetwork(net, f"route {dst} via {route.get('dev', '?')}"))
    return used


def _conflicts(subnet: str, used: list[UsedNetwork]) -> list[str]:
    net = ipaddress.ip_network(subnet)
    return [u.origin for u in used if u.network.version == net.version and u.network.overlaps(net)]


def choose_subnets(spec: LabSpec, tools: Tools) -> tuple[str, str]:
    """Use the spec's subnets if given (after checking them), else the first documentation slot that is free.

    A clash matters: a lab bridge on the machine's own uplink subnet would take over its gateway.
    """
    used = used_networks(tools)
    if spec.ipv4_subnet is not None or spec.ipv6_subnet is not None:
        slot4, slot6 = next(
            ((v4, v6) for v4, v6 in ADDRESS_SLOTS if not _conflicts(v4, used) and not _conflicts(v6, used)),
            ADDRESS_SLOTS[0],
        )
        v4 = spec.ipv4_subnet or slot4
        v6 = spec.ipv6_subnet or slot6
        for subnet in (v4, v6):
            clash = _conflicts(subnet, used)
            if clash:
                raise LabError(
                    f"lab {spec.name!r}: subnet {subnet} overlaps {', '.join(clash)} in the root namespace; "
                    "choose another subnet (e.g. --ipv4-subnet 203.0.113.0/24)"
                )
        return v4, v6
    for v4, v6 in ADDRESS_SLOTS:
        if not _conflicts(v4, used) and not _conflicts(v6, used):
            return v4, v6
    taken = "; ".join(
        f"{v4}: {', '.join(_conflicts(v4, used) or _conflicts(v6, used))}" for v4, v6 in ADDRESS_SLOTS
    )
    raise LabError(
        f"lab {spec.name!r}: every documentation subnet is in use ({taken}); tear a lab down or pass "
        "explicit subnets such as 203.0.113.128/27"
    )


def create_bridge(tools: Tools, layout: LabLayout) -> None:
    v4_len = ipaddress.ip_network(layout.ipv4_subnet).prefixlen
    v6_len = ipaddress.ip_network(layout.ipv6_subnet).prefixlen
    br = layout.bridge
    run([tools.ip, "link", "add", br, "type", "bridge"])
    # DAD would leave the controller's IPv6 address "tentative" (unusable) for about a second.
    _write_sysctl(Path(f"/proc/sys/net/ipv6/conf/{br}/accept_dad"), "0")
    run(
        [tools.ip, "-batch", "-"],
        input=(
            f"addr add {layout.controller_ipv4}/{v4_len} dev {br}\n"
            f"addr add {layout.controller_ipv6}/{v6_len} dev {br} nodad\n"
            f"link set {br} up\n"
        ),
    )


def _write_sysctl(path: Path, value: str) -> None:
    try:
        path.write_text(value + "\n")
    except OSError as exc:
        raise LabError(f"cannot write {path}: {exc.strerror}") from None


def create_host_network(tools: Tools, layout: LabLayout, host: HostLayout) -> None:
    """Network namespace, veth pair (root end on the bridge, ``eth0`` inside), addresses, loopback."""
    v4_len = ipaddress.ip_network(layout.ipv4_subnet).prefixlen
    v6_len = ipaddress.ip_network(layout.ipv6_subnet).prefixlen
    run([tools.ip, "netns", "add", host.netns])
    # Interfaces copy "default" when created, so set it before the veth end appears in the namespace.
    run(
        [
            tools.nsenter,
            f"--net={NETNS_DIR / host.netns}",
            "--",
            tools.sh,
            "-c",
            "for c in all default; do echo 0 > /proc/sys/net/ipv6/conf/$c/accept_dad; done",
        ]
    )
    run(
        [tools.ip, "link", "add", host.veth, "type", "veth", "peer", "name", HOST_IFNAME, "netns", host.netns]
    )
    run([tools.ip, "link", "set", host.veth, "master", layout.bridge, "up"])
    run(
        [tools.ip, "-n", host.netns, "-batch", "-"],
        input=(
            "link set lo up\n"
            f"addr add {host.ipv4}/{v4_len} dev {HOST_IFNAME}\n"
            f"addr add {host.ipv6}/{v6_len} dev {HOST_IFNAME} nodad\n"
            f"link set {HOST_IFNAME} up\n"
        ),
    )


def list_netns(tools: Tools) -> list[str]:
    return [str(entry["name"]) for entry in _ip_json(tools, "netns", "list") if "name" in entry]


def list_links(tools: Tools) -> list[str]:
    return [str(link["ifname"]) for link in _ip_json(tools, "link", "show") if "ifname" in link]


def netns_pids(tools: Tools, netns: str) -> list[int]:
    done = run([tools.ip, "netns", "pids", netns], check=False)
    if done.returncode != 0:
        return []
    return [int(tok) for tok in done.stdout.split() if tok.isdigit()]


def delete_netns(tools: Tools, netns: str) -> None:
    if netns in list_netns(tools):
        run([tools.ip, "netns", "delete", netns])


def delete_link(tools: Tools, ifname: str) -> None:
    # The link may vanish on its own (a veth dies with its namespace), so a failure is only an error
    # when the link is still there afterwards.
    done = run([tools.ip, "link", "delete", ifname], check=False)
    if done.returncode != 0 and ifname in list_links(tools):
        raise LabError(f"cannot delete interface {ifname}: {done.stderr.strip()}")
