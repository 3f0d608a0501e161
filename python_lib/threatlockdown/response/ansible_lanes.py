"""Merge batches that arrive while their command's runs are busy (group commit).

A playbook run costs about the same for 1 or 500 items, and on each host one module call per run; what a
burst costs is the number of runs times the number of hosts. So each (command, executable, action) is a
lane with at most ``per_lane`` runs at once: a batch that arrives while they are all busy waits, and
everything waiting when a run ends goes into the next run together (up to ``max_items``), which starts
``linger`` seconds later. A lone alert still starts a run at once. Each caller gets the results of its
own items.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .executor import Batch, ItemResult

RunBatch = Callable[[Batch, threading.Event], Awaitable[list[ItemResult]]]
LaneKey = tuple[str, str, str]


@dataclass(eq=False)
class _Waiter:
    batch: Batch
    future: asyncio.Future[list[ItemResult]]
    group: _Group | None = None


@dataclass(eq=False)
class _Group:
    waiters: list[_Waiter]
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Lane:
    queue: list[_Waiter] = field(default_factory=list)
    active: int = 0


class Lanes:
    def __init__(self, run: RunBatch, per_lane: int, max_items: int, linger: float = 0.05) -> None:
        if per_lane < 1 or max_items < 1:
            raise ValueError("per_lane and max_items must be at least 1")
        self._run = run
        self.per_lane = per_lane
        self.max_items = max_items
        # When a run ends with batches waiting, the next run starts this much later: the callers of the
        # run that ended get their results first and may hand over more work to join it.
        self.linger = linger
        self._lanes: dict[LaneKey, _Lane] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.merged_batches = 0  # batches that shared a run with others

    async def submit(self, batch: Batch) -> list[ItemResult]:
        """Results for ``batch``'s items, in its order. Cancelling the caller takes its batch out of the
        queue, or stops the run when no other caller shares it."""
        key: LaneKey = (batch.command, batch.executable, batch.action)
        lane = self._lanes.setdefault(key, _Lane())
        waiter = _Waiter(batch, asyncio.get_running_loop().create_future())
        lane.queue.append(waiter)
        self._start_runs(lane)
        try:
            return await waiter.future
        except asyncio.CancelledError:
            if waiter in lane.queue:
                lane.queue.remove(waiter)
            elif waiter.group is not None and all(w.future.cancelled() for w in waiter.group.waiters):
                waiter.group.cancel.set()
            raise

    async def wait(self) -> None:
        """Wait for every run started so far."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _start_runs(self, lane: _Lane) -> None:
        while lane.queue and lane.active < self.per_lane:
            taken: list[_Waiter] = []
            count = 0
            while lane.queue and (not taken or count + len(lane.queue[0].batch.items) <= self.max_items):
                waiter = lane.queue.pop(0)
                taken.append(waiter)
                count += len(waiter.batch.items)
            group = _Group(taken)
            for waiter in taken:
                waiter.group = group
            lane.active += 1
            task = asyncio.get_running_loop().create_task(self._run_group(lane, group))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run_group(self, lane: _Lane, group: _Group) -> None:
        try:
            live = [w for w in group.waiters if not w.future.done()]
            if not live:
                return
            first = live[0].batch
            if len(live) > 1:
                self.merged_batches += len(live)
            merged = Batch(
                batch_id=first.batch_id if len(live) == 1 else f"{first.batch_id}+{len(live) - 1}",
                command=first.command,
                executable=first.executable,
                action=first.action,
                items=tuple(item for w in live for item in w.batch.items),
            )
            try:
                results = await self._run(merged, group.cancel)
            except BaseException as exc:
                for waiter in live:
                    if waiter.future.done():
                        continue
                    if isinstance(exc, Exception):
                        waiter.future.set_exception(exc)
                    else:
                        waiter.future.cancel()
                if not isinstance(exc, Exception):
                    raise
                return
            start = 0
            for waiter in live:
                end = start + len(waiter.batch.items)
                if not waiter.future.done():
                    waiter.future.set_result(results[start:end])
                start = end
        finally:
            lane.active -= 1
            if lane.queue:
                asyncio.get_running_loop().call_later(self.linger, self._start_runs, lane)
