"""The TLS listener under the manager's two ports: agents (``ManagerServer``) and enrollment
(``EnrollmentServer``).

Both use the manager's certificate (created on first start), start TLS inside each connection's handler
rather than in the server, so a failed handshake reaches the subclass to be counted and logged, and end
every open connection on ``close()``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path
from typing import Self

from .framing import close_gracefully, close_quietly
from .identity import ManagerIdentity, ensure_manager_identity, server_context
from .keys import normalized_address

log = logging.getLogger("threatlockdown.transport")


def peer_address(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        return normalized_address(str(peer[0]))
    return "unknown"


class TlsListener:
    """Subclasses implement ``_serve`` for one connection and name what they serve for the log."""

    listening_for = "connections"  # "listening for agents on HOST:PORT"
    serving = "connection"  # "unexpected error serving the connection from PEER"

    def __init__(
        self, home: Path, host: str | None, port: int, handshake_timeout: float, close_grace: float = 0.0
    ) -> None:
        self._home = home
        self._host = host
        self._port = port
        self._handshake_timeout = handshake_timeout
        self._close_grace = close_grace  # seconds a connection may take to finish on close(); 0: none
        self._server: asyncio.Server | None = None
        self._identity: ManagerIdentity | None = None
        self._ssl: ssl.SSLContext | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        self._identity = await asyncio.to_thread(ensure_manager_identity, self._home)
        self._prepare()
        self._ssl = server_context(self._identity)
        self._server = await asyncio.start_server(self._handle, self._host, self._port)
        log.info("listening for %s on %s:%d", self.listening_for, self._host or "*", self.port)

    def _prepare(self) -> None:
        """Read what the connections need before the first one arrives; errors stop start()."""

    @property
    def port(self) -> int:
        """The bound port (useful with port 0; with host None and port 0 each address family would get
        its own port, and this is the first one's)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def fingerprint(self) -> str:
        if self._identity is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._identity.fingerprint

    async def close(self) -> None:
        """Stop listening and end every connection, after up to ``close_grace`` seconds for each to finish
        what it is doing."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for writer in list(self._connections.values()):
            close_quietly(writer)
        pending = set(self._connections)
        if pending and self._close_grace > 0:
            _, pending = await asyncio.wait(pending, timeout=self._close_grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        await server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        peer = peer_address(writer)
        try:
            await self._serve(reader, writer, peer)
        except Exception:
            log.exception("unexpected error serving the %s from %s", self.serving, peer)
        finally:
            self._connections.pop(task, None)
            await close_gracefully(writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str) -> None:
        raise NotImplementedError

    async def _start_tls(self, writer: asyncio.StreamWriter) -> str | None:
        """Start TLS on the connection; why it failed, or None."""
        assert self._ssl is not None
        try:
            await writer.start_tls(self._ssl, ssl_handshake_timeout=self._handshake_timeout)
        except OSError as exc:  # ssl.SSLError, resets and the handshake timeout are all OSErrors
            return str(exc) or type(exc).__name__
        return None
