"""The engine's control socket (``var/run/tld-ar.sock``): how ``tld ar block/unblock/list`` reach a
running engine, inside ``tld manager`` or ``tld runner``.

One JSON object per line each way, e.g. ``{"command": "block", "command_name": "firewall-drop",
"target": "web1", "srcip": "198.51.100.7", "timeout": 600}`` -> ``{"ok": true, "key": ...}``.
The socket is mode 0600: only the engine's user (root) can use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from .engine import EngineError, ResponseEngine

SOCKET_NAME = "tld-ar.sock"
MAX_REQUEST = 65536
MAX_SOCKET_PATH = 107  # sockaddr_un.sun_path without its NUL


class ControlError(Exception):
    """No engine answered at the socket."""


def _int_or_none(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise EngineError(f"{name} must be a whole number")
    return value


def _str_or_none(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise EngineError(f"{name} must be a string")
    return value


class ResponseControlServer:
    def __init__(self, path: Path, engine: ResponseEngine, logger: logging.Logger | None = None) -> None:
        self.path = path
        self.engine = engine
        self.log = logger or logging.getLogger("threatlockdown.response")
        self._server: asyncio.Server | None = None
        self._handlers: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]] = {
            "status": self._status,
            "list": self._list,
            "block": self._block,
            "unblock": self._unblock,
        }

    async def start(self) -> None:
        if len(str(self.path).encode()) > MAX_SOCKET_PATH:
            raise OSError(f"{self.path}: path too long for a unix socket; use a shorter home")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by a killed engine; the daemon's pidfile says no other one runs
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
            request = json.loads(line) if len(line) <= MAX_REQUEST else None
        except ValueError:
            request = None
        if not isinstance(request, dict):
            return {"ok": False, "error": "expected one JSON object per line"}
        handler = self._handlers.get(str(request.get("command")))
        if handler is None:
            return {"ok": False, "error": f"unknown request; expected one of {sorted(self._handlers)}"}
        try:
            return await handler(request)
        except EngineError as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:
            self.log.exception("control request %r failed", request.get("command"))
            return {"ok": False, "error": str(exc)}

    async def _status(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, **self.engine.status()}

    async def _list(self, request: dict[str, Any]) -> dict[str, Any]:
        now = self.engine.clock()
        return {"ok": True, "active": [e.to_json(now) for e in self.engine.state.active.values()]}

    async def _block(self, request: dict[str, Any]) -> dict[str, Any]:
        command = _str_or_none(request.get("command_name"), "command_name")
        target = _str_or_none(request.get("target"), "target")
        if command is None or target is None:
            raise EngineError("block needs command_name and target")
        result = await self.engine.block(
            command,
            target,
            srcip=_str_or_none(request.get("srcip"), "srcip"),
            user=_str_or_none(request.get("user"), "user"),
            timeout=_int_or_none(request.get("timeout"), "timeout"),
        )
        self.engine.state.flush()
        return result

    async def _unblock(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self.engine.unblock(
            key=_str_or_none(request.get("key"), "key"),
            srcip=_str_or_none(request.get("srcip"), "srcip"),
            host=_str_or_none(request.get("target"), "target"),
            forget=bool(request.get("forget", False)),
        )


def request(path: Path, message: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """Send one request to a running engine; ControlError when none answers."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(json.dumps(message).encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except (FileNotFoundError, ConnectionRefusedError):
        raise ControlError(f"{path}: no running engine (tld manager or tld runner) listens here") from None
    except TimeoutError:
        raise ControlError(f"{path}: no answer within {timeout:g} s") from None
    except OSError as exc:
        raise ControlError(f"{path}: {exc}") from None
    try:
        reply = json.loads(b"".join(chunks))
    except ValueError:
        raise ControlError(f"{path}: the engine sent no valid answer") from None
    if not isinstance(reply, dict):
        raise ControlError(f"{path}: the engine sent no valid answer")
    return reply
