"""Manager side: accepts agents over TLS, authenticates them and receives their events with acks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SourceErrors
from .auth import NONCE_BYTES, Refusal, RefusalLog, proof_matches
from .errors import ConnectionClosed, ProtocolError
from .framing import close_quietly, read_frame, write_frame
from .keys import new_agent_key
from .messages import (
    PROTOCOL_VERSION,
    AgentEvent,
    AgentIdentity,
    get_int,
    get_str,
    get_stream,
    parse_events,
    require_type,
)
from .paths import HomeLayout
from .registry import KeyStore
from .seqstate import SeqStateStore, StreamState
from .stats import ConnectedAgent, ManagerStats
from .tls_listener import TlsListener

log = logging.getLogger("threatlockdown.transport")

OnEvents = Callable[[AgentIdentity, list[AgentEvent]], Awaitable[None]]

# What a refused agent is told. Unknown ID, wrong name and wrong key look the same from outside,
# so the answer does not tell a prober which agent IDs exist; the manager log has the real reason.
_AUTH_FAILED = "authentication failed"


@dataclass(frozen=True)
class ManagerConfig:
    home: Path
    host: str | None = "0.0.0.0"  # None: every interface, IPv4 and IPv6
    port: int = 1514  # Wazuh's agent port
    handshake_timeout: float = 10.0  # TLS + hello/challenge/auth must finish within this
    idle_timeout: float = 120.0  # agents send a keepalive every 30 s by default
    refusal_log_interval: float = 60.0
    close_timeout: float = 5.0  # on close(), how long a session may take to finish its current batch

    def __post_init__(self) -> None:
        for name in ("handshake_timeout", "idle_timeout", "refusal_log_interval", "close_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"manager transport setting {name} must be positive")


@dataclass(eq=False)
class _Session:
    identity: AgentIdentity
    writer: asyncio.StreamWriter
    since: float
    last_seen: float
    events_received: int = 0
    replaced: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)


def _shown(text: str) -> str:
    """Peer-supplied text made safe for one log line."""
    return repr(text[:64])


class ManagerServer(TlsListener):
    """Listens for agents; see the package docstring for the protocol and guarantees."""

    listening_for = "agents"

    def __init__(self, config: ManagerConfig, on_events: OnEvents) -> None:
        super().__init__(
            config.home, config.host, config.port, config.handshake_timeout, close_grace=config.close_timeout
        )
        self._config = config
        self._on_events = on_events
        layout = HomeLayout(config.home)
        self._keys = KeyStore(layout.client_keys)
        self._seq = SeqStateStore(layout.agent_seq_dir)
        self._refusal_log = RefusalLog(log, config.refusal_log_interval)
        # Unknown IDs are checked against a random key so they cost the same time as known ones.
        self._dummy_key = new_agent_key()
        self._sessions: dict[str, _Session] = {}
        self._agent_locks: dict[str, asyncio.Lock] = {}
        self._refused: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()
        self._events_received = 0
        self._duplicates = 0
        self._gaps = 0
        self._replaced = 0

    def _prepare(self) -> None:
        self._keys.load()  # errors raise SourceErrors, so a broken client.keys stops start()

    async def close(self) -> None:
        """Stop listening and end every session; a batch being handed to on_events is finished first
        (up to close_timeout), so it is persisted and not resent."""
        if self._server is not None:
            await super().close()
            log.info("stopped listening for agents")

    def stats(self) -> ManagerStats:
        connected = tuple(
            ConnectedAgent(
                s.identity.id, s.identity.name, s.identity.ip, s.since, s.last_seen, s.events_received
            )
            for s in sorted(self._sessions.values(), key=lambda s: s.identity.id)
        )
        return ManagerStats(
            connected=connected,
            refused=dict(self._refused),
            protocol_errors=dict(self._errors),
            events_received=self._events_received,
            duplicates_dropped=self._duplicates,
            sequence_gaps=self._gaps,
            sessions_replaced=self._replaced,
        )

    # --- one connection ------------------------------------------------------------------------

    def _dropped(self, peer: str, kind: str, detail: str) -> None:
        self._errors[kind] += 1
        self._refusal_log.dropped(peer, kind, detail)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str) -> None:
        failure = await self._start_tls(writer)
        if failure is not None:
            self._dropped(peer, "tls_handshake", failure)
            return
        try:
            async with asyncio.timeout(self._config.handshake_timeout):
                identity, stream, acked = await self._authenticate(reader, writer, peer)
        except Refusal as refusal:
            self._refused[refusal.reason] += 1
            self._refusal_log.refused(peer, refusal.reason, refusal.detail)
            with contextlib.suppress(OSError):  # the peer may already be gone; it was refused anyway
                await write_frame(writer, {"type": "refused", "reason": refusal.public})
            return
        except TimeoutError:
            self._refused["handshake_timeout"] += 1
            self._refusal_log.refused(peer, "handshake_timeout", "no complete handshake in time")
            return
        except ProtocolError as exc:
            self._dropped(peer, exc.kind, f"during the handshake: {exc}")
            return
        except (ConnectionClosed, OSError):
            return
        await self._run_session(reader, writer, identity, stream, acked)

    async def _authenticate(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> tuple[AgentIdentity, str, int]:
        """Returns who the agent is, its stream ID and the highest seq it knows to be acknowledged."""
        hello = await read_frame(reader)
        require_type(hello, "hello")
        version = get_int(hello, "version")
        if version != PROTOCOL_VERSION:
            raise Refusal(
                "unsupported_version",
                f"agent speaks protocol version {version}",
                f"unsupported protocol version {version}; this manager speaks {PROTOCOL_VERSION}",
            )
        agent_id = get_str(hello, "id", max_len=64)
        name = get_str(hello, "name", max_len=256)
        stream = get_stream(hello)
        acked = get_int(hello, "acked")
        nonce = secrets.token_bytes(NONCE_BYTES)
        await write_frame(writer, {"type": "challenge", "nonce": nonce.hex()})
        answer = await read_frame(reader)
        require_type(answer, "auth")
        proof = get_str(answer, "proof", max_len=128)

        entry = self._keys.lookup(agent_id)
        matches = proof_matches(entry.key if entry else self._dummy_key, nonce, agent_id, name, proof)
        who = f"agent ID {_shown(agent_id)} name {_shown(name)}"
        if entry is None:
            raise Refusal("unknown_agent", f"{who}: no such agent in client.keys", _AUTH_FAILED)
        if entry.name != name:
            raise Refusal(
                "name_mismatch", f"{who}: client.keys names agent {entry.id} {entry.name!r}", _AUTH_FAILED
            )
        if not matches:
            raise Refusal("bad_key", f"{who}: wrong key (HMAC does not match)", _AUTH_FAILED)
        if not entry.allows(peer):
            # Checked after the key so that only a key holder learns about the address restriction.
            raise Refusal(
                "ip_not_allowed", f"{who}: client.keys allows only {entry.ip}", "source address not allowed"
            )
        return AgentIdentity(entry.id, entry.name, peer), stream, acked

    async def _take_over(self, identity: AgentIdentity, writer: asyncio.StreamWriter) -> _Session:
        """Newest session wins: an agent that reconnects after a network cut is usually the same agent,
        and its old TCP connection may stay half-open for minutes."""
        old = self._sessions.get(identity.id)
        if old is not None:
            old.replaced = True
            self._replaced += 1
            log.warning(
                "agent %s (%s) connected again from %s; closing its older session from %s",
                identity.id,
                identity.name,
                identity.ip,
                old.identity.ip,
            )
            close_quietly(old.writer)
            await old.done.wait()  # its current batch is finished and persisted first
        now = time.time()
        session = _Session(identity, writer, since=now, last_seen=now)
        self._sessions[identity.id] = session
        return session

    async def _run_session(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        identity: AgentIdentity,
        stream: str,
        acked: int,
    ) -> None:
        async with self._agent_locks.setdefault(identity.id, asyncio.Lock()):
            # Only after an older session has finished its batch is the persisted seq current.
            session = await self._take_over(identity, writer)
        try:
            state = await asyncio.to_thread(self._seq.load, identity.id)
            if state is None or state.stream != stream:
                if state is not None:
                    log.info(
                        "agent %s (%s) started a new event stream (its spool was recreated)",
                        identity.id,
                        identity.name,
                    )
                # Events up to ``acked`` were acknowledged under the old stream; expect the next one.
                state = StreamState(stream, acked)
            agent = {"id": identity.id, "name": identity.name, "ip": identity.ip}
            await write_frame(writer, {"type": "ok", "last_seq": state.last_seq, "agent": agent})
            log.info("agent %s (%s) connected from %s", identity.id, identity.name, identity.ip)
            await self._receive(reader, writer, session, state)
        except SourceErrors as exc:  # the agent's seq file is damaged: an operator has to look
            self._dropped(identity.ip, "state_error", str(exc))
        except TimeoutError:
            self._dropped(
                identity.ip,
                "idle_timeout",
                f"agent {identity.id} sent nothing for {self._config.idle_timeout} s",
            )
        except ProtocolError as exc:
            self._dropped(identity.ip, exc.kind, f"agent {identity.id}: {exc}")
        except (ConnectionClosed, OSError) as exc:
            log.info("agent %s (%s) disconnected: %s", identity.id, identity.name, exc or type(exc).__name__)
        finally:
            if self._sessions.get(identity.id) is session:
                del self._sessions[identity.id]
            session.done.set()

    async def _receive(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        session: _Session,
        state: StreamState,
    ) -> None:
        while not session.replaced:
            async with asyncio.timeout(self._config.idle_timeout):
                message = await read_frame(reader)
            session.last_seen = time.time()
            if message["type"] == "keepalive":
                await write_frame(writer, {"type": "keepalive"})
            elif message["type"] == "events":
                state = await self._accept(session, state, parse_events(message))
                await write_frame(writer, {"type": "ack", "seq": state.last_seq})
            else:
                raise ProtocolError("unexpected_message", f"unexpected {message['type'][:40]!r} message")

    async def _accept(self, session: _Session, state: StreamState, events: list[AgentEvent]) -> StreamState:
        """Hand new events to the daemon, then persist the sequence number; only then may we ack."""
        fresh = [e for e in events if e.seq > state.last_seq]
        self._duplicates += len(events) - len(fresh)
        if not fresh:
            return state
        who = session.identity
        if fresh[0].seq != state.last_seq + 1:
            self._gaps += 1
            log.warning(
                "agent %s (%s): events %d..%d never arrived (lost on the agent side)",
                who.id,
                who.name,
                state.last_seq + 1,
                fresh[0].seq - 1,
            )
        try:
            await self._on_events(who, fresh)
        except Exception as exc:
            log.exception("on_events failed for agent %s; the agent will resend", who.id)
            raise ProtocolError("callback_error", f"on_events failed: {exc}") from exc
        new_state = StreamState(state.stream, fresh[-1].seq)
        try:
            await asyncio.to_thread(self._seq.save, who.id, new_state)
        except OSError as exc:
            log.error("cannot persist the sequence number of agent %s: %s", who.id, exc)
            raise ProtocolError("state_error", f"cannot persist the sequence number: {exc}") from exc
        self._events_received += len(fresh)
        session.events_received += len(fresh)
        return new_state
