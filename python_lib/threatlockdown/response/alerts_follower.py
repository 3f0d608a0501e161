"""``tld runner``: follow a real Wazuh manager's alerts.json and feed each alert to the engine.

The file is read by the collectors' FileTailer (rotation, truncation, saved positions). A position is
acknowledged only after the engine's state holding that alert's decisions is on disk, so a crash makes
the runner read those alerts again (a repeated alert refreshes, it does not execute twice) and never
skips one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..collect.event import RawEvent
from ..collect.formats import FileFormat
from ..collect.positions import PositionStore
from ..collect.tailer import FileTailer
from .engine import ResponseEngine

_ACK_INTERVAL = 0.2  # seconds between state flushes that release acknowledgements
_QUEUE = 1000


@dataclass
class FollowerStats:
    alerts: int = 0
    not_json: int = 0


class AlertsFollower:
    def __init__(
        self,
        alerts: Path,
        engine: ResponseEngine,
        positions_dir: Path,
        *,
        read_existing: bool = False,
        logger: logging.Logger | None = None,
    ) -> None:
        self.alerts = alerts
        self.engine = engine
        self.log = logger or logging.getLogger("threatlockdown.response")
        self.store = PositionStore(positions_dir, self.log)
        self.tailer = FileTailer(
            location=str(alerts),
            fmt=FileFormat("json"),
            store=self.store,
            logger=self.log,
            read_existing=read_existing,
        )
        self.stats = FollowerStats()

    async def run(self, stop: asyncio.Event) -> None:
        queue: asyncio.Queue[RawEvent] = asyncio.Queue(maxsize=_QUEUE)
        tail = asyncio.create_task(self.tailer.run(queue), name="tld-runner-tail")
        pending: list[Callable[[], None]] = []
        loop = asyncio.get_running_loop()
        next_ack = loop.time() + _ACK_INTERVAL
        stopper = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                timeout = max(0.0, next_ack - loop.time()) if pending else None
                getter = asyncio.ensure_future(queue.get())
                try:
                    done, _ = await asyncio.wait(
                        (getter, stopper, tail), timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    if not getter.done():
                        getter.cancel()
                    await asyncio.gather(getter, return_exceptions=True)
                # An event taken while being cancelled is handled like any other.
                if getter.done() and not getter.cancelled() and getter.exception() is None:
                    ev = getter.result()
                    await self._handle(ev)
                    if ev.ack is not None:
                        pending.append(ev.ack)
                if tail in done:
                    tail.result()  # a tailer that died is an error of the runner
                if pending and (loop.time() >= next_ack or stop.is_set()):
                    self._release(pending)
                    next_ack = loop.time() + _ACK_INTERVAL
        finally:
            stopper.cancel()
            tail.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tail
            if pending:
                self._release(pending)
            self.tailer.stage_positions()
            self.store.save()

    async def _handle(self, ev: RawEvent) -> None:
        try:
            alert = json.loads(ev.text)
        except ValueError:
            self.stats.not_json += 1
            return
        if not isinstance(alert, dict):
            self.stats.not_json += 1
            return
        self.stats.alerts += 1
        await self.engine.handle_alert(alert)

    def _release(self, pending: list[Callable[[], None]]) -> None:
        self.engine.state.flush()  # the decisions first, then the positions that skip their alerts
        for ack in pending:
            ack()
        pending.clear()
