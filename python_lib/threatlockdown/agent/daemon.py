"""The agent daemon: tails the host's <localfile>s and forwards every event to the manager.

collectors -> bounded queue -> ``AgentForwarder.submit`` (disk spool) -> ack -> saved positions.
The forwarder delivers the spool in order with acknowledgements, across outages of either side.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter
from typing import Any

from .. import __version__
from ..collect import Collector, RawEvent, build_collectors
from ..collect.durable import PositionCommitter
from ..config.reader import load_config
from ..errors import SourceError, SourceErrors
from ..manager.home import Home
from ..manager.lifecycle import DaemonLifecycle, Ready, status_and_stop
from ..manager.sections import read_client_section
from ..manager.settings import absolute_localfiles
from ..transport import AgentForwarder, EventTooLargeError, ForwarderConfig, SpoolFullError

QUEUE_SIZE = 4096
MAX_BATCH = 500
_SPOOL_FULL_RETRY = 1.0


class AgentDaemon:
    def __init__(
        self,
        home: Home,
        *,
        manager: tuple[str, int] | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.home = home
        self._manager_override = manager
        self.log = logger or logging.getLogger("threatlockdown.agent")
        self._stop = asyncio.Event()
        self._started = time.monotonic()
        self.queue: asyncio.Queue[RawEvent] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self.collectors: list[Collector] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.forwarder: AgentForwarder | None = None
        self._committer = PositionCommitter(())
        self.manager: tuple[str, int] | None = None
        self.forwarded: Counter[str] = Counter()
        self.truncated = 0
        self.spool_full_waits = 0
        self._busy = False

    async def run(self, ready: Ready | None = None) -> int:
        life = DaemonLifecycle(self.home, self.log, ready, status_and_stop(self.status, self.request_stop))
        if not life.claim_home():
            return 1
        forward_task: asyncio.Task[None] | None = None
        try:
            try:
                await self._start()
                await life.open_control()
            except (SourceErrors, OSError) as exc:
                return life.failed(exc)
            forward_task = asyncio.create_task(self._forward_forever(), name="tld-agent-forward")
            life.install_signals(self.request_stop)
            assert self.manager is not None
            self.log.info(
                "agent started (pid %d, version %s, home %s): %d collectors, manager %s:%d",
                os.getpid(),
                __version__,
                self.home.root,
                len(self.collectors),
                *self.manager,
            )
            life.notify(None)
            stop_task = asyncio.create_task(self._stop.wait())
            await asyncio.wait((stop_task, forward_task), return_when=asyncio.FIRST_COMPLETED)
            stop_task.cancel()
            if forward_task.done() and forward_task.exception() is not None:
                self.log.critical("forwarding stopped: %r", forward_task.exception())
                return 1
            self.log.info("stopping")
            await self._shutdown(forward_task)
            self.log.info("stopped")
            return 0
        finally:
            await life.stop_listening()
            for task in [*self._tasks, *([forward_task] if forward_task else [])]:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if self.forwarder is not None:
                await self.forwarder.close()
            life.release()

    def request_stop(self) -> None:
        self._stop.set()

    async def _start(self) -> None:
        conf = self.home.ossec_conf
        if not conf.is_file():
            raise SourceErrors([SourceError(str(conf), None, None, "file not found")])
        config = load_config(conf)
        client = read_client_section(conf)
        if self._manager_override is not None:
            self.manager = self._manager_override
        elif client.address is not None:
            self.manager = (client.address, client.port)
        else:
            raise SourceErrors(
                [
                    SourceError(
                        str(conf),
                        None,
                        "client",
                        "no manager address: add <client><server><address>HOST</address></server></client> "
                        "or pass --manager HOST[:PORT]",
                    )
                ]
            )
        host, port = self.manager
        forwarder = AgentForwarder(
            ForwarderConfig(
                home=self.home.root,
                manager_host=host,
                manager_port=port,
                backoff_initial=min(1.0, float(client.reconnect_seconds)),
                backoff_max=float(client.reconnect_seconds),
            )
        )
        await forwarder.start()
        self.forwarder = forwarder
        # An agent forwards its files and journal; syslog listeners belong to the manager.
        collectors = build_collectors(
            absolute_localfiles(config.localfiles, self.home.root),
            (),
            state_dir=self.home.collector_state,
            logger=logging.getLogger("threatlockdown.collect"),
        )
        self.collectors = collectors
        self._committer = PositionCommitter(collectors)
        self._tasks = [asyncio.create_task(c.run(self.queue), name=f"tld-{c.name}") for c in collectors]

    async def _forward_forever(self) -> None:
        while True:
            batch = [await self.queue.get()]
            self._busy = True
            try:
                await self._forward(batch)
            finally:
                self._busy = False

    async def _forward(self, batch: list[RawEvent]) -> None:
        while len(batch) < MAX_BATCH:
            try:
                batch.append(self.queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        for ev in batch:
            await self._submit(ev)
        for ev in batch:
            if ev.ack is not None:
                ev.ack()
        self._committer.commit()

    async def _submit(self, ev: RawEvent) -> None:
        assert self.forwarder is not None
        text = ev.text
        record = dict(ev.record) if ev.record is not None else None
        while True:
            try:
                await self.forwarder.submit(ev.location, text, ev.log_format, record)
                self.forwarded[ev.source or ev.location] += 1
                return
            except EventTooLargeError:
                # JSON escaping made it bigger than a frame: cut it, as Wazuh's logcollector cuts lines.
                self.truncated += 1
                if record is not None:
                    record = None
                else:
                    text = text[: len(text) * 3 // 4]
            except SpoolFullError as exc:
                # The manager has been away long enough to fill the spool: hold the collectors back.
                self.spool_full_waits += 1
                if self.spool_full_waits % 60 == 1:
                    self.log.warning("%s; reading waits until the manager takes events again", exc)
                await asyncio.sleep(_SPOOL_FULL_RETRY)

    async def _shutdown(self, forward_task: asyncio.Task[None]) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        # A batch being spooled is finished first: cancelling it between submit and ack would send
        # its events again after the next start.
        deadline = time.monotonic() + 5.0  # a full spool keeps a batch waiting: do not hang the stop
        while self._busy and not forward_task.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        forward_task.cancel()
        await asyncio.gather(forward_task, return_exceptions=True)
        try:
            async with asyncio.timeout(10.0):  # a full spool would wait for ever; unacked events are re-read
                while not self.queue.empty():
                    await self._forward([self.queue.get_nowait()])
        except TimeoutError:
            self.log.warning(
                "stopping with %d events not spooled; they are read again at the next start",
                self.queue.qsize(),
            )
        self._committer.commit()
        if self.forwarder is not None and self.forwarder.connected:
            await self.forwarder.wait_delivered(timeout=2.0)

    def status(self) -> dict[str, Any]:
        fwd = self.forwarder.stats() if self.forwarder is not None else None
        sources = {c.name: {**c.stats(), "forwarded": self.forwarded.get(c.name, 0)} for c in self.collectors}
        return {
            "role": "agent",
            "version": __version__,
            "pid": os.getpid(),
            "home": str(self.home.root),
            "uptime_seconds": round(time.monotonic() - self._started, 3),
            "manager": {"host": self.manager[0], "port": self.manager[1]} if self.manager else None,
            "forwarder": (
                {
                    "connected": fwd.connected,
                    "last_seq": fwd.last_seq,
                    "acked_seq": fwd.acked_seq,
                    "pending_events": fwd.pending_events,
                    "spool_bytes": fwd.spool_bytes,
                    "spool_full_errors": fwd.spool_full_errors,
                    "connect_failures": fwd.connect_failures,
                    "last_error": fwd.last_error,
                }
                if fwd is not None
                else None
            ),
            "sources": sources,
            "queue": {"depth": self.queue.qsize(), "capacity": self.queue.maxsize},
            "truncated_events": self.truncated,
        }
