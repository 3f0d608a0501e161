"""Syslog receiver on real loopback sockets: UDP and TCP, IPv4 and IPv6, refused senders, floods."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from threatlockdown.collect.access import SenderPolicy
from threatlockdown.collect.event import MAX_EVENT_BYTES, RawEvent
from threatlockdown.collect.syslog_receiver import SyslogReceiver

LOG = logging.getLogger("test.collect.syslog")
T = TypeVar("T")
SHARED = Path(__file__).resolve().parents[2].parent / "shared"
PREDECODER_CASES = SHARED / "conformance" / "wazuh" / "cases_syslog_socket_input.yaml"


def run(coro: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await asyncio.wait_for(coro(), 15)

    return asyncio.run(main())


def receiver(protocol: str, host: str, allowed: tuple[str, ...] = ("any",), **kw: Any) -> SyslogReceiver:
    policy = SenderPolicy.from_config(allowed, kw.pop("denied", ()), path="ossec.conf", line=1)
    return SyslogReceiver(port=0, protocols=(protocol,), policy=policy, logger=LOG, local_ip=host, **kw)


@asynccontextmanager
async def running(
    r: SyslogReceiver, maxsize: int = 1000
) -> AsyncIterator[tuple[asyncio.Queue[RawEvent], int]]:
    q: asyncio.Queue[RawEvent] = asyncio.Queue(maxsize)
    task = asyncio.create_task(r.run(q))
    await asyncio.wait_for(r.ready.wait(), 2)
    try:
        yield q, r.addresses[0][2]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def take(q: asyncio.Queue[RawEvent], n: int) -> list[RawEvent]:
    return [await asyncio.wait_for(q.get(), 2) for _ in range(n)]


def send_udp(host: str, port: int, *payloads: bytes) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        for p in payloads:
            s.sendto(p, (host, port))


async def send_tcp(host: str, port: int, data: bytes) -> bytes:
    """Send and return what the receiver sent back before closing (nothing, normally)."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(data)
    await writer.drain()
    writer.write_eof()
    try:
        return await asyncio.wait_for(reader.read(), 2)
    except ConnectionResetError:
        return b""  # a refused connection is reset
    finally:
        writer.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_udp_messages_keep_their_header_and_lose_only_the_newline(host: str) -> None:
    async def scenario() -> tuple[list[RawEvent], dict[str, int]]:
        r = receiver("udp", host)
        async with running(r) as (q, port):
            send_udp(
                host,
                port,
                b"<13>Dec 29 10:00:01 web sshd[29205]: Invalid user blimey from 18.18.18.18 port 48928\n",
                b"<34>1 2003-10-11T22:14:15.003Z mymachine su - ID47 - BOM'su root' failed\r\n",
                b"\n",
            )
            events = await take(q, 2)
            await asyncio.sleep(0.05)
            return events, r.stats()

    events, stats = run(scenario)
    assert [e.text for e in events] == [
        "<13>Dec 29 10:00:01 web sshd[29205]: Invalid user blimey from 18.18.18.18 port 48928",
        "<34>1 2003-10-11T22:14:15.003Z mymachine su - ID47 - BOM'su root' failed\r",
    ]
    assert {(e.location, e.source_ip, e.log_format, e.ack) for e in events} == {(host, host, "syslog", None)}
    assert stats["received"] == 2
    assert stats["skipped"] == 1


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_tcp_newline_and_octet_counted_framing(host: str) -> None:
    msg = b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's\ntime"

    async def scenario() -> list[str]:
        async with running(receiver("tcp", host)) as (q, port):
            await send_tcp(
                host, port, b"<13>Dec 29 10:00:01 web app: one\n<13>Dec 29 10:00:02 web app: two\n"
            )
            await send_tcp(host, port, str(len(msg)).encode() + b" " + msg + b"<13>no final newline")
            return [e.text for e in await take(q, 4)]

    assert run(scenario) == [
        "<13>Dec 29 10:00:01 web app: one",
        "<13>Dec 29 10:00:02 web app: two",
        msg.decode(),
        "<13>no final newline",
    ]


def test_disallowed_sender_is_refused_counted_and_the_listener_stays_up() -> None:
    async def scenario() -> tuple[dict[str, int], dict[str, int], bool]:
        udp = receiver("udp", "127.0.0.1", allowed=("10.0.0.0/8", "::1"))
        tcp = receiver("tcp", "127.0.0.1", allowed=("any",), denied=("127.0.0.0/8",))
        async with running(udp) as (uq, uport), running(tcp) as (tq, tport):
            send_udp("127.0.0.1", uport, b"<13>x y: refused 1", b"<13>x y: refused 2")
            assert await send_tcp("127.0.0.1", tport, b"<13>x y: refused\n") == b""
            await asyncio.sleep(0.1)
            both_empty = uq.empty() and tq.empty()
            # Still listening after refusing.
            assert await send_tcp("127.0.0.1", tport, b"") == b""
            return udp.stats(), tcp.stats(), both_empty

    ustats, tstats, both_empty = run(scenario)
    assert both_empty
    assert ustats["refused"] == 2 and ustats["received"] == 0
    assert tstats["refused"] == 2 and tstats["received"] == 0 and tstats["connections"] == 0


