"""Per-item results of a response playbook run, read from ansible-runner's job events.

A host's status comes from its ``runner_on_ok`` / ``runner_on_failed`` / ``runner_on_unreachable`` /
``runner_on_skipped`` events. Items get their own outcome when a module reports per item, which the
collection's modules do in ``results``: entries with ``address`` (firewall_drop, host_deny, route_null),
``user`` (disable_account) or ``index`` (wazuh_ar_script, counted in the host's items in batch order),
and, for loops, iterations whose loop ``item`` carries the items' ``key``. Rules:

- a host that was unreachable: all its items ``unreachable``;
- an item named in a failed module entry or a failed loop iteration: ``failed``;
- a failed task without per-item detail: all the host's items ``failed`` with the task's message;
- when the host's tasks reported per item at all, an item they never mention is ``failed`` (the playbook
  left it out, e.g. an item without the field the command needs);
- a host whose tasks were all skipped: ``skipped``; no event at all for a host: ``failed`` (not in the
  inventory, or the run stopped before it);
- otherwise ``ok``; ``changed`` from the item's entries, else from the host's tasks.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .executor import Batch, ItemResult, ItemStatus, ResponseItem

MESSAGE_LIMIT = 500


@dataclass
class _Report:
    """What one module entry or loop iteration said about one item."""

    failed: bool
    changed: bool
    message: str


@dataclass
class _HostOutcome:
    unreachable: str | None = None
    failed_tasks: list[str] = field(default_factory=list)  # messages of failures without per-item detail
    ok_tasks: int = 0
    skipped_tasks: int = 0
    changed: bool = False
    reports: dict[int, list[_Report]] = field(default_factory=dict)  # by item index in the batch
    any_item_reports: bool = False


def normalise_address(text: str) -> str:
    """The address as the collection's modules report it (``::ffff:a.b.c.d`` is ``a.b.c.d``)."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return text
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _short(text: object) -> str:
    message = " ".join(str(text).split())
    return message if len(message) <= MESSAGE_LIMIT else message[: MESSAGE_LIMIT - 3] + "..."


@dataclass
class _HostIndex:
    """Where each of a host's items can be found by the fields module results carry."""

    items: list[int] = field(default_factory=list)
    by_address: dict[str, list[int]] = field(default_factory=dict)
    by_user: dict[str, list[int]] = field(default_factory=dict)
    by_key: dict[str, int] = field(default_factory=dict)


def _index(items: Sequence[ResponseItem]) -> dict[str, _HostIndex]:
    hosts: dict[str, _HostIndex] = {}
    for position, item in enumerate(items):
        index = hosts.setdefault(item.host, _HostIndex())
        index.items.append(position)
        index.by_key[item.key] = position
        if item.srcip:
            index.by_address.setdefault(normalise_address(item.srcip), []).append(position)
        if item.user:
            index.by_user.setdefault(item.user, []).append(position)
    return hosts


def _keys_in(value: object, depth: int = 0) -> Iterator[str]:
    """Item keys found in a loop item (the playbooks loop over the executor's item dicts)."""
    if depth > 8:
        return
    if isinstance(value, Mapping):
        key = value.get("key")
        if isinstance(key, str) and "host" in value:
            yield key
            return
        for child in value.values():
            yield from _keys_in(child, depth + 1)
    elif isinstance(value, list | tuple):
        for child in value:
            yield from _keys_in(child, depth + 1)


def _entry_message(task: str, entry: Mapping[str, Any], failed: bool, changed: bool) -> str:
    if failed:
        if entry.get("timed_out"):
            detail = "timed out"
        elif entry.get("rc") is not None:
            detail = f"exit status {entry.get('rc')}"
        else:
            detail = str(entry.get("msg") or "failed")
        stderr = str(entry.get("stderr") or "").strip()
        return _short(f"{task}: {detail}" + (f": {stderr}" if stderr else ""))
    where = str(entry.get("location") or entry.get("route") or entry.get("entry") or entry.get("key") or "")
    backend = entry.get("backend")
    if isinstance(backend, str) and backend and not where.startswith(backend):
        where = f"{backend}: {where}" if where else backend
    return _short(f"{task}: {'changed' if changed else 'no change'}" + (f" ({where})" if where else ""))


def _entry_targets(entry: Mapping[str, Any], host: _HostIndex, scope: Sequence[int]) -> list[int]:
    user = entry.get("user")
    if isinstance(user, str):
        return [p for p in host.by_user.get(user, []) if p in scope]
    for field_name in ("address", "given"):
        address = entry.get(field_name)
        if isinstance(address, str):
            found = [p for p in host.by_address.get(normalise_address(address), []) if p in scope]
            if found:
                return found
    position = entry.get("index")
    if isinstance(position, int) and not isinstance(position, bool) and 0 <= position < len(scope):
        return [scope[position]]
    return []


