"""The analysis task: queue -> batches -> rules -> alert files -> sinks -> acks -> saved positions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..analysis.alert import alert_line
from ..analysis.session import AnalysisSession, ProcessResult
from ..collect.durable import PositionCommitter
from ..collect.event import RawEvent
from .agents import AgentRawEvent
from .alertlog import format_alert_text
from .journal import BatchJournal
from .outputs import AlertFiles
from .sink import AlertSink

RATE_WINDOW = 10.0  # seconds over which status reports events/s


class AlertWriteError(Exception):
    """The alert files could not be written; the daemon stops rather than ack unwritten events."""


@dataclass
class PipelineCounters:
    processed: Counter[str] = field(default_factory=Counter)  # by source (collector name, agent:ID)
    alerts_by_level: Counter[int] = field(default_factory=Counter)  # written to the alert files
    alerts_written: int = 0
    sink_calls: int = 0
    sink_errors: int = 0
    analysis_errors: int = 0
    batches: int = 0
    recent: deque[tuple[float, int]] = field(default_factory=deque)  # (monotonic time, events)

    def rate(self, now: float) -> float:
        while self.recent and now - self.recent[0][0] > RATE_WINDOW:
            self.recent.popleft()
        return sum(n for _, n in self.recent) / RATE_WINDOW


def analyse(session: AnalysisSession, ev: RawEvent) -> ProcessResult:
    agent = ev.agent if isinstance(ev, AgentRawEvent) else None
    if ev.log_format == "journald" and ev.record is not None:
        return session.process_journald(ev.record, ev.location, agent)
    return session.process(ev.text, ev.location, agent)


class AnalysisPipeline:
    """The single consumer of the event queue. Between batches it yields to the event loop, so
    collectors, agents and the control socket stay responsive while the (synchronous) rules run."""

    def __init__(
        self,
        queue: asyncio.Queue[RawEvent],
        session: AnalysisSession,
        outputs: AlertFiles,
        journal: BatchJournal,
        sinks: Sequence[AlertSink],
        logger: logging.Logger,
        *,
        committer: PositionCommitter | None = None,
        max_batch: int = 500,
    ) -> None:
        self.queue = queue
        self.session = session  # replaced on reload, between batches
        self.committer = committer if committer is not None else PositionCommitter(())
        self._outputs = outputs
        self._journal = journal
        self._sinks = tuple(sinks)
        self._logger = logger
        self._max_batch = max_batch
        self._stopping = asyncio.Event()
        self._batch_ids = time.time_ns()
        self.busy = False
        self.counters = PipelineCounters()

    async def run(self) -> None:
        """Process batches until ``stop()``; a batch in progress is always finished."""
        while not self._stopping.is_set():
            batch = await self._next_batch()
            if batch:
                await self.process_batch(batch)
            elif self._outputs.rotation_due():
                await self._outputs.rotate()

    def stop(self) -> None:
        self._stopping.set()

    async def drain(self) -> None:
        """Process whatever is still queued (at stop, after the collectors ended)."""
        while not self.queue.empty():
            await self.process_batch(self._take_ready([]))

    async def _next_batch(self) -> list[RawEvent]:
        get = asyncio.ensure_future(self.queue.get())
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            # Wake at least every second so a quiet manager still rotates its files at midnight.
            await asyncio.wait((get, stop), timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not get.done():
                get.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await get
        if get.cancelled() or not get.done():
            return []
        return self._take_ready([get.result()])

    def _take_ready(self, batch: list[RawEvent]) -> list[RawEvent]:
        while len(batch) < self._max_batch:
            try:
                batch.append(self.queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        return batch

    async def process_batch(self, events: list[RawEvent]) -> None:
        self.busy = True
        try:
            await self._process(events)
        finally:
            self.busy = False

    async def _process(self, events: list[RawEvent]) -> None:
        if self._outputs.rotation_due():
            await self._outputs.rotate()
        session = self.session
        counters = self.counters
        alerts: list[tuple[ProcessResult, dict[str, Any]]] = []
        json_lines: list[str] = []
        text_entries: list[str] = []
        for ev in events:
            try:
                result = analyse(session, ev)
            except Exception:
                counters.analysis_errors += 1
                self._logger.exception("analysis failed for an event from %s; skipped", ev.location)
                continue
            counters.processed[ev.source or ev.location] += 1
            if not result.match.alert:
                continue
            alert = result.output()
            alerts.append((result, alert))
            if result.logged:
                rule = result.rule
                assert rule is not None
                counters.alerts_by_level[rule.level] += 1
                json_lines.append(alert_line(alert).decode("utf-8") + "\n")
                text_entries.append(format_alert_text(result))
        counters.batches += 1
        counters.recent.append((time.monotonic(), len(events)))

        has_positions = any(ev.ack is not None and not isinstance(ev, AgentRawEvent) for ev in events)
        has_agents = any(isinstance(ev, AgentRawEvent) for ev in events)
        writes = bool(json_lines and self._outputs.settings.json) or bool(
            text_entries and self._outputs.settings.text
        )
        batch_id: int | None = None
        if writes:
            batch_id = self._next_id()
            stores = [str(p) for p in self.committer.state_files] if has_positions else []
            try:
                self._journal.begin(batch_id, self._outputs.sizes(), stores)
                self._outputs.write(json_lines, text_entries)
                await self._outputs.sync()
            except OSError as exc:
                raise AlertWriteError(f"cannot write alerts to {self._outputs.alerts_dir}: {exc}") from exc
            counters.alerts_written += len(json_lines)

        for result, alert in alerts:
            counters.sink_calls += 1
            for sink in self._sinks:
                try:
                    await sink.handle(result, alert)
                except Exception:
                    counters.sink_errors += 1
                    self._logger.exception(
                        "alert sink %s failed on alert %s", type(sink).__name__, alert["id"]
                    )

        # From here to the end no await: the acks, the positions and the journal change together.
        for ev in events:
            if ev.ack is not None:
                ev.ack()
        if has_positions:
            self.committer.commit(batch_id)
        if batch_id is not None:
            self._journal.end(durable=has_agents)
        await asyncio.sleep(0)

    def _next_id(self) -> int:
        self._batch_ids = max(self._batch_ids + 1, time.time_ns())
        return self._batch_ids
