"""The shared control socket: request parsing, refusals, logged failures, and the client's errors."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from threatlockdown.controlsock import ControlError, ControlSocketServer, send_request


class Refused(Exception):
    pass


async def echo(request: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "echo": request.get("value"), "path": Path("/x")}


async def refuse(request: dict[str, Any]) -> dict[str, Any]:
    raise Refused("not this one")


async def crash(request: dict[str, Any]) -> dict[str, Any]:
    raise RuntimeError("it broke")


def raw_exchange(path: Path, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5.0)
        sock.connect(str(path))
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def serving(path: Path, check: Callable[[], Awaitable[None]]) -> None:
    """Run ``check`` while a server with the echo/refuse/crash handlers listens at ``path``."""

    async def main() -> None:
        server = ControlSocketServer(
            path,
            {"echo": echo, "refuse": refuse, "crash": crash},
            logging.getLogger("test.controlsock"),
            max_request=100,
            expected=(Refused,),
        )
        await server.start()
        try:
            await check()
        finally:
            await server.close()

    asyncio.run(main())


def test_answers_refusals_and_logged_failures(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "run" / "c.sock"  # the directory is created by start()
    answers: list[dict[str, Any]] = []

    async def check() -> None:
        assert path.stat().st_mode & 0o777 == 0o600
        for message in ({"command": "echo", "value": 7}, {"command": "refuse"}, {"command": "crash"}):
            answers.append(await asyncio.to_thread(send_request, path, message, 5.0, "the test daemon"))

    with caplog.at_level(logging.ERROR, "test.controlsock"):
        serving(path, check)
    echoed, refused, crashed = answers
    assert echoed == {"ok": True, "echo": 7, "path": "/x"}  # non-JSON values are sent as text
    assert refused == {"ok": False, "error": "not this one"}
    assert crashed == {"ok": False, "error": "it broke"}
    # Only the unexpected failure is logged, with its traceback.
    assert [r.getMessage() for r in caplog.records] == ["control request 'crash' failed"]
    assert caplog.records[0].exc_info is not None
    assert not path.exists()


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b"not json\n", "expected one JSON object per line"),
        (b"[1, 2]\n", "expected one JSON object per line"),
        (b'{"command": "echo", "value": "' + b"x" * 100 + b'"}\n', "expected one JSON object per line"),
        (b'{"command": "nope"}\n', "unknown request; expected one of ['crash', 'echo', 'refuse']"),
        (b'{"command": 5}\n', "unknown request; expected one of ['crash', 'echo', 'refuse']"),
    ],
)
def test_bad_requests_get_a_clear_answer(tmp_path: Path, line: bytes, error: str) -> None:
    path = tmp_path / "c.sock"
    replies: list[bytes] = []

    async def check() -> None:
        replies.append(await asyncio.to_thread(raw_exchange, path, line))

    serving(path, check)
    (reply,) = replies
    assert reply.endswith(b"\n") and json.loads(reply) == {"ok": False, "error": error}


def test_a_stale_socket_file_is_replaced_and_long_paths_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    path.write_text("left by a killed daemon")
    serving(path, lambda: asyncio.sleep(0))
    long_path = tmp_path / ("x" * 120) / "c.sock"
    server = ControlSocketServer(long_path, {}, logging.getLogger("test"), max_request=10)
    with pytest.raises(OSError, match="path too long for a unix socket"):
        asyncio.run(server.start())


def test_client_errors_name_the_socket_and_the_peer(tmp_path: Path) -> None:
    missing = tmp_path / "none.sock"
    with pytest.raises(ControlError, match=r"none\.sock: no control socket \(is the daemon running\?\)"):
        send_request(missing, {"command": "status"}, 1.0, "the daemon")

    # A socket file nobody listens on any more (the daemon was killed).
    dead = tmp_path / "dead.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(dead))
    with pytest.raises(ControlError, match=r"dead\.sock: nobody listens \(the engine is not running\)"):
        send_request(dead, {"command": "status"}, 1.0, "the engine")


def test_client_refuses_an_answer_that_is_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "odd.sock"
    errors: list[str] = []

    async def main() -> None:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readline()
            writer.write(b"[1]\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_unix_server(answer, path=str(path))
        async with server:
            with pytest.raises(ControlError) as raised:
                await asyncio.to_thread(send_request, path, {"command": "status"}, 5.0, "the daemon")
            errors.append(str(raised.value))

    asyncio.run(main())
    assert errors == [f"{path}: the daemon sent no valid answer"]
