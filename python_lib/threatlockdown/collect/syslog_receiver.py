"""<remote><connection>syslog</connection>: receiving syslog over UDP and TCP from senders that belong."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Sequence

from .access import SenderPolicy, sender_ip
from .event import MAX_EVENT_BYTES, RawEvent, decode_text
from .framing import TcpSyslogFramer
from .ratelimit import LogLimiter

_LISTEN_BACKLOG = 128
_COUNTERS = (
    "received",
    "dropped",
    "errors",
    "refused",
    "oversized",
    "skipped",
    "connections",
    "connections_over_limit",
)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, receiver: SyslogReceiver, out: asyncio.Queue[RawEvent]) -> None:
        self._receiver = receiver
        self._out = out

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self._receiver.on_datagram(data, str(addr[0]), self._out)

    def error_received(self, exc: Exception) -> None:
        self._receiver.on_udp_error(exc)


class SyslogReceiver:
    """A syslog listener (one <remote>) on UDP and/or TCP, as a Collector.

    Every message becomes one event whose location is the sender's IP address, as in Wazuh. Only the
    trailing newline is removed; the header is left to the analysis pre-decoder. UDP has no
    back-pressure, so a datagram arriving while the queue is full is dropped and counted; a TCP
    connection waits for room in the queue, which slows the sender down through TCP flow control.
    """

    def __init__(
        self,
        *,
        port: int,
        protocols: Sequence[str],
        policy: SenderPolicy,
        logger: logging.Logger,
        local_ip: str | None = None,
        origin: str = "<remote>",
        max_connections: int = 256,
        udp_receive_buffer: int = 1 << 20,
    ) -> None:
        self.name = f"syslog:{'+'.join(protocols)}:{port}"
        self.ready = asyncio.Event()  # set once every socket listens
        self.addresses: list[tuple[str, str, int]] = []  # (protocol, host, port) actually bound
        self._port = port
        self._protocols = tuple(protocols)
        self._policy = policy
        self._logger = logger
        self._local_ip = local_ip
        self._origin = origin
        self._max_connections = max_connections
        self._rcvbuf = udp_receive_buffer
        self._limiter = LogLimiter(logger)
        self._counts = dict.fromkeys(_COUNTERS, 0)
        self._udp_inodes: set[int] = set()
        self._clients: set[asyncio.Task[None]] = set()

    def stats(self) -> dict[str, int]:
        counts = dict(self._counts)
        counts["open_connections"] = len(self._clients)
        if self._udp_inodes:
            counts["kernel_dropped"] = kernel_udp_drops(self._udp_inodes)
        return counts

    async def run(self, out: asyncio.Queue[RawEvent]) -> None:
        loop = asyncio.get_running_loop()
        transports: list[asyncio.DatagramTransport] = []
        servers: list[asyncio.Server] = []
        self.addresses.clear()
        try:
            for protocol in self._protocols:
                port = self._port
                for family, host in self._hosts():
                    sock = self._listen(protocol, family, host, port)
                    if sock is None:
                        continue
                    port = sock.getsockname()[1]  # with port 0, every family shares the first one chosen
                    self.addresses.append((protocol, host, port))
                    if protocol == "udp":
                        self._udp_inodes.add(os.fstat(sock.fileno()).st_ino)
                        transport, _ = await loop.create_datagram_endpoint(
                            lambda: _UdpProtocol(self, out), sock=sock
                        )
                        transports.append(transport)
                    else:
                        servers.append(
                            await asyncio.start_server(
                                lambda r, w: self._serve(r, w, out), sock=sock, limit=MAX_EVENT_BYTES
                            )
                        )
            self._logger.info("%s: listening on %s", self.name, ", ".join(_show(a) for a in self.addresses))
            self.ready.set()
            await asyncio.Future()  # until cancelled
        finally:
            for transport in transports:
                transport.close()
            for server in servers:
                server.close()
            for task in list(self._clients):
                task.cancel()
            if self._clients:
                await asyncio.gather(*self._clients, return_exceptions=True)
            self.ready.clear()

    def _hosts(self) -> list[tuple[socket.AddressFamily, str]]:
        if self._local_ip is not None:
            family = socket.AF_INET6 if ":" in self._local_ip else socket.AF_INET
            return [(family, self._local_ip)]
        return [(socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")]

    def _listen(
        self, protocol: str, family: socket.AddressFamily, host: str, port: int
    ) -> socket.socket | None:
        kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
        try:
            sock = socket.socket(family, kind)
        except OSError as exc:
            if self._local_ip is None and family == socket.AF_INET6:
                self._logger.info("%s: no IPv6 (%s); listening on IPv4 only", self.name, exc.strerror)
                return None
            raise OSError(
                exc.errno, f"{self._origin}: cannot create a {protocol} socket: {exc.strerror}"
            ) from exc
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            else:
                with contextlib.suppress(OSError):  # a bigger buffer absorbs bursts; not essential
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._rcvbuf)
            sock.bind((host, port))
            if kind == socket.SOCK_STREAM:
                sock.listen(_LISTEN_BACKLOG)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            where = f"{protocol} {_show((protocol, host, port))}"
            raise OSError(exc.errno, f"{self._origin}: cannot listen on {where}: {exc.strerror}") from exc
        return sock

    # -- UDP ---------------------------------------------------------------------------------------

    def on_datagram(self, data: bytes, host: str, out: asyncio.Queue[RawEvent]) -> None:
        ip = self._admit(host)
        if ip is None:
            return
        if len(data) > MAX_EVENT_BYTES:
            self._oversized(ip, len(data))
            return
        if data.endswith(b"\n"):
            data = data[:-1]
        if not data:
            self._counts["skipped"] += 1
            return
        try:
            out.put_nowait(RawEvent(ip, decode_text(data), "syslog", source_ip=ip, source=self.name))
        except asyncio.QueueFull:
            self._counts["dropped"] += 1
            self._limiter.warning("queue-full", "%s: analysis queue full; UDP messages dropped", self.name)
            return
        self._counts["received"] += 1

    def on_udp_error(self, exc: Exception) -> None:
        self._counts["errors"] += 1
        self._limiter.warning(f"udp-error:{exc}", "%s: receive error: %s", self.name, exc)

    # -- TCP ---------------------------------------------------------------------------------------

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, out: asyncio.Queue[RawEvent]
    ) -> None:
        peer = writer.get_extra_info("peername")
        ip = self._admit(str(peer[0])) if peer else None
        if ip is None:
            writer.transport.abort()
            return
        if len(self._clients) >= self._max_connections:
            self._counts["connections_over_limit"] += 1
            self._limiter.warning(
                "conn-limit",
                "%s: %d connections open; connection from %s closed",
                self.name,
                len(self._clients),
                ip,
            )
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        self._counts["connections"] += 1
        framer = TcpSyslogFramer()
        try:
            while True:
                data = await reader.read(MAX_EVENT_BYTES)
                if not data:
                    tail = framer.finish()
                    if tail is not None:
                        await self._put(tail, ip, out)
                    if framer.incomplete:
                        self._counts["errors"] += 1
                        self._limiter.warning(
                            f"incomplete:{ip}",
                            "%s: %s closed the connection inside a counted frame; %d bytes discarded",
                            self.name,
                            ip,
                            framer.incomplete,
                        )
                    break
                for message in framer.feed(data):
                    await self._put(message, ip, out)
                if framer.oversized is not None:
                    self._oversized(ip, framer.oversized)
                    break
        except (ConnectionError, TimeoutError):
            pass  # the sender went away; what it sent completely was already queued
        except OSError as exc:
            self._counts["errors"] += 1
            self._limiter.warning(f"tcp-error:{ip}", "%s: connection from %s failed: %s", self.name, ip, exc)
        finally:
            self._clients.discard(task)
            writer.transport.abort()

    async def _put(self, message: bytes, ip: str, out: asyncio.Queue[RawEvent]) -> None:
        await out.put(RawEvent(ip, decode_text(message), "syslog", source_ip=ip, source=self.name))
        self._counts["received"] += 1

    # -- shared ------------------------------------------------------------------------------------

    def _admit(self, host: str) -> str | None:
        try:
            ip = sender_ip(host)
        except ValueError:
            self._counts["errors"] += 1
            return None
        if self._policy.allows(ip):
            return ip
        self._counts["refused"] += 1
        self._limiter.warning(
            f"refused:{ip}",
            "%s: message from %s refused (not in allowed-ips, or in denied-ips)",
            self.name,
            ip,
        )
        return None

    def _oversized(self, ip: str, size: int) -> None:
        self._counts["oversized"] += 1
        self._limiter.warning(
            f"oversized:{ip}",
            "%s: message of %d bytes from %s refused (limit %d)",
            self.name,
            size,
            ip,
            MAX_EVENT_BYTES,
        )


def kernel_udp_drops(inodes: set[int]) -> int:
    """Datagrams the kernel dropped on our sockets (receive buffer full), from /proc/net/udp{,6}."""
    total = 0
    for name in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(name, encoding="ascii") as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) >= 13 and fields[9].isdigit() and int(fields[9]) in inodes:
                total += int(fields[12])
    return total


def _show(address: tuple[str, str, int]) -> str:
    _protocol, host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