def test_refusals_are_logged_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> dict[str, int]:
        r = receiver("udp", "127.0.0.1", allowed=("192.0.2.0/24",))
        async with running(r) as (_q, port):
            send_udp("127.0.0.1", port, *[b"<13>x y: z"] * 50)
            await asyncio.sleep(0.1)
            return r.stats()

    with caplog.at_level(logging.WARNING, logger=LOG.name):
        stats = run(scenario)
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert stats["refused"] == 50
    assert len(refusals) == 1
    assert "message from 127.0.0.1 refused" in refusals[0].getMessage()


def test_oversized_tcp_frame_is_refused_and_the_connection_closed() -> None:
    async def scenario() -> tuple[list[str], dict[str, int]]:
        r = receiver("tcp", "127.0.0.1")
        async with running(r) as (q, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"<13>x y: fine\n" + b"<13>" + b"A" * (MAX_EVENT_BYTES + 10))
            await writer.drain()
            closed = await asyncio.wait_for(reader.read(), 2)  # EOF: the receiver hung up
            writer.close()
            assert closed == b""
            await send_tcp("127.0.0.1", port, str(MAX_EVENT_BYTES + 1).encode() + b" <13>x")
            texts = [e.text for e in await take(q, 1)]
            await asyncio.sleep(0.05)
            assert q.empty()
            return texts, r.stats()

    texts, stats = run(scenario)
    assert texts == ["<13>x y: fine"]
    assert stats["oversized"] == 2


def test_connection_limit_is_enforced() -> None:
    async def scenario() -> dict[str, int]:
        r = receiver("tcp", "127.0.0.1", max_connections=2)
        async with running(r) as (q, port):
            held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
            await asyncio.sleep(0.05)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert await asyncio.wait_for(reader.read(), 2) == b""
            writer.close()
            for _, w in held:
                w.write(b"<13>x y: still served\n")
                await w.drain()
            texts = [e.text for e in await take(q, 2)]
            assert texts == ["<13>x y: still served"] * 2
            for _, w in held:
                w.close()
            return r.stats()

    stats = run(scenario)
    assert stats["connections_over_limit"] == 1
    assert stats["connections"] == 2


def test_udp_flood_into_a_tiny_queue_is_dropped_and_counted() -> None:
    sent = 3000

    async def scenario() -> tuple[int, dict[str, int]]:
        r = receiver("udp", "127.0.0.1")
        async with running(r, maxsize=4) as (q, port):
            send_udp("127.0.0.1", port, *(f"<13>x y: flood {i}".encode() for i in range(sent)))
            for _ in range(100):  # until every datagram is accounted for
                s = r.stats()
                if s["received"] + s["dropped"] + s["kernel_dropped"] >= sent:
                    break
                await asyncio.sleep(0.02)
            return q.qsize(), r.stats()

    qsize, stats = run(scenario)
    assert qsize == 4
    assert stats["received"] == 4  # the queue is never outgrown: memory stays bounded
    assert stats["dropped"] > 0
    assert stats["received"] + stats["dropped"] + stats["kernel_dropped"] == sent


def test_tcp_waits_for_room_instead_of_dropping() -> None:
    async def scenario() -> tuple[list[str], dict[str, int]]:
        r = receiver("tcp", "127.0.0.1")
        async with running(r, maxsize=2) as (q, port):
            lines = b"".join(f"<13>x y: n{i}\n".encode() for i in range(300))
            sender = asyncio.create_task(send_tcp("127.0.0.1", port, lines))
            await asyncio.sleep(0.1)
            assert q.full()
            texts = [e.text for e in await take(q, 300)]
            await sender
            return texts, r.stats()

    texts, stats = run(scenario)
    assert texts == [f"<13>x y: n{i}" for i in range(300)]
    assert stats["dropped"] == 0


@pytest.mark.skipif(not PREDECODER_CASES.exists(), reason="Wazuh conformance data not available")
def test_wazuh_predecoder_inputs_arrive_byte_for_byte() -> None:
    """Every event of Wazuh's pre-decoder cases reaches analysis unchanged, over UDP and TCP."""
    cases = yaml.safe_load(PREDECODER_CASES.read_text(encoding="utf-8"))
    events = [yaml.safe_load(c["metadata"]["input"])["parameters"]["event"] for c in cases]
    assert len(events) >= 10

    async def scenario() -> tuple[list[str], list[str]]:
        async with (
            running(receiver("udp", "127.0.0.1")) as (uq, uport),
            running(receiver("tcp", "127.0.0.1")) as (tq, tport),
        ):
            send_udp("127.0.0.1", uport, *(e.encode() + b"\n" for e in events))
            await send_tcp("127.0.0.1", tport, b"".join(e.encode() + b"\n" for e in events))
            return [e.text for e in await take(uq, len(events))], [
                e.text for e in await take(tq, len(events))
            ]

    via_udp, via_tcp = run(scenario)
    assert via_udp == events
    assert via_tcp == events


def test_listening_on_a_taken_port_names_the_remote_block() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        policy = SenderPolicy.from_config(("any",), (), path="ossec.conf", line=1)
        r = SyslogReceiver(
            port=port,
            protocols=("udp",),
            policy=policy,
            logger=LOG,
            local_ip="127.0.0.1",
            origin="ossec.conf:42",
        )
        with pytest.raises(OSError, match=rf"ossec.conf:42: cannot listen on udp 127.0.0.1:{port}"):
            run(lambda: r.run(asyncio.Queue()))
