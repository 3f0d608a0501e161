"""The boundary between deciding a response and carrying it out.

The engine hands an Executor batches: one command and one action (add or delete) with many
(host, parameters) items. Executors report a result per item. The ansible-runner executor runs each
batch as one playbook run; the in-process executor below serves tests and simulations.

Every string in ``ResponseItem.alert`` came from a log line and is attacker-controlled: executors must
pass it on as data only (never into a shell, a template, module arguments or playbook text).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson

Action = Literal["add", "delete"]
ItemStatus = Literal["ok", "failed", "unreachable", "skipped"]


class AlertText(Mapping[str, Any]):
    """An alert kept as the JSON text it was queued as, decoded on first use.

    The engine hands executors alerts in this form: an executor that never reads the alert (a dry run,
    the in-process executor) costs no decoding, and a batch of 500 undecoded alerts is 500 strings
    instead of tens of thousands of objects for the garbage collector to walk. Read it as any mapping;
    ``text`` is the compact JSON (what the audit line carries)."""

    __slots__ = ("_data", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._data: dict[str, Any] | None = None

    def _decoded(self) -> dict[str, Any]:
        data = self._data
        if data is None:
            value = orjson.loads(self.text) if self.text else {}
            data = self._data = value if isinstance(value, dict) else {}
        return data

    def __getitem__(self, key: str) -> Any:
        return self._decoded()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._decoded())

    def __len__(self) -> int:
        return len(self._decoded())

    def __repr__(self) -> str:
        return f"AlertText({self.text!r})"


@dataclass(frozen=True, slots=True)
class ResponseItem:
    key: str  # the state key: command, target host, and srcip or user
    host: str  # Ansible inventory hostname of the target
    srcip: str | None = None  # already validated with ipaddress (``::ffff:`` stripped)
    user: str | None = None  # already checked against the safe user-name pattern
    timeout: int = 0  # seconds the response lasts (0: until deleted); backends may use it as a safety net
    alert: Mapping[str, Any] = field(default_factory=dict)  # the triggering alert (untrusted data)
    extra_args: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Batch:
    batch_id: str
    command: str  # the <command> name, e.g. firewall-drop
    executable: str  # its <executable>: the response playbook's name
    action: Action
    items: tuple[ResponseItem, ...]

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(item.host for item in self.items))


@dataclass(frozen=True, slots=True)
class ItemResult:
    key: str
    host: str
    status: ItemStatus
    changed: bool = False
    message: str = ""


class Executor(Protocol):
    async def execute(self, batch: Batch) -> list[ItemResult]:
        """Carry out every item; one result per item, in any order. Must not raise for item failures."""
        ...

    async def close(self) -> None:
        """Cancel what is running and release resources."""
        ...


@dataclass
class InProcessExecutor:
    """Records batches and answers from a policy function; for tests, simulations and benchmarks."""

    decide: Callable[[Batch, ResponseItem], ItemStatus] | None = None
    delay: float = 0.0
    batches: list[Batch] = field(default_factory=list)
    closed: bool = False

    async def execute(self, batch: Batch) -> list[ItemResult]:
        self.batches.append(batch)
        if self.delay:
            await asyncio.sleep(self.delay)
        results = []
        for item in batch.items:
            status: ItemStatus = self.decide(batch, item) if self.decide is not None else "ok"
            results.append(ItemResult(item.key, item.host, status, changed=status == "ok"))
        return results

    async def close(self) -> None:
        self.closed = True
