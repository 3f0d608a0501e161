"""Cutting a syslog TCP stream into messages (RFC 6587): octet counting or newline framing."""

from __future__ import annotations

from .event import MAX_EVENT_BYTES

_DIGITS = b"0123456789"
_MAX_LENGTH_DIGITS = 7


class TcpSyslogFramer:
    """Messages from a TCP byte stream, framing detected per message.

    A frame of digits, a space and '<' is octet-counted ("LEN SP <PRI>..."); anything else runs to
    the next LF. Requiring the '<' keeps PRI-less lines that start with a year ("2015 Dec 29 ...")
    newline-framed instead of swallowing the stream as a 2015-byte frame. A message over ``max_bytes`` sets
    ``oversized`` to its (announced or buffered) length; the caller then closes the connection,
    since the rest of the stream can no longer be framed reliably.
    """

    def __init__(self, max_bytes: int = MAX_EVENT_BYTES) -> None:
        self._buf = bytearray()
        self._max = max_bytes
        self._scanned = 0  # bytes of the buffer known to hold no LF
        self.oversized: int | None = None
        self.incomplete = 0  # bytes of a counted frame cut short by the end of the stream

    def feed(self, data: bytes) -> list[bytes]:
        """Complete messages in order; stops at an oversized one."""
        if self.oversized is not None:
            return []
        self._buf += data
        messages: list[bytes] = []
        while self._buf:
            count = self._octet_count()
            if count is None:
                message = self._lf_frame()
            elif count < 0:
                break  # the length is not complete yet
            else:
                message = self._counted_frame(count)
            if message is None:
                break
            if message:
                messages.append(message)
        return messages

    def finish(self) -> bytes | None:
        """The last newline-framed message when the sender closes without a final LF."""
        if self.oversized is not None or not self._buf:
            return None
        if self._octet_count() is not None:
            self.incomplete = len(self._buf)
            self._buf.clear()
            return None
        message = bytes(self._buf)
        self._buf.clear()
        return message or None

    def _octet_count(self) -> int | None:
        """Announced length; -1 when it may still be one but is incomplete; None for LF framing."""
        buf = self._buf
        if buf[0] not in _DIGITS:
            return None
        for i in range(1, min(len(buf), _MAX_LENGTH_DIGITS + 1)):
            c = buf[i]
            if c == 0x20:
                if len(buf) == i + 1:
                    return -1
                return int(buf[:i]) if buf[i + 1] == 0x3C else None  # '<' starts the counted message
            if c not in _DIGITS:
                return None
        return -1 if len(buf) <= _MAX_LENGTH_DIGITS else None

    def _counted_frame(self, count: int) -> bytes | None:
        if count > self._max:
            self.oversized = count
            return None
        # A sender may write leading zeros ("007 x"): measure the digits actually sent.
        header = self._buf.index(b" ") + 1
        if len(self._buf) < header + count:
            return None
        message = bytes(self._buf[header : header + count])
        del self._buf[: header + count]
        self._scanned = 0
        return message[:-1] if message.endswith(b"\n") else message

    def _lf_frame(self) -> bytes | None:
        nl = self._buf.find(b"\n", self._scanned)
        if nl < 0:
            self._scanned = len(self._buf)
            if len(self._buf) > self._max:
                self.oversized = len(self._buf)
            return None
        if nl > self._max:
            self.oversized = nl
            return None
        message = bytes(self._buf[:nl])
        del self._buf[: nl + 1]
        self._scanned = 0
        return message
