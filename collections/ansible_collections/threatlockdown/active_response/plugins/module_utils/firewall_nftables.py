# Copyright: ThreatLockDown contributors
# SPDX-License-Identifier: Apache-2.0
"""nftables backend: one set per address family with per-element timeouts.

A set lookup costs the same for 10 or 100,000 blocked addresses, and the kernel removes expired elements
by itself, so a block still ends when the manager that asked for it is gone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
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

TABLE_FAMILY = "inet"
TABLE = "threatlockdown"
# version -> (set name, set type, payload protocol used by the drop rule)
SETS: dict[int, tuple[str, str, str]] = {
    4: ("blocked4", "ipv4_addr", "ip"),
    6: ("blocked6", "ipv6_addr", "ip6"),
}
# Our chains run before the usual filter chains (priority 0) so a drop here is final.
CHAINS = ("input", "forward")
CHAIN_PRIORITY = -10
# The element timeout is held in milliseconds in a 32-bit jiffies-based field on some kernels; stay below.
MAX_TIMEOUT = 4294967


@dataclass
class TableView:
    """What exists of our table, parsed from ``nft -j list table``."""

    exists: bool = False
    sets: dict[str, dict[str, Any]] = field(default_factory=dict)
    chains: dict[str, dict[str, Any]] = field(default_factory=dict)
    # chain name -> set references ("@blocked4") that a rule of that chain drops
    drop_rules: dict[str, set[str]] = field(default_factory=dict)
    elements: dict[str, EntryState] = field(default_factory=dict)


def _drop_reference(expressions: Any) -> str | None:
    """Return '@set' when a rule is exactly 'ip[6] saddr @set drop', else None."""
    if not isinstance(expressions, list) or len(expressions) != 2:
        return None
    match, verdict = expressions
    if not isinstance(match, dict) or verdict != {"drop": None}:
        return None
    body = match.get("match")
    if not isinstance(body, dict) or body.get("op") != "==":
        return None
    left = body.get("left")
    right = body.get("right")
    if not isinstance(left, dict) or not isinstance(right, str) or not right.startswith("@"):
        return None
    payload = left.get("payload")
    if not isinstance(payload, dict) or payload.get("field") != "saddr":
        return None
    return right


def _element_state(element: Any) -> tuple[str | None, EntryState]:
    """Return the canonical address and state of one set element from nft's JSON."""
    if isinstance(element, str):
        value, expires = element, None
    elif isinstance(element, dict) and isinstance(element.get("elem"), dict):
        value = element["elem"].get("val")
        expires = element["elem"].get("expires")
    else:
        return None, EntryState(blocked=False)
    if not isinstance(value, str):
        return None, EntryState(blocked=False)
    try:
        address = parse_address(value)
    except ValueError:
        # Something we would never have added (a range, a loopback); it cannot match our items anyway.
        return None, EntryState(blocked=False)
    return address.text, EntryState(blocked=True, expires_in=expires if isinstance(expires, int) else None)


def parse_table(document: str) -> TableView:
    """Parse ``nft -j list table inet threatlockdown`` output; raises BackendError on malformed JSON."""
    try:
        data = json.loads(document)
    except ValueError as exc:
        raise BackendError(f"cannot parse 'nft -j' output: {exc}") from None
    entries = data.get("nftables") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise BackendError("unexpected 'nft -j' output: no 'nftables' list")
    view = TableView()
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        if "table" in entry:
            view.exists = True
        elif isinstance(entry.get("set"), dict):
            info = entry["set"]
            view.sets[str(info.get("name"))] = info
            for element in info.get("elem", []) or []:
                text, state = _element_state(element)
                if text is not None:
                    view.elements[text] = state
        elif isinstance(entry.get("chain"), dict):
            info = entry["chain"]
            view.chains[str(info.get("name"))] = info
        elif isinstance(entry.get("rule"), dict):
            info = entry["rule"]
            reference = _drop_reference(info.get("expr"))
            if reference is not None:
                view.drop_rules.setdefault(str(info.get("chain")), set()).add(reference)
    return view


def element_block(addresses: Sequence[Address], entry_timeout: int | None) -> str:
    """``{ a timeout 600s, b timeout 600s }`` from validated addresses only."""
    suffix = f" timeout {entry_timeout}s" if entry_timeout else ""
    return "{ " + ", ".join(a.text + suffix for a in addresses) + " }"


