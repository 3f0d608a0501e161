"""Agent side: spool submitted events on disk and deliver them to the manager, in order, until acked."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .agent_files import read_agent_key, read_pinned_fingerprint
from .auth import auth_proof
from .errors import AuthenticationRefused, ProtocolError, TransportError
from .framing import close_quietly, frame_bytes, read_frame, write_frame
from .identity import check_pinned, client_context, normalize_fingerprint
from .keys import AgentKey
from .messages import MAX_EVENT_BYTES, PROTOCOL_VERSION, events_payload, get_int, get_str, require_type
from .paths import HomeLayout
from .spool import FsyncPolicy, Spool
from .stats import ForwarderStats

log = logging.getLogger("threatlockdown.transport")


@dataclass(frozen=True)
class ForwarderConfig:
    home: Path
    manager_host: str
    manager_port: int = 1514
    # Pinned SHA-256 of the manager certificate; None reads etc/manager.fingerprint (written by enroll).
    manager_fingerprint: str | None = None
    fsync: FsyncPolicy = "interval"
    fsync_interval: float = 1.0
    max_spool_bytes: int = 64 * 1024 * 1024
    segment_bytes: int = 1024 * 1024
    max_batch_events: int = 500
    window: int = 8  # batches sent but not yet acknowledged
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    connect_timeout: float = 10.0  # TCP + TLS + authentication
    keepalive_interval: float = 30.0  # sent when idle; the manager answers, proving the link works
    ack_timeout: float = 60.0  # no answer for this long with batches in flight: reconnect

    def __post_init__(self) -> None:
        positive = {
            "fsync_interval": self.fsync_interval,
            "max_batch_events": self.max_batch_events,
            "window": self.window,
            "backoff_initial": self.backoff_initial,
            "connect_timeout": self.connect_timeout,
            "keepalive_interval": self.keepalive_interval,
            "ack_timeout": self.ack_timeout,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"agent forwarder setting {name} must be positive, not {value}")
        if self.backoff_max < self.backoff_initial:
            raise ValueError("agent forwarder setting backoff_max must be at least backoff_initial")
        if self.fsync not in ("always", "interval", "never"):
            raise ValueError(
                f"agent forwarder setting fsync must be always, interval or never, not {self.fsync!r}"
            )


class AgentForwarder:
    """Accepts events with ``submit`` and delivers them exactly once, in order, across disconnections
    and restarts of either side (see the package docstring)."""

    def __init__(self, config: ForwarderConfig) -> None:
        self._config = config
        self._spool = Spool(
            HomeLayout(config.home).spool_dir,
            max_bytes=config.max_spool_bytes,
            segment_bytes=config.segment_bytes,
            fsync=config.fsync,
        )
        self._agent: AgentKey | None = None
        self._fingerprint = ""
        self._tasks: list[asyncio.Task[None]] = []
        self._new_data = asyncio.Event()
        self._progress = asyncio.Event()
        self._rng = random.Random()
        self._started = False
        self._connected = False
        self._reached_ok = False
        self._failures = 0
        self._last_error = ""

    async def start(self) -> None:
        """Read the agent key and pinned fingerprint (SourceErrors if missing or bad), reopen the spool
        and start delivering in the background."""
        if self._started:
            raise RuntimeError("AgentForwarder already started")
        self._agent = read_agent_key(self._config.home)
        if self._config.manager_fingerprint is not None:
            self._fingerprint = normalize_fingerprint(self._config.manager_fingerprint)
        else:
            self._fingerprint = read_pinned_fingerprint(self._config.home)
        await asyncio.to_thread(self._spool.open)
        self._started = True
        self._tasks = [asyncio.create_task(self._deliver_forever(), name="tld-agent-sender")]
        if self._config.fsync == "interval":
            self._tasks.append(asyncio.create_task(self._sync_periodically(), name="tld-agent-fsync"))
        if self._spool.pending:
            log.info(
                "agent %s: %d events in the spool from before the restart",
                self._agent.id,
                self._spool.pending,
            )

    async def submit(
        self, location: str, text: str, log_format: str, record: dict[str, Any] | None = None
    ) -> int:
        """Spool one event and return its sequence number.

        Raises SpoolFullError when the spool is at its size limit (counted in stats) and
        EventTooLargeError when the event alone exceeds MAX_EVENT_BYTES as JSON."""
        if not self._started:
            raise RuntimeError("AgentForwarder.start() was not called")
        seq = self._spool.append(location, text, log_format, record)
        self._new_data.set()
        if self._config.fsync == "always":
            await self._spool.sync()
        return seq

    async def wait_delivered(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is acknowledged; False if ``timeout`` ran out."""
        target = self._spool.last_seq
        try:
            async with asyncio.timeout(timeout):
                while True:
                    self._progress.clear()
                    if self._spool.acked_seq >= target:
                        return True
                    await self._progress.wait()
        except TimeoutError:
            return False

    async def close(self) -> None:
        """Stop sending and close the spool; unacknowledged events stay on disk for the next start."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._started:
            await self._spool.close()
        self._started = False
        self._connected = False

    async def __aenter__(self) -> AgentForwarder:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._connected

    def stats(self) -> ForwarderStats:
        return ForwarderStats(
            connected=self._connected,
            last_seq=self._spool.last_seq,
            acked_seq=self._spool.acked_seq,
            pending_events=self._spool.pending,
            spool_bytes=self._spool.size_bytes,
            spool_full_errors=self._spool.full_errors,
            connect_failures=self._failures,
            last_error=self._last_error,
        )

    # --- background tasks ----------------------------------------------------------------------

    async def _sync_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._config.fsync_interval)
            try:
                await self._spool.sync()
            except OSError as exc:
                log.error("cannot fsync the spool %s: %s", self._spool.directory, exc)

    async def _deliver_forever(self) -> None:
        config = self._config
        delay = config.backoff_initial
        while True:
            self._reached_ok = False
            try:
                await self._session()
                error = "session ended"
            except (OSError, TransportError) as exc:  # TimeoutError is an OSError
                error = str(exc) or type(exc).__name__
            except Exception as exc:
                # A bug must not silently end delivery while submit() keeps filling the spool.
                log.exception("unexpected error in the agent sender")
                error = f"internal error: {exc!r}"
            self._connected = False
            self._failures += 1
            self._last_error = error
            if self._reached_ok:
                delay = config.backoff_initial  # it worked a moment ago: retry soon
            pause = self._rng.uniform(delay / 2, delay)  # jitter: a restarted manager is not hit all at once
            log.warning(
                "agent %s: manager %s:%d: %s; retrying in %.1f s",
                self._agent.id if self._agent else "?",
                config.manager_host,
                config.manager_port,
                error,
                pause,
            )
            await asyncio.sleep(pause)
            delay = min(delay * 2, config.backoff_max)

    async def _session(self) -> None:
        config = self._config
        async with asyncio.timeout(config.connect_timeout):
            reader, writer = await asyncio.open_connection(
                config.manager_host, config.manager_port, ssl=client_context()
            )
        try:
            check_pinned(writer, self._fingerprint)
            async with asyncio.timeout(config.connect_timeout):
                manager_last = await self._handshake(reader, writer)
            self._reached_ok = True
            self._connected = True
            log.info(
                "agent %s: connected to the manager %s:%d, %d events to deliver",
                self._agent.id if self._agent else "?",
                config.manager_host,
                config.manager_port,
                self._spool.pending,
            )
            if manager_last > self._spool.last_seq:
                # The manager has seen more of this stream than we ever wrote: our spool state is
                # older than the manager's (restored from a copy?). Without a new stream every event
                # we send would be dropped as a duplicate.
                log.error(
                    "agent spool reached seq %d, but the manager already has %d; starting a new stream",
                    self._spool.last_seq,
                    manager_last,
                )
                await self._spool.new_stream()
                raise ProtocolError("stream_reset", "reconnecting with a new event stream")
            if manager_last > self._spool.acked_seq:
                await self._spool.acknowledge(manager_last)  # persisted there, but our ack was lost
                self._progress.set()
            await self._exchange(reader, writer)
        finally:
            close_quietly(writer)

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
        agent = self._agent
        assert agent is not None
        hello = {
            "type": "hello",
            "version": PROTOCOL_VERSION,
            "id": agent.id,
            "name": agent.name,
            "stream": self._spool.stream,
            "acked": self._spool.acked_seq,
        }
        await write_frame(writer, hello)
        challenge = await read_frame(reader)
        _raise_if_refused(challenge, agent)
        require_type(challenge, "challenge")
        try:
            nonce = bytes.fromhex(get_str(challenge, "nonce", max_len=256))
        except ValueError:
            raise ProtocolError("bad_message", "challenge nonce is not hex") from None
        await write_frame(
            writer, {"type": "auth", "proof": auth_proof(agent.key, nonce, agent.id, agent.name)}
        )
        answer = await read_frame(reader)
        _raise_if_refused(answer, agent)
        require_type(answer, "ok")
        return get_int(answer, "last_seq")

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        in_flight: deque[int] = deque()  # last seq of each batch sent and not yet acknowledged
        window_open = asyncio.Event()
        tasks = {
            asyncio.create_task(self._send(writer, in_flight, window_open)),
            asyncio.create_task(self._receive(reader, in_flight, window_open)),
        }
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # raises what ended the session
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _send(
        self, writer: asyncio.StreamWriter, in_flight: deque[int], window_open: asyncio.Event
    ) -> None:
        config = self._config
        next_seq = self._spool.acked_seq + 1
        while True:
            while len(in_flight) >= config.window:
                window_open.clear()
                await window_open.wait()
            self._new_data.clear()
            next_seq = max(next_seq, self._spool.acked_seq + 1)
            if next_seq <= self._spool.last_seq:
                objects = self._spool.read(next_seq, config.max_batch_events, MAX_EVENT_BYTES)
                writer.write(frame_bytes(events_payload(objects)))
                await writer.drain()
                next_seq += len(objects)
                in_flight.append(next_seq - 1)
                continue
            if not await self._wait_for_new_data(config.keepalive_interval):
                await write_frame(writer, {"type": "keepalive"})

    async def _wait_for_new_data(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._new_data.wait()
        except TimeoutError:
            return False
        return True

    async def _receive(
        self, reader: asyncio.StreamReader, in_flight: deque[int], window_open: asyncio.Event
    ) -> None:
        config = self._config
        while True:
            # Idle, we still expect the answer to our keepalive within keepalive_interval + ack_timeout.
            timeout = config.ack_timeout if in_flight else config.keepalive_interval + config.ack_timeout
            try:
                async with asyncio.timeout(timeout):
                    message = await read_frame(reader)
            except TimeoutError:
                raise ProtocolError(
                    "ack_timeout", f"no answer from the manager for {timeout:.0f} s"
                ) from None
            if message["type"] == "ack":
                seq = get_int(message, "seq")
                while in_flight and in_flight[0] <= seq:
                    in_flight.popleft()
                await self._spool.acknowledge(seq)
                self._progress.set()
                window_open.set()
            elif message["type"] != "keepalive":
                raise ProtocolError("unexpected_message", f"unexpected {message['type'][:40]!r} message")


def _raise_if_refused(message: dict[str, Any], agent: AgentKey) -> None:
    if message["type"] == "refused":
        reason = message.get("reason")
        shown = reason[:200] if isinstance(reason, str) else "no reason given"
        raise AuthenticationRefused(f"manager refused agent {agent.id} ({agent.name}): {shown}")
