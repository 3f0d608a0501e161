# Copyright: ThreatLockDown contributors
# SPDX-License-Identifier: Apache-2.0
"""The interface every firewall backend of ``firewall_drop`` implements.

A backend answers three questions about the addresses of one call (what is blocked now, which shared
objects such as tables, sets and hook rules are missing) and performs the changes in as few commands as it
can. It never decides *whether* to change anything: ``firewall_plan`` does, so check mode and diff are the
same for all backends.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Sequence

from ansible_collections.threatlockdown.active_response.plugins.module_utils.commands import Runner
from ansible_collections.threatlockdown.active_response.plugins.module_utils.validation import Address


class BackendError(Exception):
    """The backend cannot be used or its state is not what we can safely work with."""


@dataclass(frozen=True)
class EntryState:
    """What the firewall holds for one address.

    ``blocked`` means some trace exists (something to delete); ``complete`` means every rule or element
    the backend uses is in place (nothing to add). They differ only for per-address rules spread over
    several chains. ``expires_in`` is the number of seconds before the kernel (or firewalld) drops the
    entry by itself; None means it never expires or the backend cannot tell.
    """

    blocked: bool
    expires_in: int | None = None
    complete: bool = True

    @property
    def fully_blocked(self) -> bool:
        return self.blocked and self.complete


class FirewallBackend(abc.ABC):
    """Common interface of the backends."""

    name = "abstract"
    # Largest per-entry timeout (seconds) the backend accepts; None when it has no limit we know of.
    max_entry_timeout: int | None = None
    # False when entries stay until someone deletes them, whatever timeout was asked for.
    entries_expire = True

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def tool(self, name: str) -> str:
        path = self.runner.find(name)
        if path is None:
            raise BackendError(f"backend {self.name} needs the '{name}' command, which is not installed")
        return path

    @abc.abstractmethod
    def missing_setup(self, versions: set[int]) -> list[str]:
        """Describe the shared objects (tables, sets, hook rules) that must exist before adding entries."""

    @abc.abstractmethod
    def create_setup(self, versions: set[int]) -> None:
        """Create what ``missing_setup`` reported; must be safe to call when it already exists."""

    @abc.abstractmethod
    def read(self, addresses: Sequence[Address]) -> dict[str, EntryState]:
        """State of each address, keyed by ``Address.text``; absent keys mean not blocked."""

    @abc.abstractmethod
    def add(self, addresses: Sequence[Address], entry_timeout: int) -> None:
        """Block ``addresses``; ``entry_timeout`` seconds until the entry expires, 0 for never."""

    @abc.abstractmethod
    def remove(self, addresses: Sequence[Address]) -> None:
        """Unblock ``addresses``; entries that expired meanwhile are not an error."""

    @abc.abstractmethod
    def location(self, address: Address) -> str:
        """Where the entry lives, for diffs and results (``nftables inet threatlockdown blocked4``)."""
