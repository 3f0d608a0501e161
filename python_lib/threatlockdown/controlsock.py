"""Control sockets: a Unix socket where a running daemon answers one JSON request line per connection.

Used by the daemons (``tld manager``/``tld agent``: status, reload, stop) and by the active-response engine
(``tld ar``). One JSON object per line each way, ``{"command": NAME, ...}`` -> ``{"ok": ..., ...}``. The
socket is created with mode 0600, so only the daemon's user (root) can use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]

MAX_SOCKET_PATH = 107  # sockaddr_un.sun_path without its NUL
_READ_TIMEOUT = 10.0  # a client that connects but says nothing does not hold a connection for ever


class ControlError(Exception):
    """The daemon could not be reached or did not answer."""


class ControlSocketServer:
    """Answers each request with the handler named by its ``command``.

    A handler's exception becomes ``{"ok": false, "error": ...}``; those of the ``expected`` types are
    refusals the client caused, the others are logged with their traceback.
    """

    def __init__(
        self,
        path: Path,
        handlers: Mapping[str, Handler],
        logger: logging.Logger,
        *,
        max_request: int,
        expected: tuple[type[Exception], ...] = (),
    ) -> None:
        self.path = path
        self._handlers = dict(handlers)
        self._logger = logger
        self._max_request = max_request
        self._expected = expected
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        if len(str(self.path).encode()) > MAX_SOCKET_PATH:
            raise OSError(f"{self.path}: path too long for a unix socket; use a shorter home")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by a killed daemon; its pidfile lock says no other one runs
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        finally:
            os.umask(old)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), _READ_TIMEOUT)
            reply = await self._answer(line)
            writer.write(json.dumps(reply, default=str).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line) if len(line) <= self._max_request else None
        except ValueError:
            request = None
        if not isinstance(request, dict):
            return {"ok": False, "error": "expected one JSON object per line"}
        command = request.get("command")
        handler = self._handlers.get(command) if isinstance(command, str) else None
        if handler is None:
            return {"ok": False, "error": f"unknown request; expected one of {sorted(self._handlers)}"}
        try:
            return await handler(request)
        except self._expected as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:
            self._logger.exception("control request %r failed", command)
            return {"ok": False, "error": str(exc)}


def send_request(path: Path, message: Mapping[str, Any], timeout: float, peer: str) -> dict[str, Any]:
    """Send one request and return the answer; ControlError, naming ``peer`` ("the daemon"), if none."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(json.dumps(message).encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except FileNotFoundError:
        raise ControlError(f"{path}: no control socket (is {peer} running?)") from None
    except ConnectionRefusedError:
        raise ControlError(f"{path}: nobody listens ({peer} is not running)") from None
    except TimeoutError:
        raise ControlError(f"{path}: no answer within {timeout:g} s") from None
    except OSError as exc:
        raise ControlError(f"{path}: {exc}") from None
    try:
        reply = json.loads(b"".join(chunks))
    except ValueError:
        raise ControlError(f"{path}: {peer} sent no valid answer") from None
    if not isinstance(reply, dict):
        raise ControlError(f"{path}: {peer} sent no valid answer")
    return reply
