"""The control socket in var/run/: ``status``, ``reload`` and ``stop`` for the CLI.

One JSON object per line each way: ``{"command": "status"}`` -> ``{"ok": true, ...}``. The socket is
mode 0600, so only the daemon's user (root) can use it.
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

Handler = Callable[[], Awaitable[dict[str, Any]]]
MAX_REQUEST = 4096


class ControlError(Exception):
    """The daemon could not be reached or did not answer."""


class ControlServer:
    def __init__(self, path: Path, handlers: Mapping[str, Handler], logger: logging.Logger) -> None:
        self.path = path
        self._handlers = dict(handlers)
        self._logger = logger
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by a killed daemon; the pidfile lock says no other one runs
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
            line = await asyncio.wait_for(reader.readline(), 10.0)
            reply = await self._answer(line)
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line[:MAX_REQUEST]) if len(line) <= MAX_REQUEST else None
        except ValueError:
            request = None
        command = request.get("command") if isinstance(request, dict) else None
        handler = self._handlers.get(command) if isinstance(command, str) else None
        if handler is None:
            return {"ok": False, "error": f"unknown request; expected one of {sorted(self._handlers)}"}
        try:
            return await handler()
        except Exception as exc:
            self._logger.exception("control request %r failed", command)
            return {"ok": False, "error": str(exc)}


def control_request(path: Path, command: str, timeout: float = 30.0) -> dict[str, Any]:
    """Send one request to a running daemon and return its answer; ControlError if it cannot."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(json.dumps({"command": command}).encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except FileNotFoundError:
        raise ControlError(f"{path}: no control socket (is the daemon running?)") from None
    except ConnectionRefusedError:
        raise ControlError(f"{path}: nobody listens (the daemon is not running)") from None
    except TimeoutError:
        raise ControlError(f"{path}: no answer within {timeout} s") from None
    except OSError as exc:
        raise ControlError(f"{path}: {exc}") from None
    try:
        reply = json.loads(b"".join(chunks))
    except ValueError:
        raise ControlError(f"{path}: the daemon sent no valid answer") from None
    if not isinstance(reply, dict):
        raise ControlError(f"{path}: the daemon sent no valid answer")
    return reply
