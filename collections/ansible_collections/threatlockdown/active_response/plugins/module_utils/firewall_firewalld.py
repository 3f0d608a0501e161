# Copyright: ThreatLockDown contributors
# SPDX-License-Identifier: Apache-2.0
"""firewalld backend: runtime rich rules ``rule family="ipv4" source address="ADDR" drop``.

Runtime only (like Wazuh's firewalld-drop): a ``firewall-cmd --reload`` forgets them, which is acceptable
for temporary blocks. firewalld removes a rule added with ``--timeout`` by itself.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from ansible_collections.threatlockdown.active_response.plugins.module_utils.commands import (
    run_checked,
)
from ansible_collections.threatlockdown.active_response.plugins.module_utils.firewall_base import (
    BackendError,
    EntryState,
    FirewallBackend,
)
from ansible_collections.threatlockdown.active_response.plugins.module_utils.validation import (
    Address,
    parse_address,
)

# Zone names firewalld accepts; checked so the value cannot smuggle another option in.
SAFE_ZONE = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,16}\Z")
RICH_RULE = re.compile(r'\Arule family="(ipv4|ipv6)" source address="([^"]+)" drop\Z')


def rich_rule(address: Address) -> str:
    return f'rule family="{address.family}" source address="{address.text}" drop'


def parse_rich_rules(text: str) -> set[str]:
    """Canonical addresses dropped by ``--list-rich-rules`` lines of exactly our form."""
    found = set()
    for line in text.splitlines():
        match = RICH_RULE.match(line.strip())
        if not match:
            continue
        try:
            found.add(parse_address(match.group(2)).text)
        except ValueError:
            continue
    return found


class FirewalldBackend(FirewallBackend):
    name = "firewalld"

    def __init__(self, runner: Any, zone: str | None = None) -> None:
        super().__init__(runner)
        self.firewall_cmd = self.tool("firewall-cmd")
        if zone is not None and not SAFE_ZONE.match(zone):
            raise BackendError(f"firewalld_zone {zone!a} is not a valid zone name")
        self.zone = zone

    def _argv(self, *args: str) -> list[str]:
        zone = [f"--zone={self.zone}"] if self.zone else []
        return [self.firewall_cmd, *zone, *list(args)]

    def missing_setup(self, versions: set[int]) -> list[str]:
        state = self.runner.run([self.firewall_cmd, "--state"])
        if state.rc != 0:
            raise BackendError(
                f"firewalld is not running (firewall-cmd --state: {(state.stdout + state.stderr).strip()})"
            )
        return []

    def create_setup(self, versions: set[int]) -> None:
        return None

    def read(self, addresses: Sequence[Address]) -> dict[str, EntryState]:
        listed = run_checked(self.runner, "listing firewalld rich rules", self._argv("--list-rich-rules"))
        present = parse_rich_rules(listed.stdout)
        return {a.text: EntryState(blocked=True) for a in addresses if a.text in present}

    def add(self, addresses: Sequence[Address], entry_timeout: int) -> None:
        timeout = [f"--timeout={entry_timeout}s"] if entry_timeout else []
        for address in addresses:
            run_checked(
                self.runner,
                "adding firewalld rich rule",
                self._argv(f"--add-rich-rule={rich_rule(address)}", *timeout),
            )

    def remove(self, addresses: Sequence[Address]) -> None:
        for address in addresses:
            run_checked(
                self.runner,
                "removing firewalld rich rule",
                self._argv(f"--remove-rich-rule={rich_rule(address)}"),
            )

    def location(self, address: Address) -> str:
        return "firewalld zone %s rich rule" % (self.zone or "(default)")