def _record_module_result(
    task: str, res: Mapping[str, Any], event_failed: bool, host: _HostIndex, outcome: _HostOutcome
) -> None:
    """Record what one task result (or one loop iteration of it) says about the host's items."""
    results = res.get("results")
    entries = [r for r in results if isinstance(r, Mapping)] if isinstance(results, list) else []
    iterations = [r for r in entries if "ansible_loop_var" in r]
    if iterations:
        for iteration in iterations:
            covered = [host.by_key[k] for k in _keys_in(iteration.get("item")) if k in host.by_key]
            before = {p: len(outcome.reports.get(p, [])) for p in covered}
            iteration_failed = bool(iteration.get("failed"))
            _record_entries(task, iteration, iteration_failed, host, outcome, covered or host.items)
            for position in covered:
                if len(outcome.reports.get(position, [])) == before[position]:
                    # The iteration said nothing per item (e.g. the module refused the whole call).
                    message = _short(
                        f"{task}: {iteration.get('msg') or ('failed' if iteration_failed else 'ok')}"
                    )
                    changed = bool(iteration.get("changed")) and not iteration_failed
                    outcome.reports.setdefault(position, []).append(
                        _Report(iteration_failed, changed, message)
                    )
            outcome.any_item_reports = outcome.any_item_reports or bool(covered)
        return
    if not _record_entries(task, res, event_failed, host, outcome, host.items) and event_failed:
        outcome.failed_tasks.append(_short(f"{task}: {res.get('msg') or 'failed'}"))


def _record_entries(
    task: str,
    res: Mapping[str, Any],
    result_failed: bool,
    host: _HostIndex,
    outcome: _HostOutcome,
    scope: Sequence[int],
) -> bool:
    """Per-item entries of a module result; True when any item was matched."""
    results = res.get("results")
    if not isinstance(results, list):
        return False
    matched = False
    for entry in results:
        if not isinstance(entry, Mapping) or "ansible_loop_var" in entry:
            continue
        targets = _entry_targets(entry, host, scope)
        if not targets:
            continue
        # An entry's own "failed" wins; without one, a failed module call fails all its entries.
        failed = bool(entry["failed"]) if "failed" in entry else result_failed
        changed = bool(entry.get("changed")) and not failed
        message = _entry_message(task, entry, failed, changed)
        if failed and not entry.get("failed") and res.get("msg"):
            message = _short(f"{task}: {res.get('msg')}")
        for position in targets:
            outcome.reports.setdefault(position, []).append(_Report(failed, changed, message))
        matched = True
    outcome.any_item_reports = outcome.any_item_reports or matched
    return matched


def _outcomes(events: Iterable[Mapping[str, Any]], hosts: dict[str, _HostIndex]) -> dict[str, _HostOutcome]:
    outcomes = {name: _HostOutcome() for name in hosts}
    for event in events:
        kind = event.get("event")
        data = event.get("event_data")
        if not isinstance(data, Mapping):
            continue
        host_name = data.get("host")
        if host_name not in outcomes:
            continue
        outcome, index = outcomes[host_name], hosts[host_name]
        raw_res = data.get("res")
        res: Mapping[str, Any] = raw_res if isinstance(raw_res, Mapping) else {}
        task = str(data.get("task") or data.get("task_action") or "task")
        if kind == "runner_on_unreachable":
            outcome.unreachable = _short(f"unreachable: {res.get('msg') or 'host unreachable'}")
        elif kind == "runner_on_failed" and not data.get("ignore_errors"):
            _record_module_result(task, res, True, index, outcome)
        elif kind in ("runner_on_ok", "runner_on_failed"):  # the latter with ignore_errors
            outcome.ok_tasks += 1
            outcome.changed = outcome.changed or bool(res.get("changed"))
            _record_module_result(task, res, False, index, outcome)
        elif kind == "runner_on_skipped":
            outcome.skipped_tasks += 1
    return outcomes


def item_results(
    batch: Batch, events: Iterable[Mapping[str, Any]], run_problem: str | None
) -> list[ItemResult]:
    """One ItemResult per batch item. ``run_problem`` says why the run as a whole went wrong (timeout,
    cancel, a playbook error), used for items no event speaks about."""
    hosts = _index(batch.items)
    outcomes = _outcomes(events, hosts)
    results: list[ItemResult] = []
    for position, item in enumerate(batch.items):
        outcome = outcomes[item.host]
        reports = outcome.reports.get(position, [])
        status: ItemStatus
        if outcome.unreachable is not None:
            status, changed, message = "unreachable", False, outcome.unreachable
        elif any(r.failed for r in reports):
            status, changed, message = "failed", False, next(r.message for r in reports if r.failed)
        elif outcome.failed_tasks:
            status, changed, message = "failed", False, outcome.failed_tasks[0]
        elif reports:
            changed = any(r.changed for r in reports)
            status, message = "ok", reports[-1].message
        elif outcome.any_item_reports:
            status, changed, message = "failed", False, "the playbook reported no result for this item"
        elif outcome.ok_tasks:
            status, changed, message = "ok", outcome.changed, "ok"
        elif outcome.skipped_tasks:
            status, changed, message = "skipped", False, "every task was skipped for this host"
        else:
            reason = run_problem or "host not in the inventory, or the run stopped before reaching it"
            status, changed, message = "failed", False, _short(f"no result for host {item.host}: {reason}")
        if run_problem and status == "ok" and run_problem.startswith(("timed out", "canceled")):
            # The run was stopped: later tasks of the playbook may not have run for this host.
            status, changed, message = "failed", changed, _short(f"{message}; then the run {run_problem}")
        results.append(ItemResult(item.key, item.host, status, changed, message))
    return results
