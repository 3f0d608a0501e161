"""The start-up and shutdown steps the manager and agent daemons share (manager/lifecycle.py)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from threatlockdown.errors import SourceError, SourceErrors
from threatlockdown.manager.control import control_request
from threatlockdown.manager.home import Home
from threatlockdown.manager.lifecycle import DaemonLifecycle, status_and_stop
from threatlockdown.manager.process import running_pid

LOG = logging.getLogger("test.lifecycle")


class Told:
    """Records what a daemon tells whoever waits for it to be ready."""

    def __init__(self) -> None:
        self.messages: list[str | None] = []

    def __call__(self, error: str | None) -> None:
        self.messages.append(error)


def test_one_daemon_per_home_and_the_second_is_told_why(tmp_path: Path) -> None:
    home = Home(tmp_path / "home", "agent")
    first, told = DaemonLifecycle(home, LOG, None, {}), Told()
    assert first.claim_home()
    assert home.run_dir.is_dir() and running_pid(home.pidfile) == os.getpid()
    second = DaemonLifecycle(home, LOG, told, {})
    assert not second.claim_home()
    assert told.messages == [f"already running (pid {os.getpid()}, {home.pidfile})"]
    first.release()
    assert running_pid(home.pidfile) is None


def test_an_unusable_socket_path_is_refused_before_anything_is_created(tmp_path: Path) -> None:
    home, told = Home(tmp_path / ("x" * 120)), Told()
    assert not DaemonLifecycle(home, LOG, told, {}).claim_home()
    assert told.messages and "too long for a unix socket" in str(told.messages[0])
    assert not home.root.exists()


def test_start_failures_are_logged_and_told(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    told = Told()
    life = DaemonLifecycle(Home(tmp_path), LOG, told, {})
    errors = SourceErrors([SourceError("etc/ossec.conf", 3, "client", "no manager address")])
    with caplog.at_level(logging.ERROR, LOG.name):
        assert life.failed(errors) == 1
        assert life.failed(OSError("port 1514 in use")) == 1
    [config_error] = errors.errors
    assert told.messages == [f"{config_error}\n1 configuration error(s)", "port 1514 in use"]
    assert [r.getMessage() for r in caplog.records] == [str(config_error), "cannot start: port 1514 in use"]


def test_control_signals_and_shutdown(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    stopped = asyncio.Event()
    reloads: list[int] = []

    async def main() -> list[dict[str, Any]]:
        commands = status_and_stop(lambda: {"uptime": 5}, stopped.set)
        life = DaemonLifecycle(home, LOG, None, commands)
        assert life.claim_home()
        await life.open_control()
        life.install_signals(stopped.set, reload=lambda: reloads.append(1))
        try:
            os.kill(os.getpid(), signal.SIGHUP)
            await asyncio.sleep(0.05)
            answers = [
                await asyncio.to_thread(control_request, home.control_socket, command, 5.0)
                for command in ("status", "stop")
            ]
            await asyncio.wait_for(stopped.wait(), 5)
        finally:
            await life.stop_listening()
            life.release()
        return answers

    previous = signal.getsignal(signal.SIGHUP)
    status, stop = asyncio.run(main())
    assert status == {"ok": True, "uptime": 5}
    assert stop == {"ok": True, "stopping": True}
    assert reloads == [1]
    assert not home.control_socket.exists() and running_pid(home.pidfile) is None
    assert signal.getsignal(signal.SIGHUP) == previous  # the handlers were removed again
