"""The daemon's control socket in var/run/: ``status``, ``reload`` and ``stop`` for the CLI.

``{"command": "status"}`` -> ``{"ok": true, ...}`` over the shared control socket (see ``controlsock``);
these commands take no arguments.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from ..controlsock import ControlError, ControlSocketServer, Handler, send_request

__all__ = ["ControlError", "ControlServer", "control_request"]

CommandHandler = Callable[[], Awaitable[dict[str, Any]]]
MAX_REQUEST = 4096


def _ignoring_arguments(handler: CommandHandler) -> Handler:
    async def answer(_request: dict[str, Any]) -> dict[str, Any]:
        return await handler()

    return answer


class ControlServer(ControlSocketServer):
    def __init__(self, path: Path, handlers: Mapping[str, CommandHandler], logger: logging.Logger) -> None:
        super().__init__(
            path,
            {name: _ignoring_arguments(handler) for name, handler in handlers.items()},
            logger,
            max_request=MAX_REQUEST,
        )


def control_request(path: Path, command: str, timeout: float = 30.0) -> dict[str, Any]:
    """Send one request to a running daemon and return its answer; ControlError if it cannot."""
    return send_request(path, {"command": command}, timeout, "the daemon")
