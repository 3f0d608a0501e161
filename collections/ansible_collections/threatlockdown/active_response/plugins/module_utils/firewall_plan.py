# Copyright: ThreatLockDown contributors
# SPDX-License-Identifier: Apache-2.0
"""Decides what ``firewall_drop`` changes, applies it, and builds results and diff.

Same flow for every backend: read, decide, (stop here in check mode), create shared objects, change
entries, read again to report expiry times.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from ansible_collections.threatlockdown.active_response.plugins.module_utils.firewall_base import (
    BackendError,
    EntryState,
    FirewallBackend,
)
from ansible_collections.threatlockdown.active_response.plugins.module_utils.firewall_firewalld import (
    FirewalldBackend,
)
from ansible_collections.threatlockdown.active_response.plugins.module_utils.firewall_ipset import (
    IpsetBackend,
)
from ansible_collections.threatlockdown.active_response.plugins.module_utils.firewall_iptables import (
    IptablesBackend,
)
from ansible_collections.threatlockdown.active_response.plugins.module_utils.firewall_nftables import (
    NftablesBackend,
)
from ansible_collections.threatlockdown.active_response.plugins.module_utils.module_run import state_diff
from ansible_collections.threatlockdown.active_response.plugins.module_utils.validation import Address

BACKENDS = ("auto", "nftables", "ipset", "iptables", "firewalld")


def choose_backend(name: str, runner: Any, firewalld_zone: str | None = None) -> FirewallBackend:
    """Build the named backend; ``auto`` prefers nftables, then ipset, then plain iptables."""
    if name == "nftables":
        return NftablesBackend(runner)
    if name == "ipset":
        return IpsetBackend(runner)
    if name == "iptables":
        return IptablesBackend(runner)
    if name == "firewalld":
        return FirewalldBackend(runner, firewalld_zone)
    if name != "auto":
        raise BackendError(f"unknown backend {name!a}")
    if runner.find("nft"):
        return NftablesBackend(runner)
    if runner.find("ipset") and runner.find("iptables"):
        return IpsetBackend(runner)
    if runner.find("iptables"):
        return IptablesBackend(runner)
    raise BackendError("backend auto found none of nft, ipset or iptables on this host")


def entry_timeout(backend: FirewallBackend, timeout: int, margin: int) -> int:
    """Seconds the entry itself lives: the requested block time plus a margin, 0 = no expiry.

    The margin lets the manager's own unblock arrive first; the kernel timeout is only the safety net for
    a manager that is gone.
    """
    if timeout < 0 or margin < 0:
        raise BackendError("timeout and timeout_margin must not be negative")
    if timeout == 0:
        return 0
    seconds = timeout + margin
    limit = backend.max_entry_timeout
    if limit is not None and seconds > limit:
        raise BackendError(
            f"timeout + timeout_margin = {seconds}s is more than backend {backend.name} accepts ({limit}s); "
            "use a shorter timeout or timeout=0 for a block without expiry"
        )
    return seconds


@dataclass
class Plan:
    addresses: list[Address]
    present: bool
    before: dict[str, EntryState]
    setup: list[str] = field(default_factory=list)
    to_change: list[Address] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.to_change or self.setup)


def make_plan(backend: FirewallBackend, addresses: Sequence[Address], present: bool) -> Plan:
    versions = {a.version for a in addresses}
    before = backend.read(addresses)
    plan = Plan(addresses=list(addresses), present=present, before=before)
    if present:
        # Shared objects are only created when something is blocked, never for an unblock.
        plan.setup = backend.missing_setup(versions)
        plan.to_change = [a for a in addresses if not before.get(a.text, EntryState(False)).fully_blocked]
    else:
        plan.to_change = [a for a in addresses if before.get(a.text, EntryState(False)).blocked]
    return plan


def apply_plan(backend: FirewallBackend, plan: Plan, seconds: int) -> None:
    if plan.present:
        if plan.setup:
            backend.create_setup({a.version for a in plan.addresses})
        backend.add(plan.to_change, seconds)
    else:
        backend.remove(plan.to_change)


def _diff_lines(backend: FirewallBackend, addresses: Sequence[Address], blocked: dict[str, bool]) -> str:
    lines = [f"{backend.location(a)}: {a.text}" for a in addresses if blocked.get(a.text)]
    return "".join(line + "\n" for line in sorted(lines))


def build_report(
    backend: FirewallBackend,
    plan: Plan,
    after: dict[str, EntryState],
    seconds: int,
) -> dict[str, Any]:
    """Results, ``blocked`` list and diff; ``after`` is re-read state, or the prediction in check mode."""
    changing = {a.text for a in plan.to_change}
    results = []
    for address in plan.addresses:
        state = after.get(address.text, EntryState(False))
        entry: dict[str, Any] = {
            "address": address.text,
            "given": address.given,
            "family": address.family,
            "backend": backend.name,
            "location": backend.location(address),
            "changed": address.text in changing,
            "blocked": state.blocked,
            "entry_timeout": (seconds or None) if plan.present and backend.entries_expire else None,
            "expires_in": state.expires_in,
        }
        results.append(entry)
    before_text = _diff_lines(backend, plan.addresses, {k: v.blocked for k, v in plan.before.items()})
    after_text = _diff_lines(backend, plan.addresses, {k: v.blocked for k, v in after.items()})
    if plan.setup:
        after_text = "".join(f"created {item}\n" for item in plan.setup) + after_text
    return {
        "changed": plan.changed,
        "backend": backend.name,
        "results": results,
        "blocked": [r["address"] for r in results if r["blocked"]],
        "created": list(plan.setup),
        "diff": state_diff(backend.name, before_text, after_text),
    }


def predicted_state(backend: FirewallBackend, plan: Plan, seconds: int) -> dict[str, EntryState]:
    """What check mode reports as the state after the run."""
    after = dict(plan.before)
    for address in plan.to_change:
        if plan.present:
            expires = seconds if seconds and backend.entries_expire else None
            after[address.text] = EntryState(blocked=True, expires_in=expires)
        else:
            after.pop(address.text, None)
    return after
