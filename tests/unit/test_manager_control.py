"""The control socket and the locked pidfile."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from threatlockdown.manager.control import ControlError, ControlServer, control_request
from threatlockdown.manager.home import Home
from threatlockdown.manager.process import AlreadyRunning, PidFile, running_pid


def test_requests_and_answers(tmp_path: Path) -> None:
    sock = tmp_path / "c.sock"

    async def status() -> dict[str, Any]:
        return {"ok": True, "uptime": 1}

    async def broken() -> dict[str, Any]:
        raise RuntimeError("it broke")

    async def main() -> list[dict[str, Any]]:
        import logging

        server = ControlServer(sock, {"status": status, "reload": broken}, logging.getLogger("test"))
        await server.start()
        assert sock.stat().st_mode & 0o777 == 0o600
        answers = [
            await asyncio.to_thread(control_request, sock, c, 5.0) for c in ("status", "reload", "nope")
        ]
        await server.close()
        return answers

    ok, failed, unknown = asyncio.run(main())
    assert ok == {"ok": True, "uptime": 1}
    assert failed == {"ok": False, "error": "it broke"}
    assert unknown["ok"] is False and "expected one of ['reload', 'status']" in unknown["error"]
    assert not sock.exists()


def test_no_daemon_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match="no control socket"):
        control_request(tmp_path / "none.sock", "status", 1.0)


def test_pidfile_lock(tmp_path: Path) -> None:
    path = tmp_path / "run" / "tld-manager.pid"
    assert running_pid(path) is None
    first = PidFile(path)
    first.acquire()
    assert running_pid(path) == os.getpid()
    with pytest.raises(AlreadyRunning, match=f"pid {os.getpid()}"):
        PidFile(path).acquire()
    first.release()
    assert running_pid(path) is None
    path.write_text("12345\n")  # left by a killed daemon: not locked, so not running
    assert running_pid(path) is None


def test_socket_path_length_is_checked(tmp_path: Path) -> None:
    assert Home(tmp_path).socket_problem() is None
    problem = Home(tmp_path / ("x" * 120)).socket_problem()
    assert problem is not None and "too long for a unix socket" in problem
