"""The engine's control socket (``var/run/tld-ar.sock``): how ``tld ar block/unblock/list`` reach a
running engine, inside ``tld manager`` or ``tld runner``.

One JSON object per line each way, e.g. ``{"command": "block", "command_name": "firewall-drop",
"target": "web1", "srcip": "198.51.100.7", "timeout": 600}`` -> ``{"ok": true, "key": ...}``.
The socket is mode 0600: only the engine's user (root) can use it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..controlsock import ControlError, ControlSocketServer, send_request
from .engine import EngineError, ResponseEngine

__all__ = ["ControlError", "ResponseControlServer", "request"]

SOCKET_NAME = "tld-ar.sock"
MAX_REQUEST = 65536


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


class ResponseControlServer(ControlSocketServer):
    def __init__(self, path: Path, engine: ResponseEngine, logger: logging.Logger | None = None) -> None:
        self.engine = engine
        self.log = logger or logging.getLogger("threatlockdown.response")
        handlers = {
            "status": self._status,
            "list": self._list,
            "block": self._block,
            "unblock": self._unblock,
        }
        # EngineError is a refused request (bad target, unknown key): the answer says why, no traceback.
        super().__init__(path, handlers, self.log, max_request=MAX_REQUEST, expected=(EngineError,))

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
    return send_request(path, message, timeout, "the engine")
