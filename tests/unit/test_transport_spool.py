"""The agent's on-disk spool: order, segments, acknowledgements, limits and recovery after a crash."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from threatlockdown.errors import SourceErrors
from threatlockdown.transport.errors import EventTooLargeError, ProtocolError, SpoolFullError
from threatlockdown.transport.messages import MAX_EVENT_BYTES
from threatlockdown.transport.spool import FsyncPolicy, Spool

T = TypeVar("T")


def run(make: Callable[[], Awaitable[T]]) -> T:
    async def go() -> T:
        return await make()

    return asyncio.run(go())


def opened(directory: Path, *, segment_bytes: int = 1 << 20, fsync: FsyncPolicy = "interval") -> Spool:
    spool = Spool(directory, max_bytes=1 << 20, segment_bytes=segment_bytes, fsync=fsync)
    spool.open()
    return spool


def texts(objects: list[bytes]) -> list[str]:
    return [json.loads(o)["text"] for o in objects]


def segments(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.seg"))


def test_events_come_back_in_order_across_segments(tmp_path: Path) -> None:
    spool = opened(tmp_path, segment_bytes=300)
    seqs = [
        spool.append("/var/log/auth.log", f"line {i}", "syslog", {"n": i} if i % 2 else None)
        for i in range(20)
    ]
    assert seqs == list(range(1, 21))
    assert len(segments(tmp_path)) > 3  # rotated by size
    first = json.loads(spool.read(1, 1, MAX_EVENT_BYTES)[0])
    assert first == {"seq": 1, "location": "/var/log/auth.log", "text": "line 0", "log_format": "syslog"}
    assert json.loads(spool.read(2, 1, MAX_EVENT_BYTES)[0])["record"] == {"n": 1}
    assert texts(spool.read(1, 100, MAX_EVENT_BYTES)) == [f"line {i}" for i in range(20)]
    assert texts(spool.read(5, 3, MAX_EVENT_BYTES)) == ["line 4", "line 5", "line 6"]
    # A byte budget: the objects joined by commas never exceed it.
    small = spool.read(1, 100, 200)
    assert len(b",".join(small)) <= 200 and texts(small) == ["line 0", "line 1"]
    run(spool.close)


def test_acknowledged_segments_are_deleted_and_state_survives_reopen(tmp_path: Path) -> None:
    spool = opened(tmp_path, segment_bytes=300)
    for i in range(20):
        spool.append("f", f"line {i}", "syslog")
    before = segments(tmp_path)
    run(lambda: spool.acknowledge(12))
    after = segments(tmp_path)
    assert len(after) < len(before) and spool.pending == 8
    assert texts(spool.read(1, 100, MAX_EVENT_BYTES)) == [f"line {i}" for i in range(12, 20)]
    stream = spool.stream
    run(spool.close)

    again = opened(tmp_path, segment_bytes=300)
    assert (again.stream, again.acked_seq, again.last_seq) == (stream, 12, 20)
    assert texts(again.read(13, 100, MAX_EVENT_BYTES)) == [f"line {i}" for i in range(12, 20)]
    assert again.append("f", "after restart", "syslog") == 21
    run(lambda: again.acknowledge(21))
    assert segments(tmp_path) == [] and again.size_bytes == 0
    run(again.close)
    assert opened(tmp_path).last_seq == 21  # numbering continues even with no segment left


def test_torn_last_record_is_cut_off(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = opened(tmp_path, fsync="always")
    for i in range(3):
        spool.append("f", f"line {i}", "syslog")
        run(spool.sync)
    run(spool.close)
    [name] = segments(tmp_path)
    with open(tmp_path / name, "ab") as f:
        f.write(b'{"seq":4,"location":"f","te')  # the agent died in the middle of a write
    again = opened(tmp_path)
    assert again.last_seq == 3
    assert f"{name}:4: incomplete record (no newline) at the end of the spool" in caplog.text
    assert again.append("f", "next", "syslog") == 4
    assert texts(again.read(1, 10, MAX_EVENT_BYTES)) == ["line 0", "line 1", "line 2", "next"]
    run(again.close)


def test_damaged_record_in_the_middle_is_reported_with_file_and_line(tmp_path: Path) -> None:
    spool = opened(tmp_path)
    for i in range(3):
        spool.append("f", f"line {i}", "syslog")
    run(spool.close)
    [name] = segments(tmp_path)
    lines = (tmp_path / name).read_bytes().split(b"\n")
    lines[1] = b'{"seq":2,"text":"x"}'
    (tmp_path / name).write_bytes(b"\n".join(lines))
    with pytest.raises(SourceErrors) as caught:
        opened(tmp_path)
    [error] = caught.value.errors
    assert (error.path, error.line, error.element) == (str(tmp_path / name), 2, "record")
    assert "'location', 'text' and 'log_format' must be strings" in error.message


def test_missing_events_and_missing_state_are_errors(tmp_path: Path) -> None:
    spool = opened(tmp_path, segment_bytes=150)
    for i in range(6):
        spool.append("f", f"line {i}", "syslog")
    run(spool.close)
    names = segments(tmp_path)
    (tmp_path / names[1]).unlink()
    with pytest.raises(
        SourceErrors, match=f"{names[2]}:1: <record>: starts at seq .* but {names[0]} ends at"
    ):
        opened(tmp_path)
    (tmp_path / "state.json").unlink()
    with pytest.raises(SourceErrors, match=r"state\.json: missing while 2 segment files exist"):
        opened(tmp_path)
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(SourceErrors, match=r"notes\.txt: unexpected file in the spool directory"):
        opened(tmp_path)


def test_full_spool_refuses_and_counts(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=MAX_EVENT_BYTES + 400, segment_bytes=1 << 20)
    spool.open()
    spool.append("f", "x" * (MAX_EVENT_BYTES - 200), "syslog")
    with pytest.raises(SpoolFullError, match=f"spool {tmp_path} is full .* 9 events waiting") as caught:
        for _ in range(100):
            spool.append("f", "small", "syslog")
    assert "the event was dropped" in str(caught.value)
    assert (spool.full_errors, spool.last_seq) == (1, 9)
    run(lambda: spool.acknowledge(spool.last_seq))  # delivered: room again
    assert spool.append("f", "fits now", "syslog") == spool.last_seq
    run(spool.close)


def test_bad_events_are_refused_before_touching_the_spool(tmp_path: Path) -> None:
    spool = opened(tmp_path)
    with pytest.raises(EventTooLargeError, match=f"the limit is {MAX_EVENT_BYTES}"):
        spool.append("f", "x" * MAX_EVENT_BYTES, "syslog")
    with pytest.raises(ValueError, match="cannot be sent as JSON"):
        spool.append("f", "t", "json", {"when": object()})
    with pytest.raises(ValueError, match="cannot be sent as JSON"):
        spool.append("f", "t", "json", {"x": float("nan")})
    assert spool.last_seq == 0 and spool.size_bytes == 0
    with pytest.raises(ProtocolError, match="acknowledged seq 5, but the spool only reached 0"):
        run(lambda: spool.acknowledge(5))
    run(spool.close)


def test_new_stream_is_persisted(tmp_path: Path) -> None:
    spool = opened(tmp_path)
    old = spool.stream
    spool.append("f", "a", "syslog")
    run(spool.new_stream)
    assert spool.stream != old and len(spool.stream) == 32
    run(spool.close)
    again = opened(tmp_path)
    assert again.stream == spool.stream and again.last_seq == 1
    run(again.close)


def test_spool_needs_room_for_one_event(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="larger than one event"):
        Spool(tmp_path, max_bytes=1000, segment_bytes=100)
