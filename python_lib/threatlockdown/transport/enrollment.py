"""Enrollment: an agent asks the manager for an ID and key over TLS (Wazuh's authd, port 1515).

Request ``{"type": "enroll", "version": 1, "name": ..., "password"?: ...}``; answer
``{"type": "enrolled", "id", "name", "ip", "key", "fingerprint"}`` or ``{"type": "refused", "reason"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .agent_files import write_agent_files
from .auth import Refusal, RefusalLog
from .errors import ConnectionClosed, EnrollmentRefused, FingerprintMismatch, ProtocolError
from .framing import close_quietly, read_frame, write_frame
from .identity import client_context, normalize_fingerprint, peer_fingerprint
from .keys import AgentKey, name_problem
from .messages import PROTOCOL_VERSION, get_int, get_str, require_type
from .registry import DuplicateAgentError, register_agent
from .stats import EnrollmentStats
from .tls_listener import TlsListener

log = logging.getLogger("threatlockdown.transport")


@dataclass(frozen=True)
class EnrollmentConfig:
    home: Path
    host: str | None = "0.0.0.0"  # None: every interface, IPv4 and IPv6
    port: int = 1515  # Wazuh's enrollment port
    password: str | None = None  # None: anyone who can reach the port may enroll
    use_source_ip: bool = False  # True: the new key only works from the address that enrolled
    replace_existing: bool = False  # True: enrolling an existing name replaces that agent
    handshake_timeout: float = 10.0
    refusal_log_interval: float = 60.0


@dataclass(frozen=True)
class EnrollmentResult:
    agent: AgentKey
    fingerprint: str


def _same_secret(given: str, expected: str) -> bool:
    # Hash first so the comparison takes the same time whatever the lengths.
    return hmac.compare_digest(
        hashlib.sha256(given.encode("utf-8", "replace")).digest(),
        hashlib.sha256(expected.encode("utf-8")).digest(),
    )


class EnrollmentServer(TlsListener):
    listening_for = "agent enrollment"
    serving = "enrollment request"

    def __init__(self, config: EnrollmentConfig) -> None:
        super().__init__(config.home, config.host, config.port, config.handshake_timeout)
        self._config = config
        self._refusal_log = RefusalLog(log, config.refusal_log_interval)
        self._lock = asyncio.Lock()  # one registration at a time in this process (flock covers others)
        self._enrolled = 0
        self._refused: Counter[str] = Counter()

    def stats(self) -> EnrollmentStats:
        return EnrollmentStats(enrolled=self._enrolled, refused=dict(self._refused))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str) -> None:
        failure = await self._start_tls(writer)
        if failure is not None:
            self._refuse(peer, Refusal("tls_handshake", failure, ""))
            close_quietly(writer)  # nothing can be said to a peer without TLS
            return
        try:
            async with asyncio.timeout(self._config.handshake_timeout):
                request = await read_frame(reader)
            agent = await self._enroll(request, peer)
            await write_frame(
                writer, {"type": "enrolled", **_agent_fields(agent), "fingerprint": self.fingerprint}
            )
            self._enrolled += 1
            log.info("enrolled agent %s (%s) from %s, IP field %s", agent.id, agent.name, peer, agent.ip)
        except Refusal as refusal:
            self._refuse(peer, refusal)
            await _send_refusal(writer, refusal.public)
        except TimeoutError:
            self._refuse(peer, Refusal("handshake_timeout", "no enrollment request in time", ""))
        except ProtocolError as exc:
            self._refuse(peer, Refusal("bad_request", str(exc), "bad request"))
            await _send_refusal(writer, "bad request")
        except (ConnectionClosed, OSError) as exc:
            log.debug("enrollment connection from %s ended: %s", peer, exc)

    def _refuse(self, peer: str, refusal: Refusal) -> None:
        self._refused[refusal.reason] += 1
        self._refusal_log.refused(peer, f"enrollment {refusal.reason}", refusal.detail)

    async def _enroll(self, request: dict[str, Any], peer: str) -> AgentKey:
        require_type(request, "enroll")
        version = get_int(request, "version")
        if version != PROTOCOL_VERSION:
            raise Refusal(
                "bad_request", f"protocol version {version}", f"unsupported protocol version {version}"
            )
        name = get_str(request, "name", max_len=256)
        password = request.get("password")
        if self._config.password is not None and not (
            isinstance(password, str) and _same_secret(password, self._config.password)
        ):
            raise Refusal(
                "bad_password", f"wrong or missing password for name {name[:64]!r}", "invalid password"
            )
        problem = name_problem(name)
        if problem:
            raise Refusal("bad_name", problem, problem)
        ip = peer if self._config.use_source_ip else "any"
        async with self._lock:
            try:
                return await asyncio.to_thread(
                    register_agent, self._config.home, name, ip, replace=self._config.replace_existing
                )
            except DuplicateAgentError as exc:
                raise Refusal("duplicate_name", str(exc), f"an agent named {name!r} already exists") from None


def _agent_fields(agent: AgentKey) -> dict[str, str]:
    return {"id": agent.id, "name": agent.name, "ip": agent.ip, "key": agent.key}


async def _send_refusal(writer: asyncio.StreamWriter, reason: str) -> None:
    with contextlib.suppress(OSError):
        await write_frame(writer, {"type": "refused", "reason": reason})


async def enroll(
    home: Path,
    manager_host: str,
    port: int,
    name: str,
    password: str | None,
    ca_fingerprint: str | None = None,
    *,
    timeout: float = 30.0,
) -> EnrollmentResult:
    """Ask the manager for an ID and key, then write ``home/etc/client.keys`` and the pinned
    ``home/etc/manager.fingerprint`` (replacing earlier ones).

    Without ``ca_fingerprint`` the first certificate seen is trusted (and the password is sent to it);
    with it, the server's certificate must match before anything is sent."""
    problem = name_problem(name)
    if problem:
        raise ValueError(problem)
    expected = normalize_fingerprint(ca_fingerprint) if ca_fingerprint is not None else None
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(manager_host, port, ssl=client_context())
        try:
            seen = peer_fingerprint(writer)
            if expected is not None and not hmac.compare_digest(seen, expected):
                raise FingerprintMismatch(expected, seen)
            request: dict[str, Any] = {"type": "enroll", "version": PROTOCOL_VERSION, "name": name}
            if password is not None:
                request["password"] = password
            await write_frame(writer, request)
            reply = await read_frame(reader)
        finally:
            close_quietly(writer)
    if reply["type"] == "refused":
        reason = reply.get("reason")
        shown = reason[:200] if isinstance(reason, str) else "no reason given"
        raise EnrollmentRefused(f"manager {manager_host}:{port} refused to enroll {name!r}: {shown}")
    require_type(reply, "enrolled")
    agent = AgentKey(*(get_str(reply, field, max_len=256) for field in ("id", "name", "ip", "key")))
    problems = agent.problems() + (
        [f"asked for name {name!r}, got {agent.name!r}"] if agent.name != name else []
    )
    if problems:
        raise ProtocolError("bad_message", "enrollment answer: " + "; ".join(problems))
    try:
        fingerprint = normalize_fingerprint(get_str(reply, "fingerprint"))
    except ValueError as exc:
        raise ProtocolError("bad_message", f"enrollment answer: {exc}") from None
    if fingerprint != seen:
        raise ProtocolError(
            "bad_message",
            f"enrollment answer names certificate {fingerprint}, but the server presented {seen}",
        )
    await asyncio.to_thread(write_agent_files, home, agent, fingerprint)
    log.info("enrolled as agent %s (%s) with manager %s:%d", agent.id, agent.name, manager_host, port)
    return EnrollmentResult(agent, fingerprint)
