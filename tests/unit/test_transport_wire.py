"""Frames, protocol messages, the HMAC proof and rate-limited refusal logging."""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import Any

import pytest

from threatlockdown.transport.auth import RefusalLog, auth_proof, proof_matches
from threatlockdown.transport.errors import ConnectionClosed, FrameTooLarge, ProtocolError
from threatlockdown.transport.framing import MAX_FRAME_BYTES, encode_frame, frame_bytes, read_frame
from threatlockdown.transport.messages import (
    MAX_EVENT_BYTES,
    AgentEvent,
    event_json,
    events_payload,
    parse_events,
)


def _read(data: bytes) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return await read_frame(reader)

    return asyncio.run(go())


def test_frame_round_trip_keeps_unicode_and_undecodable_bytes() -> None:
    text = "sshd: user \u00e9t\u00e9 " + b"\xff".decode("utf-8", "surrogateescape")
    frame = encode_frame({"type": "keepalive", "text": text})
    assert frame[:4] == struct.pack(">I", len(frame) - 4)
    assert frame[4:].isascii()
    assert _read(frame) == {"type": "keepalive", "text": text}


def test_oversized_frame_is_refused_from_its_header_alone() -> None:
    with pytest.raises(FrameTooLarge) as caught:
        _read(struct.pack(">I", MAX_FRAME_BYTES + 1))  # no payload follows: it must not be awaited
    assert caught.value.kind == "oversized_frame"
    with pytest.raises(FrameTooLarge):
        frame_bytes(b"x" * (MAX_FRAME_BYTES + 1))
    assert len(frame_bytes(b"x" * MAX_FRAME_BYTES)) == MAX_FRAME_BYTES + 4


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b"not json", "not JSON"),
        (b"[1,2]", "JSON object with a string 'type'"),
        (b'{"type": 3}', "JSON object with a string 'type'"),
        (b"[" * 5000 + b"]" * 5000, "not JSON"),  # deep nesting must not crash the reader
    ],
)
def test_malformed_frames_are_protocol_errors(payload: bytes, fragment: str) -> None:
    with pytest.raises(ProtocolError, match=fragment) as caught:
        _read(frame_bytes(payload))
    assert caught.value.kind == "malformed_frame"


@pytest.mark.parametrize("data", [b"", b"\x00\x00", b"\x00\x00\x00\x10{}"])
def test_truncated_input_is_a_closed_connection(data: bytes) -> None:
    with pytest.raises(ConnectionClosed):
        _read(data)


def test_events_payload_round_trips_through_parse_events() -> None:
    objects = [
        event_json(1, "/var/log/auth.log", "sshd[1]: x", "syslog", None),
        event_json(2, "journald", "y", "json", {"unit": "ssh.service"}),
    ]
    message = _read(frame_bytes(events_payload(objects)))
    assert parse_events(message) == [
        AgentEvent(1, "/var/log/auth.log", "sshd[1]: x", "syslog"),
        AgentEvent(2, "journald", "y", "json", {"unit": "ssh.service"}),
    ]
    # The size limit of one event is exactly what still fits in a frame alone.
    assert len(events_payload([b"x" * MAX_EVENT_BYTES])) == MAX_FRAME_BYTES


@pytest.mark.parametrize(
    ("events", "kind", "fragment"),
    [
        ([], "bad_message", "non-empty list"),
        ([{"seq": 1, "location": "l", "text": "t"}], "bad_message", "must be strings"),
        ([{"seq": True, "location": "l", "text": "t", "log_format": "f"}], "bad_message", "positive integer"),
        ([{"seq": 0, "location": "l", "text": "t", "log_format": "f"}], "bad_message", "positive integer"),
        (
            [{"seq": 1, "location": "l", "text": "t", "log_format": "f", "x": 1}],
            "bad_message",
            "only the fields",
        ),
        (
            [{"seq": 1, "location": "l", "text": "t", "log_format": "f", "record": []}],
            "bad_message",
            "object",
        ),
        (
            [{"seq": 2, "location": "l", "text": "t", "log_format": "f"}] * 2,
            "sequence_error",
            "seq 2 does not follow 2",
        ),
    ],
)
def test_bad_events_are_refused(events: list[Any], kind: str, fragment: str) -> None:
    with pytest.raises(ProtocolError, match=fragment) as caught:
        parse_events({"type": "events", "events": events})
    assert caught.value.kind == kind


def test_proof_binds_key_nonce_id_and_name() -> None:
    key, nonce = "ab" * 32, bytes(range(32))
    proof = auth_proof(key, nonce, "001", "web")
    assert proof_matches(key, nonce, "001", "web", proof)
    assert not proof_matches("cd" * 32, nonce, "001", "web", proof)
    assert not proof_matches(key, bytes(32), "001", "web", proof)
    assert not proof_matches(key, nonce, "002", "web", proof)
    assert not proof_matches(key, nonce, "001", "web2", proof)
    # The separator keeps ("0011", "x") and ("001", "1x") apart.
    assert auth_proof(key, nonce, "0011", "xy") != auth_proof(key, nonce, "001", "1xy")
    assert not proof_matches(key, nonce, "001", "web", "\u00e9" * 64)  # non-ASCII input does not raise


def test_refusal_log_is_rate_limited_per_peer_and_reason(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    refusals = RefusalLog(logging.getLogger("test.refusals"), interval=60.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.refusals"):
        assert refusals.refused("192.0.2.1", "bad_key", "agent ID '001'")
        assert not refusals.refused("192.0.2.1", "bad_key", "agent ID '001'")
        assert not refusals.refused("192.0.2.1", "bad_key", "agent ID '001'")
        assert refusals.refused("192.0.2.1", "unknown_agent", "agent ID '099'")  # another reason
        assert refusals.dropped("192.0.2.2", "oversized_frame", "frame of 70000 bytes")  # another peer
        now[0] += 60.0
        assert refusals.refused("192.0.2.1", "bad_key", "agent ID '001'")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "refused connection from 192.0.2.1: bad_key: agent ID '001'",
        "refused connection from 192.0.2.1: unknown_agent: agent ID '099'",
        "dropped connection from 192.0.2.2: oversized_frame: frame of 70000 bytes",
        "refused connection from 192.0.2.1: bad_key: agent ID '001' (2 more since the last report)",
    ]
