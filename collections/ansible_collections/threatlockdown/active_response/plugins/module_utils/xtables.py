# Copyright: ThreatLockDown contributors
# SPDX-License-Identifier: Apache-2.0
"""Small wrapper over iptables/ip6tables shared by the ``iptables`` and ``ipset`` backends."""

from __future__ import annotations

from typing import Sequence

from ansible_collections.threatlockdown.active_response.plugins.module_utils.commands import (
    CommandError,
    Runner,
    run_checked,
)
from ansible_collections.threatlockdown.active_response.plugins.module_utils.firewall_base import BackendError

BINARIES = {4: "iptables", 6: "ip6tables"}
# Wazuh's firewall-drop uses INPUT and FORWARD; Docker routes published ports through DOCKER-USER,
# which FORWARD alone does not protect when Docker's own rules accept first.
BASE_CHAINS = ("INPUT", "FORWARD")
DOCKER_CHAIN = "DOCKER-USER"
# Seconds to wait for the xtables lock held by another tool instead of failing at once.
LOCK_WAIT = "10"


class Xtables:
    """One of iptables/ip6tables, talking to the filter table."""

    def __init__(self, runner: Runner, version: int) -> None:
        self.runner = runner
        self.version = version
        name = BINARIES[version]
        path = runner.find(name)
        if path is None:
            raise BackendError(f"'{name}' is not installed, so IPv{version} addresses cannot be blocked")
        self.binary = path
        self.name = name

    def _argv(self, *args: str) -> list[str]:
        return [self.binary, "-w", LOCK_WAIT, *list(args)]

    def chain_exists(self, chain: str) -> bool:
        return self.runner.run(self._argv("-S", chain)).rc == 0

    def chains(self) -> list[str]:
        """Chains that get our rules: INPUT, FORWARD and DOCKER-USER when Docker created it."""
        found = list(BASE_CHAINS)
        if self.chain_exists(DOCKER_CHAIN):
            found.append(DOCKER_CHAIN)
        return found

    def has_rule(self, chain: str, spec: Sequence[str]) -> bool:
        result = self.runner.run(self._argv("-C", chain, *spec))
        if result.rc == 0:
            return True
        if result.rc == 1:
            return False
        raise CommandError(f"checking {self.name} rule in {chain}", result)

    def insert(self, chain: str, spec: Sequence[str]) -> None:
        run_checked(
            self.runner, f"inserting {self.name} rule in {chain}", self._argv("-I", chain, "1", *spec)
        )

    def delete_all(self, chain: str, spec: Sequence[str], limit: int = 64) -> None:
        """Delete every copy of a rule: Wazuh's script never checks before inserting, so duplicates exist."""
        for _attempt in range(limit):
            if not self.has_rule(chain, spec):
                return
            run_checked(self.runner, f"deleting {self.name} rule in {chain}", self._argv("-D", chain, *spec))
        raise BackendError(f"{self.name}: more than {limit} copies of {' '.join(spec)} in {chain}")