class NftablesBackend(FirewallBackend):
    name = "nftables"
    max_entry_timeout = MAX_TIMEOUT

    def __init__(self, runner: Any) -> None:
        super().__init__(runner)
        self.nft = self.tool("nft")

    def _view(self) -> TableView:
        result = self.runner.run([self.nft, "-j", "list", "table", TABLE_FAMILY, TABLE])
        if result.rc != 0:
            # "No such file or directory" is how nft reports a missing table.
            if "No such file or directory" in result.stderr:
                return TableView()
            raise CommandError("reading the nftables table", result)
        return parse_table(result.stdout)

    def _missing(self, view: TableView) -> list[tuple[str, str]]:
        """(description, nft statement) pairs for every missing piece, in creation order."""
        missing: list[tuple[str, str]] = []
        where = f"{TABLE_FAMILY} {TABLE}"
        if not view.exists:
            missing.append((f"nftables table {where}", f"add table {where}"))
        for set_name, set_type, _protocol in SETS.values():
            info = view.sets.get(set_name)
            if info is None:
                missing.append(
                    (
                        f"nftables set {where} {set_name} ({set_type}, flags timeout)",
                        f"add set {where} {set_name} {{ type {set_type}; flags timeout; }}",
                    )
                )
            elif info.get("type") != set_type or "timeout" not in (info.get("flags") or []):
                raise BackendError(
                    f"nftables set {where} {set_name} exists but is not '{set_type}' with 'flags timeout'; "
                    f"delete the table ('nft delete table {where}') so it can be recreated"
                )
        for chain in CHAINS:
            info = view.chains.get(chain)
            if info is None:
                missing.append(
                    (
                        f"nftables chain {where} {chain} (hook {chain} priority {CHAIN_PRIORITY})",
                        f"add chain {where} {chain} "
                        f"{{ type filter hook {chain} priority {CHAIN_PRIORITY}; policy accept; }}",
                    )
                )
            elif info.get("hook") != chain:
                raise BackendError(f"nftables chain {where} {chain} exists but is not hooked on {chain}")
            for set_name, _set_type, protocol in SETS.values():
                if "@" + set_name not in view.drop_rules.get(chain, set()):
                    missing.append(
                        (
                            f"nftables rule {where} {chain}: {protocol} saddr @{set_name} drop",
                            f"add rule {where} {chain} {protocol} saddr @{set_name} drop",
                        )
                    )
        return missing

    def missing_setup(self, versions: set[int]) -> list[str]:
        return [description for description, _statement in self._missing(self._view())]

    def create_setup(self, versions: set[int]) -> None:
        statements = [statement for _description, statement in self._missing(self._view())]
        if statements:
            # Constant text only: nothing in this script comes from the module's input.
            run_checked(
                self.runner,
                "creating the nftables table",
                [self.nft, "-f", "-"],
                "\n".join(statements) + "\n",
            )

    def read(self, addresses: Sequence[Address]) -> dict[str, EntryState]:
        view = self._view()
        wanted = {a.text for a in addresses}
        return {text: state for text, state in view.elements.items() if text in wanted}

    def _script(self, verb: str, addresses: Sequence[Address], entry_timeout: int | None) -> str:
        lines = []
        for version, (set_name, _set_type, _protocol) in SETS.items():
            members = [a for a in addresses if a.version == version]
            if members:
                block = element_block(members, entry_timeout)
                lines.append(f"{verb} element {TABLE_FAMILY} {TABLE} {set_name} {block}")
        return "\n".join(lines) + "\n"

    def add(self, addresses: Sequence[Address], entry_timeout: int) -> None:
        if addresses:
            script = self._script("add", addresses, entry_timeout)
            run_checked(self.runner, "adding nftables set elements", [self.nft, "-f", "-"], script)

    def remove(self, addresses: Sequence[Address]) -> None:
        remaining = list(addresses)
        # One transaction fails as a whole when an element expired since we looked; look again once.
        for attempt in (1, 2):
            if not remaining:
                return
            result = self.runner.run([self.nft, "-f", "-"], self._script("delete", remaining, None))
            if result.rc == 0:
                return
            if attempt == 2:
                raise CommandError("deleting nftables set elements", result)
            present = self.read(remaining)
            remaining = [a for a in remaining if a.text in present]

    def location(self, address: Address) -> str:
        return f"nftables {TABLE_FAMILY} {TABLE} {SETS[address.version][0]}"
