# Copyright: ThreatLockDown contributors
# SPDX-License-Identifier: Apache-2.0
"""Blackhole host routes (``ip route add blackhole ADDR/32``): replies to the address go nowhere."""

from __future__ import annotations

import json
from typing import Sequence

from ansible_collections.threatlockdown.active_response.plugins.module_utils.commands import (
    CommandError,
    Runner,
    run_checked,
)
from ansible_collections.threatlockdown.active_response.plugins.module_utils.validation import (
    Address,
    parse_address,
)


class RouteError(Exception):
    pass


def parse_blackholes(document: str) -> set[str]:
    """Canonical host addresses of ``ip -j route show type blackhole`` entries.

    ``ip`` prints a host route's dst without prefix ('192.0.2.1'); routes for wider prefixes are not ours.
    """
    try:
        routes = json.loads(document or "[]")
    except ValueError as exc:
        raise RouteError(f"cannot parse 'ip -j route' output: {exc}") from None
    found = set()
    if not isinstance(routes, list):
        raise RouteError("unexpected 'ip -j route' output: not a list")
    for route in routes:
        if not isinstance(route, dict) or route.get("type") != "blackhole":
            continue
        dst = route.get("dst")
        if not isinstance(dst, str):
            continue
        try:
            found.add(parse_address(dst).text)
        except ValueError:
            continue
    return found


class BlackholeRoutes:
    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        ip = runner.find("ip")
        if ip is None:
            raise RouteError("the 'ip' command (iproute2) is not installed")
        self.ip = ip

    def _family(self, version: int) -> list[str]:
        return ["-4"] if version == 4 else ["-6"]

    def present(self, versions: set[int]) -> set[str]:
        found: set[str] = set()
        for version in sorted(versions):
            result = run_checked(
                self.runner,
                "listing blackhole routes",
                [self.ip, "-j", *self._family(version), "route", "show", "type", "blackhole"],
            )
            found |= parse_blackholes(result.stdout)
        return found

    def add(self, addresses: Sequence[Address]) -> None:
        for address in addresses:
            argv = [self.ip, *self._family(address.version), "route", "add", "blackhole", address.host_prefix]
            result = self.runner.run(argv)
            if result.rc != 0:
                if "File exists" in result.stderr:
                    raise RouteError(
                        f"a different route for {address.host_prefix} already exists and is left alone: "
                        f"{result.stderr.strip()}"
                    )
                raise CommandError("adding a blackhole route", result)

    def remove(self, addresses: Sequence[Address]) -> None:
        for address in addresses:
            argv = [self.ip, *self._family(address.version), "route", "del", "blackhole", address.host_prefix]
            result = self.runner.run(argv)
            # "No such process" = the route went away since we listed it, which is what we wanted.
            if result.rc != 0 and "No such process" not in result.stderr:
                raise CommandError("deleting a blackhole route", result)


def route_text(address: Address) -> str:
    return f"blackhole {address.host_prefix}"
