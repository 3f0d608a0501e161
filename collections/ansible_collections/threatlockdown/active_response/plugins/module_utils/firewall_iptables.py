# Copyright: ThreatLockDown contributors
# SPDX-License-Identifier: Apache-2.0
"""iptables backend: the rules Wazuh's firewall-drop inserts (``-I INPUT -s ADDR -j DROP`` and FORWARD).

Kept for compatibility with hosts and habits built around Wazuh. Each address costs one rule per chain
that every packet walks through, and rules never expire: the manager must send the unblock.
"""

from __future__ import annotations

from typing import Any, Sequence

from ansible_collections.threatlockdown.active_response.plugins.module_utils.firewall_base import (
    EntryState,
    FirewallBackend,
)
from ansible_collections.threatlockdown.active_response.plugins.module_utils.validation import Address
from ansible_collections.threatlockdown.active_response.plugins.module_utils.xtables import Xtables


def drop_rule(address: Address) -> list[str]:
    # The same match Wazuh uses, so `-C` also finds (and state=absent also removes) blocks it made.
    return ["-s", address.text, "-j", "DROP"]


class IptablesBackend(FirewallBackend):
    name = "iptables"
    entries_expire = False

    def __init__(self, runner: Any) -> None:
        super().__init__(runner)
        self._xtables: dict[int, Xtables] = {}
        self._chains: dict[int, list[str]] = {}
        # Fail early and clearly when iptables itself is missing.
        self.tool("iptables")

    def _xt(self, version: int) -> Xtables:
        if version not in self._xtables:
            self._xtables[version] = Xtables(self.runner, version)
            self._chains[version] = self._xtables[version].chains()
        return self._xtables[version]

    def missing_setup(self, versions: set[int]) -> list[str]:
        # Nothing is shared between addresses; only check the tools exist for the families asked for.
        for version in versions:
            self._xt(version)
        return []

    def create_setup(self, versions: set[int]) -> None:
        return None

    def read(self, addresses: Sequence[Address]) -> dict[str, EntryState]:
        found: dict[str, EntryState] = {}
        for address in addresses:
            xt = self._xt(address.version)
            present = [
                chain for chain in self._chains[address.version] if xt.has_rule(chain, drop_rule(address))
            ]
            if present:
                found[address.text] = EntryState(
                    blocked=True, complete=len(present) == len(self._chains[address.version])
                )
        return found

    def add(self, addresses: Sequence[Address], entry_timeout: int) -> None:
        for address in addresses:
            xt = self._xt(address.version)
            for chain in self._chains[address.version]:
                if not xt.has_rule(chain, drop_rule(address)):
                    xt.insert(chain, drop_rule(address))

    def remove(self, addresses: Sequence[Address]) -> None:
        for address in addresses:
            xt = self._xt(address.version)
            for chain in self._chains[address.version]:
                xt.delete_all(chain, drop_rule(address))

    def location(self, address: Address) -> str:
        xt = self._xt(address.version)
        return "{} {}".format(xt.name, "/".join(self._chains[address.version]))
