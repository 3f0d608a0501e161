"""Batched dispatch to an Executor: coalescing window, bounded queue and concurrency, delayed retries.

Actions that become due within ``window`` seconds of each other are carried out as one execution per
(command, action) with many (host, parameters) items: a playbook run costs about a second whatever the
number of items, so a burst of 200 attackers costs one run, not 200. A window that already holds
``max_items`` actions closes at once. The queue is bounded: when it is full ``submit`` waits, which
slows the caller (the manager's analysis) instead of growing memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..config.model import Command
from .executor import Action, AlertText, Batch, Executor, ItemResult, ResponseItem

DEFAULT_EXECUTION_TIMEOUT = 900.0  # an execution that takes longer is cancelled and its items fail


@dataclass(slots=True)
class Job:
    """One item of work: an action on one key, with its attempt number."""

    action: Action
    command: Command
    key: str
    host: str
    srcip: str | None
    user: str | None
    timeout: int
    extra_args: tuple[str, ...]
    # The triggering alert as JSON text: a queue of thousands of jobs holding alert dicts would weigh
    # several times more. Decoded when an executor reads it (AlertText).
    alert_json: str
    stateful: bool = True  # recorded in the state (False: a one-shot command without timeout_allowed)
    attempt: int = 1

    def item(self) -> ResponseItem:
        alert = AlertText(self.alert_json)  # decoded only if the executor reads it
        return ResponseItem(self.key, self.host, self.srcip, self.user, self.timeout, alert, self.extra_args)


ResultHandler = Callable[[Batch, list[tuple[Job, ItemResult]]], Awaitable[None]]
# Makes the jobs durable before they run (the engine's write-ahead). Called once for every job of a
# window before the first of its executions starts (one transaction, not one per batch), and again per
# batch right before it runs, where it normally finds nothing left to write; an error there fails the
# batch's items (retried), an error at the window is only logged.
BeforeRun = Callable[[list[Job]], None]


@dataclass
class DispatchStats:
    queued: int = 0
    batches: int = 0
    items: int = 0
    running: int = 0
    waiting_retry: int = 0
    executor_errors: int = 0


class Dispatcher:
    def __init__(
        self,
        executor: Executor,
        *,
        on_results: ResultHandler,
        before_run: BeforeRun | None = None,
        window: float = 0.2,
        max_items: int = 500,
        concurrency: int = 4,
        queue_size: int = 10_000,
        execution_timeout: float = DEFAULT_EXECUTION_TIMEOUT,
        logger: logging.Logger | None = None,
    ) -> None:
        self.executor = executor
        self._on_results = on_results
        self._before_run = before_run
        self.window = window
        self.max_items = max_items
        self.execution_timeout = execution_timeout
        self.log = logger or logging.getLogger("threatlockdown.response")
        self._queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=queue_size)
        self._retries: deque[Job] = deque()
        self._retry_handles: set[asyncio.TimerHandle] = set()
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)
        self._running: set[asyncio.Task[None]] = set()
        # Jobs taken from the queue for the batch being formed, not yet handed to an execution: neither
        # queued nor running, but not done either (a stop must wait for them too).
        self._forming = 0
        # Set whenever work may have finished; wait_idle() clears it and checks again (so several
        # executions finishing together, in any order, cannot be missed).
        self._changed = asyncio.Event()
        self._ids = itertools.count(1)
        self.stats = DispatchStats()

    # -- producers -----------------------------------------------------------------------------------

    async def submit(self, job: Job) -> None:
        """Queue ``job``; waits while the queue is full (back-pressure)."""
        if not self.offer(job):
            await self._queue.put(job)

    def offer(self, job: Job) -> bool:
        """Queue ``job`` if there is room now (no coroutine to run); False when the queue is full."""
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            return False
        return True

    def retry_later(self, job: Job, delay: float) -> None:
        """Run ``job`` again after ``delay`` seconds; retries do not count against the queue bound (there
        is at most one per key, so the state bounds them)."""
        self.stats.waiting_retry += 1
        handle: asyncio.TimerHandle | None = None

        def due() -> None:
            assert handle is not None
            self._retry_handles.discard(handle)
            self.stats.waiting_retry -= 1
            self._retries.append(job)
            self._wake.set()
            self._changed.set()

        handle = asyncio.get_running_loop().call_later(delay, due)
        self._retry_handles.add(handle)

    @property
    def waiting(self) -> int:
        """Jobs in the queue, not yet taken into a batch."""
        return self._queue.qsize()

    @property
    def queued(self) -> int:
        return self._queue.qsize() + len(self._retries)

    @property
    def busy(self) -> bool:
        """Some job is queued, due for a retry, in the batch being formed, executing, or having its
        results recorded. (Retries still waiting for their delay do not count.)"""
        return bool(self._queue.qsize() or self._retries or self._forming or self._running)

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until the dispatcher is not ``busy``; False when ``timeout`` passes first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.busy:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._changed.clear()
            # asyncio.wait, not wait_for: in 3.11 wait_for can swallow a cancellation of the caller.
            waiter = asyncio.ensure_future(self._changed.wait())
            try:
                await asyncio.wait((waiter,), timeout=remaining)
            finally:
                waiter.cancel()
        return True

    # -- the loop ------------------------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                jobs = [await self._next()]
                self._forming = 1
                deadline = loop.time() + self.window
                while True:
                    jobs.extend(self._take_ready())
                    self._forming = len(jobs)
                    remaining = deadline - loop.time()
                    # A window holding a full batch closes early: waiting cannot make that batch
                    # bigger, only later (a burst of attackers goes out at once, in full batches).
                    if remaining <= 0 or len(jobs) >= self.max_items:
                        break
                    job = await self._get(remaining)
                    if job is not None:
                        jobs.append(job)
                        self._forming += 1
                await self._launch(jobs)
                del jobs  # do not keep the last batch's alerts alive while waiting for the next
        finally:
            # Cancelled (a stop): what was not handed over is in the state, done at the next start.
            self._forming = 0
            self._changed.set()

    async def _get(self, timeout: float | None) -> Job | None:
        """The next queued job, or None when ``timeout`` passes or a retry became due first."""
        self._wake.clear()
        getter = asyncio.ensure_future(self._queue.get())
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait((getter, waker), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Never leave the helper tasks behind, also when this task is cancelled at a stop.
            waker.cancel()
            if not getter.done():
                getter.cancel()
            await asyncio.gather(getter, waker, return_exceptions=True)
        # A get() that completed while being cancelled must not lose its job.
        if getter.done() and not getter.cancelled() and getter.exception() is None:
            return getter.result()
        return None

    def _take_ready(self) -> list[Job]:
        out = list(self._retries)
        self._retries.clear()
        while True:
            try:
                out.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                return out

    async def _next(self) -> Job:
        while True:
            if self._retries:
                return self._retries.popleft()
            with contextlib.suppress(asyncio.QueueEmpty):
                return self._queue.get_nowait()
            job = await self._get(None)
            if job is not None:
                return job

    async def _launch(self, jobs: list[Job]) -> None:
        """Hand ``jobs`` over to executions, one per (command, action) and max_items."""
        groups: dict[tuple[str, Action], list[Job]] = {}
        for job in jobs:
            groups.setdefault((job.command.name, job.action), []).append(job)
        if self._before_run is not None:
            try:
                self._before_run(jobs)
            except Exception as exc:  # each batch tries again before it runs, and fails if it cannot
                self.log.error("write-ahead of %d actions failed: %r", len(jobs), exc)
        for (_, action), group in groups.items():
            for start in range(0, len(group), self.max_items):
                chunk = group[start : start + self.max_items]
                await self._slots.acquire()  # all slots busy: stop taking from the queue (back-pressure)
                batch_id = f"{int(time.time())}-{next(self._ids)}"
                task = asyncio.create_task(self._execute(batch_id, action, chunk), name=f"tld-ar-{batch_id}")
                self._running.add(task)
                task.add_done_callback(self._finished)
                self._forming -= len(chunk)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._changed.set()

    async def _execute(self, batch_id: str, action: Action, jobs: list[Job]) -> None:
        # The batch is built here, when it runs: its items hold the decoded alerts, and several batches
        # of them waiting for their turn would weigh on memory and on the garbage collector.
        command = jobs[0].command
        batch = Batch(batch_id, command.name, command.executable, action, tuple(j.item() for j in jobs))
        self.stats.running += 1
        self.stats.batches += 1
        self.stats.items += len(jobs)
        try:
            try:
                if self._before_run is not None:
                    self._before_run(jobs)
                results = await asyncio.wait_for(self.executor.execute(batch), self.execution_timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.executor_errors += 1
                self.log.error(
                    "executor failed on batch %s (%s %s): %r",
                    batch.batch_id,
                    batch.command,
                    batch.action,
                    exc,
                )
                message = "execution timed out" if isinstance(exc, TimeoutError) else f"executor error: {exc}"
                results = [ItemResult(i.key, i.host, "failed", message=message) for i in batch.items]
        finally:
            self.stats.running -= 1
            self._slots.release()
        by_key = {(r.key, r.host): r for r in results}
        pairs = []
        for job in jobs:
            result = by_key.get((job.key, job.host)) or ItemResult(
                job.key, job.host, "failed", message="the executor gave no result for this item"
            )
            pairs.append((job, result))
        try:
            await self._on_results(batch, pairs)
        except Exception:
            self.log.exception("recording the results of batch %s failed", batch.batch_id)

    async def wait_running(self, timeout: float) -> None:
        """Wait for the executions already running (not the queue) to finish."""
        if self._running:
            await asyncio.wait(set(self._running), timeout=timeout)

    def cancel_retries(self) -> list[Job]:
        """Drop the retries not yet due and the queued jobs; return them (their state says what to redo)."""
        for handle in self._retry_handles:
            handle.cancel()
        self._retry_handles.clear()
        self.stats.waiting_retry = 0
        dropped = list(self._retries)
        self._retries.clear()
        dropped.extend(self._take_ready())
        self._changed.set()
        return dropped
