# Copyright: ThreatLockDown contributors
# SPDX-License-Identifier: Apache-2.0
"""ipset backend: hash:ip sets with per-entry timeouts, matched by one iptables/ip6tables rule per chain.

For hosts that still run iptables without nftables' userspace tool; lookups are hash-based and entries
expire in the kernel like nftables set elements.
"""

from __future__ import annotations

from typing import Any, Sequence

from ansible_collections.threatlockdown.active_response.plugins.module_utils.commands import (
    CommandError,
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
from ansible_collections.threatlockdown.active_response.plugins.module_utils.xtables import Xtables

SET_NAMES = {4: "threatlockdown4", 6: "threatlockdown6"}
SET_FAMILIES = {4: "inet", 6: "inet6"}
# ipset refuses timeouts above this many seconds (about 24.8 days).
MAX_TIMEOUT = 2147483


def match_rule(version: int) -> list[str]:
    return ["-m", "set", "--match-set", SET_NAMES[version], "src", "-j", "DROP"]


def parse_save(set_name: str, text: str) -> dict[str, EntryState]:
    """Entries of ``ipset save SET``: lines ``add SET ADDR [timeout N]``; timeout 0 means permanent."""
    entries: dict[str, EntryState] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) < 3 or words[0] != "add" or words[1] != set_name:
            continue
        try:
            address = parse_address(words[2])
        except ValueError:
            continue
        expires = None
        if "timeout" in words[3:]:
            position = words.index("timeout", 3)
            if position + 1 < len(words) and words[position + 1].isdigit():
                seconds = int(words[position + 1])
                expires = seconds if seconds > 0 else None
        entries[address.text] = EntryState(blocked=True, expires_in=expires)
    return entries


def describe_header(set_name: str, text: str) -> str:
    """The ``create`` line of ``ipset save``, used to check the set's type."""
    for line in text.splitlines():
        if line.startswith(f"create {set_name} "):
            return line
    return ""


class IpsetBackend(FirewallBackend):
    name = "ipset"
    max_entry_timeout = MAX_TIMEOUT

    def __init__(self, runner: Any) -> None:
        super().__init__(runner)
        self.ipset = self.tool("ipset")
        self._xtables: dict[int, Xtables] = {}

    def xtables(self, version: int) -> Xtables:
        if version not in self._xtables:
            self._xtables[version] = Xtables(self.runner, version)
        return self._xtables[version]

    def _save(self, version: int) -> str:
        """``ipset save`` text of our set, or '' when the set does not exist yet."""
        result = self.runner.run([self.ipset, "save", SET_NAMES[version]])
        if result.rc != 0:
            if "does not exist" in result.stderr:
                return ""
            raise CommandError(f"reading ipset {SET_NAMES[version]}", result)
        return result.stdout

    def _missing(self, versions: set[int]) -> list[str]:
        missing = []
        for version in sorted(versions):
            name = SET_NAMES[version]
            header = describe_header(name, self._save(version))
            if not header:
                missing.append(f"ipset {name} (hash:ip family {SET_FAMILIES[version]} timeout 0)")
            elif " hash:ip " not in header or " timeout " not in header:
                raise BackendError(
                    f"ipset {name} exists but is not 'hash:ip' with timeout support ({header}); "
                    "destroy it so it can be recreated"
                )
            xt = self.xtables(version)
            for chain in xt.chains():
                # A rule cannot reference a set that does not exist yet, so do not ask.
                if not header or not xt.has_rule(chain, match_rule(version)):
                    missing.append("{} {}: {}".format(xt.name, chain, " ".join(match_rule(version))))
        return missing

    def missing_setup(self, versions: set[int]) -> list[str]:
        return self._missing(versions)

    def create_setup(self, versions: set[int]) -> None:
        for version in sorted(versions):
            name = SET_NAMES[version]
            run_checked(
                self.runner,
                f"creating ipset {name}",
                [
                    self.ipset,
                    "create",
                    name,
                    "hash:ip",
                    "family",
                    SET_FAMILIES[version],
                    "timeout",
                    "0",
                    "-exist",
                ],
            )
            xt = self.xtables(version)
            for chain in xt.chains():
                if not xt.has_rule(chain, match_rule(version)):
                    xt.insert(chain, match_rule(version))

    def read(self, addresses: Sequence[Address]) -> dict[str, EntryState]:
        wanted = {a.text for a in addresses}
        found: dict[str, EntryState] = {}
        for version in sorted({a.version for a in addresses}):
            entries = parse_save(SET_NAMES[version], self._save(version))
            found.update({text: state for text, state in entries.items() if text in wanted})
        return found

    def _restore(self, what: str, lines: list[str]) -> None:
        if lines:
            # Every line is built from ipaddress-normalised text and integers only.
            run_checked(self.runner, what, [self.ipset, "-exist", "restore"], "\n".join(lines) + "\n")

    def add(self, addresses: Sequence[Address], entry_timeout: int) -> None:
        lines = [f"add {SET_NAMES[a.version]} {a.text} timeout {entry_timeout}" for a in addresses]
        self._restore("adding ipset entries", lines)

    def remove(self, addresses: Sequence[Address]) -> None:
        # -exist makes a delete of an entry that already expired a no-op instead of an error.
        lines = [f"del {SET_NAMES[a.version]} {a.text}" for a in addresses]
        self._restore("deleting ipset entries", lines)

    def location(self, address: Address) -> str:
        return f"ipset {SET_NAMES[address.version]}"
