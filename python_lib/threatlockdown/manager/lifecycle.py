"""What the manager and the agent daemons do the same way around their own work.

One daemon per home (the pidfile lock), a control socket that answers at least ``status`` and ``stop``,
SIGTERM/SIGINT to stop, and start-up failures told both to the log and to whoever waits for the daemon
to be ready (the parent of a background start, see ``process.daemonize``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import SourceErrors
from .control import CommandHandler, ControlServer
from .home import Home
from .process import AlreadyRunning, PidFile

Ready = Callable[[str | None], None]  # None once serving, else why it could not start


def status_and_stop(
    status: Callable[[], dict[str, Any]], request_stop: Callable[[], None]
) -> dict[str, CommandHandler]:
    """The control commands every daemon answers."""

    async def status_request() -> dict[str, Any]:
        return {"ok": True, **status()}

    async def stop_request() -> dict[str, Any]:
        # Stop after this answer is on its way, so the client learns the request was taken.
        asyncio.get_running_loop().call_soon(request_stop)
        return {"ok": True, "stopping": True}

    return {"status": status_request, "stop": stop_request}


class DaemonLifecycle:
    """Used by a daemon's ``run()``: ``claim_home()`` first, ``release()`` last, in a ``finally``."""

    def __init__(
        self, home: Home, log: logging.Logger, ready: Ready | None, commands: Mapping[str, CommandHandler]
    ) -> None:
        self.home = home
        self.log = log
        self.notify: Ready = ready or (lambda _error: None)
        self._pidfile = PidFile(home.pidfile)
        self._control = ControlServer(home.control_socket, commands, log)
        self._signals: tuple[signal.Signals, ...] = ()

    def claim_home(self) -> bool:
        """Check the socket path, create the directories and take the pidfile lock. False (reported)
        when the home cannot be used or another daemon runs there."""
        try:
            problem = self.home.socket_problem()
            if problem:
                raise OSError(problem)
            self.home.create_dirs()
            self._pidfile.acquire()
        except (AlreadyRunning, OSError) as exc:
            self.failed(exc)
            return False
        return True

    def failed(self, exc: Exception) -> int:
        """Report why the daemon cannot start, each configuration error on its own line; the exit status."""
        if isinstance(exc, SourceErrors):
            for err in exc.errors:
                self.log.error("%s", err)
            self.notify(
                "\n".join([*(str(e) for e in exc.errors), f"{len(exc.errors)} configuration error(s)"])
            )
        else:
            self.log.error("cannot start: %s", exc)
            self.notify(str(exc))
        return 1

    async def open_control(self) -> None:
        await self._control.start()

    def install_signals(self, stop: Callable[[], None], reload: Callable[[], object] | None = None) -> None:
        """SIGTERM and SIGINT stop the daemon; SIGHUP reloads it when it can reload."""
        handlers: dict[signal.Signals, Callable[[], object]] = {signal.SIGTERM: stop, signal.SIGINT: stop}
        if reload is not None:
            handlers[signal.SIGHUP] = reload
        self._signals = tuple(handlers)
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            for sig, handler in handlers.items():
                loop.add_signal_handler(sig, handler)

    async def stop_listening(self) -> None:
        """No more signals or control requests: the first step of every shutdown, clean or not."""
        with contextlib.suppress(Exception):
            loop = asyncio.get_running_loop()
            for sig in self._signals:
                loop.remove_signal_handler(sig)
        await self._control.close()

    def release(self) -> None:
        """Give up the pidfile lock: the last step, once nothing of this daemon runs any more."""
        self._pidfile.release()
