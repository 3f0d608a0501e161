"""Frames on the wire: a 4-byte big-endian payload length, then that many bytes of UTF-8 JSON object."""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from collections.abc import Mapping
from typing import Any

from .errors import ConnectionClosed, FrameTooLarge, ProtocolError

MAX_FRAME_BYTES = 64 * 1024
_LENGTH = struct.Struct(">I")


def dumps(message: Mapping[str, Any]) -> bytes:
    # ensure_ascii keeps lone surrogates (undecodable log bytes) representable as \udcxx escapes.
    return json.dumps(message, ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode("ascii")


def frame_bytes(payload: bytes) -> bytes:
    if len(payload) > MAX_FRAME_BYTES:
        raise FrameTooLarge(len(payload), MAX_FRAME_BYTES)
    return _LENGTH.pack(len(payload)) + payload


def encode_frame(message: Mapping[str, Any]) -> bytes:
    return frame_bytes(dumps(message))


async def read_frame(reader: asyncio.StreamReader) -> dict[str, Any]:
    """Read one frame; the size is checked before the payload is read, so a huge length costs nothing."""
    try:
        header = await reader.readexactly(_LENGTH.size)
    except asyncio.IncompleteReadError as exc:
        raise ConnectionClosed(
            "connection closed" if not exc.partial else "connection closed mid-frame"
        ) from None
    (size,) = _LENGTH.unpack(header)
    if size > MAX_FRAME_BYTES:
        raise FrameTooLarge(size, MAX_FRAME_BYTES)
    try:
        payload = await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        raise ConnectionClosed("connection closed mid-frame") from None
    try:
        message = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError("malformed_frame", f"frame is not JSON: {str(exc)[:100]}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError("malformed_frame", "frame is not a JSON object with a string 'type'")
    return message


async def write_frame(writer: asyncio.StreamWriter, message: Mapping[str, Any]) -> None:
    writer.write(encode_frame(message))
    await writer.drain()


def close_quietly(writer: asyncio.StreamWriter) -> None:
    """Drop a connection at once (no TLS close_notify exchange to wait for)."""
    with contextlib.suppress(Exception):
        writer.transport.abort()


async def close_gracefully(writer: asyncio.StreamWriter, timeout: float = 1.0) -> None:
    """Flush what was written (a refusal message, say), then close; never wait longer than ``timeout``."""
    try:
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), timeout)
    except (OSError, TimeoutError):
        pass
    finally:
        close_quietly(writer)
