"""File tailer on real files with real inotify: latency, rotation, truncation, restarts, wildcards."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from threatlockdown.collect.event import RawEvent
from threatlockdown.collect.formats import file_format
from threatlockdown.collect.positions import POSITIONS_FILE, PositionStore
from threatlockdown.collect.tailer import FileClaims, FileTailer

LOG = logging.getLogger("test.collect.files")
T = TypeVar("T")


def run(coro: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await asyncio.wait_for(coro(), 15)

    return asyncio.run(main())


def tailer(location: Path | str, state: Path, **kw: Any) -> FileTailer:
    fmt = file_format(kw.pop("log_format", "syslog"), None)
    assert fmt is not None
    kw.setdefault("rotated_grace", 0.3)
    kw.setdefault("flush_interval", 0.1)
    return FileTailer(location=str(location), fmt=fmt, store=PositionStore(state, LOG), logger=LOG, **kw)


@asynccontextmanager
async def running(t: FileTailer, maxsize: int = 1000) -> AsyncIterator[asyncio.Queue[RawEvent]]:
    q: asyncio.Queue[RawEvent] = asyncio.Queue(maxsize)
    task = asyncio.create_task(t.run(q))
    await asyncio.sleep(0.05)  # first scan done
    try:
        yield q
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def take(
    q: asyncio.Queue[RawEvent], n: int, *, ack: bool = True, timeout: float = 3.0
) -> list[RawEvent]:
    events = []
    for _ in range(n):
        e = await asyncio.wait_for(q.get(), timeout)
        if ack and e.ack is not None:
            e.ack()
        events.append(e)
    return events


async def nothing_more(q: asyncio.Queue[RawEvent], wait: float = 0.3) -> None:
    await asyncio.sleep(wait)
    assert q.empty(), f"unexpected event {q.get_nowait()}"


def append(path: Path, *lines: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(f"{line}\n" for line in lines))


def saved(state: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((state / POSITIONS_FILE).read_text())
    return data


def test_new_line_is_seen_within_50_ms(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    append(log, "before start")

    async def scenario() -> list[float]:
        t = tailer(log, tmp_path / "state")
        async with running(t) as q:
            assert t.inotify_active
            delays = []
            for i in range(7):
                start = time.monotonic()
                append(log, f"line {i}")
                (event,) = await take(q, 1)
                delays.append(time.monotonic() - start)
                assert event.text == f"line {i}"
                assert event.location == str(log)
                assert event.log_format == "syslog"
            return delays

    delays = run(scenario)
    assert statistics.median(delays) < 0.05, delays


def test_first_start_begins_at_the_end_unless_configured(tmp_path: Path) -> None:
    async def scenario(read_existing: bool, log: Path) -> list[str]:
        append(log, "old 1", "old 2")
        with open(log, "a") as f:
            f.write("being writ")  # a line in progress at start is kept whole
        async with running(tailer(log, tmp_path / "state", read_existing=read_existing)) as q:
            with open(log, "a") as f:
                f.write("ten\n")
            append(log, "new")
            n = 4 if read_existing else 2
            texts = [e.text for e in await take(q, n)]
            await nothing_more(q, 0.1)
            return texts

    assert run(lambda: scenario(False, tmp_path / "a.log")) == ["being written", "new"]
    assert run(lambda: scenario(True, tmp_path / "b.log")) == ["old 1", "old 2", "being written", "new"]


def test_polling_fallback_without_inotify(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.touch()

    async def scenario() -> float:
        t = tailer(log, tmp_path / "state", use_inotify=False, poll_interval=0.05)
        async with running(t) as q:
            assert not t.inotify_active
            start = time.monotonic()
            append(log, "polled")
            (event,) = await take(q, 1)
            assert event.text == "polled"
            return time.monotonic() - start

    assert run(scenario) < 0.5


def test_partial_last_line_waits_for_its_newline(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.touch()

    async def scenario() -> None:
        async with running(tailer(log, tmp_path / "state")) as q:
            with open(log, "a") as f:
                f.write("half a ")
            await nothing_more(q, 0.15)
            with open(log, "a") as f:
                f.write("line\n")
            (event,) = await take(q, 1)
            assert event.text == "half a line"

    run(scenario)


def test_rotation_by_rename_under_a_steady_writer_delivers_every_line_once(tmp_path: Path) -> None:
    log = tmp_path / "syslog"
    log.touch()
    total = 300

    async def writer() -> None:
        f = open(log, "a", buffering=1)  # noqa: SIM115 - reopened on rotation like a syslog daemon
        for i in range(total):
            f.write(f"msg {i}\n")
            if i in (99, 199):
                os.rename(log, f"{log}.{i}")
                # Like rsyslog before its HUP: a few more lines still go to the renamed file.
                for j in range(3):
                    f.write(f"late {i}.{j}\n")
                f.close()
                f = open(log, "a", buffering=1)  # noqa: SIM115
            if i % 10 == 0:
                await asyncio.sleep(0.001)
        f.close()

    async def scenario() -> tuple[list[str], dict[str, int]]:
        t = tailer(log, tmp_path / "state")
        async with running(t) as q:
            texts: list[str] = []
            writing = asyncio.create_task(writer())
            texts += [e.text for e in await take(q, total + 6)]
            await writing
            await nothing_more(q, 0.5)
            return texts, t.stats()

    texts, stats = run(scenario)
    expected = [f"msg {i}" for i in range(total)] + [f"late {i}.{j}" for i in (99, 199) for j in range(3)]
    assert Counter(texts) == Counter(expected)
    assert max(Counter(texts).values()) == 1
    # Lines of one file keep their order.
    assert [t for t in texts if t.startswith("msg")] == [f"msg {i}" for i in range(total)]
    assert stats["rotations"] == 2
    assert stats["errors"] == 0


def test_copytruncate_with_a_writer_pausing_around_the_truncate(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.touch()

    async def scenario() -> tuple[list[str], dict[str, int]]:
        t = tailer(log, tmp_path / "state")
        async with running(t) as q:
            append(log, *(f"before {i}" for i in range(50)))
            texts = [e.text for e in await take(q, 50)]
            # logrotate copytruncate while the writer pauses: copy, then truncate in place.
            shutil.copyfile(log, f"{log}.1")
            with open(log, "r+") as f:
                f.truncate(0)
            await asyncio.sleep(0.05)
            append(log, *(f"after {i}" for i in range(20)))
            texts += [e.text for e in await take(q, 20)]
            await nothing_more(q, 0.2)
            return texts, t.stats()

    texts, stats = run(scenario)
    assert texts == [f"before {i}" for i in range(50)] + [f"after {i}" for i in range(20)]
    assert stats["truncations"] == 1


def test_truncated_and_regrown_past_the_offset_is_noticed_by_the_first_line(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.touch()

    async def scenario() -> list[str]:
        async with running(tailer(log, tmp_path / "state")) as q:
            append(log, "first A", "second A")
            texts = [e.text for e in await take(q, 2)]
            # Without yielding to the tailer: truncate and write more than was there before.
            with open(log, "w") as f:
                f.write("first B is longer\nsecond B is longer\n")
            texts += [e.text for e in await take(q, 2)]
            await nothing_more(q, 0.1)
            return texts

    assert run(scenario) == ["first A", "second A", "first B is longer", "second B is longer"]


def test_restart_resumes_exactly_after_the_acked_lines(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    state = tmp_path / "state"
    append(log, *(f"line {i}" for i in range(1, 11)))

    async def first_run() -> None:
        async with running(tailer(log, state, read_existing=True)) as q:
            events = await take(q, 10, ack=False)
            assert [e.text for e in events] == [f"line {i}" for i in range(1, 11)]
            for i in (0, 1, 2, 4, 5):  # line 4 (index 3) is never acked: a consumer that crashed
                ack = events[i].ack
                assert ack is not None
                ack()

    async def second_run() -> list[str]:
        async with running(tailer(log, state)) as q:
            append(log, "line 11")
            return [e.text for e in await take(q, 8)]

    async def third_run() -> None:
        async with running(tailer(log, state)) as q:
            await nothing_more(q, 0.2)

    run(first_run)
    entry = saved(state)["files"][str(log)]
    assert entry[0]["offset"] == len(b"line 1\nline 2\nline 3\n")
    assert entry[0]["inode"] == log.stat().st_ino
    assert run(second_run) == [f"line {i}" for i in range(4, 12)]
    run(third_run)
    assert saved(state)["files"][str(log)][0]["offset"] == log.stat().st_size


def test_rotation_while_stopped_finishes_the_old_file_then_reads_the_new_one(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    state = tmp_path / "state"
    log.touch()

    async def first_run() -> None:
        async with running(tailer(log, state)) as q:
            append(log, "a1", "a2", "a3")
            events = await take(q, 3, ack=False)
            assert events[0].ack is not None
            events[0].ack()

    async def second_run() -> tuple[list[RawEvent], dict[str, int]]:
        t = tailer(log, state, rotated_grace=0.2, poll_interval=0.05)
        async with running(t) as q:
            events = await take(q, 5)
            await nothing_more(q, 0.6)  # the rotated file is closed after 0.2 s without growth
            return events, t.stats()

    run(first_run)
    append(log, "a4")  # written after we stopped, before the rotation
    os.rename(log, tmp_path / "auth.log.1")
    append(log, "b1", "b2")
    events, stats = run(second_run)
    assert [e.text for e in events] == ["a2", "a3", "a4", "b1", "b2"]
    assert {e.location for e in events} == {str(log)}
    assert stats["rotated_missing"] == 0
    # Once the rotated file is finished and acked, only the current file is remembered.
    entries = saved(state)["files"][str(log)]
    assert [e["inode"] for e in entries] == [log.stat().st_ino]


def test_a_different_file_at_the_same_path_starts_at_zero(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    state = tmp_path / "state"
    append(log, "original")

    async def first_run() -> None:
        async with running(tailer(log, state)) as q:
            append(log, "seen")
            await take(q, 1)

    async def second_run() -> list[str]:
        async with running(tailer(log, state)) as q:
            texts = [e.text for e in await take(q, 2)]
            await nothing_more(q, 0.1)
            return texts

    run(first_run)
    log.unlink()
    append(log, "replacement 1", "replacement 2")
    assert run(second_run) == ["replacement 1", "replacement 2"]


def test_same_inode_with_another_first_line_starts_at_zero(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    state = tmp_path / "state"
    log.touch()

    async def first_run() -> None:
        async with running(tailer(log, state)) as q:
            append(log, "old first line", "old second")
            await take(q, 2)

    async def second_run() -> list[str]:
        async with running(tailer(log, state)) as q:
            return [e.text for e in await take(q, 3)]

    run(first_run)
    with open(log, "r+") as f:  # rewritten in place while stopped (same inode, longer content)
        f.write("new first line!\nnew second line\nnew third line\n")
    assert run(second_run) == ["new first line!", "new second line", "new third line"]


def test_wildcard_picks_up_new_matching_files_from_their_start(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    append(logs / "a.log", "existing a")

    async def scenario() -> list[tuple[str, str]]:
        async with running(tailer(logs / "*.log", tmp_path / "state", exclude=[str(logs / "debug*")])) as q:
            append(logs / "other.txt", "not matched")
            append(logs / "debug.log", "excluded")
            append(logs / "b.log", "b 1", "b 2")
            append(logs / "a.log", "a 2")
            events = await take(q, 3)
            await nothing_more(q, 0.2)
            return sorted((Path(e.location).name, e.text) for e in events)

    assert run(scenario) == [("a.log", "a 2"), ("b.log", "b 1"), ("b.log", "b 2")]


def test_a_rotated_file_matching_the_wildcard_is_not_read_twice(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").touch()

    async def scenario() -> list[str]:
        async with running(tailer(logs / "app.log*", tmp_path / "state")) as q:
            append(logs / "app.log", "one", "two")
            texts = [e.text for e in await take(q, 2)]
            os.rename(logs / "app.log", logs / "app.log.1")
            append(logs / "app.log", "three")
            texts += [e.text for e in await take(q, 1)]
            await nothing_more(q, 0.6)
            return texts

    assert run(scenario) == ["one", "two", "three"]


def test_overlapping_locations_read_a_file_once(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.touch()
    claims = FileClaims()

    async def scenario() -> list[str]:
        state = tmp_path / "state"
        first = tailer(log, state, claims=claims)
        second = tailer(tmp_path / "*.log", state, claims=claims)
        async with running(first) as q1, running(second) as q2:
            append(log, "only once")
            texts = [e.text for e in await take(q1, 1)]
            await nothing_more(q2, 0.2)
            return texts

    assert run(scenario) == ["only once"]


def test_multi_line_and_json_formats(tmp_path: Path) -> None:
    multi, js = tmp_path / "multi.log", tmp_path / "events.json"
    multi.touch()
    js.touch()

    async def scenario() -> tuple[list[RawEvent], list[RawEvent], dict[str, int]]:
        fmt = file_format("multi-line: 2", 2)
        assert fmt is not None
        state = tmp_path / "state"
        m = FileTailer(location=str(multi), fmt=fmt, store=PositionStore(state, LOG), logger=LOG)
        j = tailer(js, state, log_format="json")
        async with running(m) as qm, running(j) as qj:
            append(multi, "Jan 1 00:00:00 h a: one", "continued", "second")
            append(js, '{"a": 1}', "garbage", '{"b": [2]}')
            em = await take(qm, 1)
            ej = await take(qj, 2)
            await nothing_more(qm, 0.1)
            return em, ej, j.stats()

    em, ej, jstats = run(scenario)
    assert [(e.text, e.log_format) for e in em] == [("Jan 1 00:00:00 h a: one continued", "multi-line")]
    assert [(e.text, e.log_format) for e in ej] == [('{"a": 1}', "json"), ('{"b": [2]}', "json")]
    assert jstats["skipped"] == 1


def test_back_pressure_waits_instead_of_dropping(tmp_path: Path) -> None:
    log = tmp_path / "busy.log"
    log.touch()

    async def scenario() -> tuple[list[str], dict[str, int]]:
        t = tailer(log, tmp_path / "state")
        async with running(t, maxsize=2) as q:
            append(log, *(f"n{i}" for i in range(200)))
            await asyncio.sleep(0.1)
            assert q.full()
            texts = [e.text for e in await take(q, 200)]
            return texts, t.stats()

    texts, stats = run(scenario)
    assert texts == [f"n{i}" for i in range(200)]
    assert stats["dropped"] == 0
    assert stats["received"] == 200


def test_corrupt_positions_file_is_set_aside_with_a_clear_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / POSITIONS_FILE).write_text(
        '{"format": "threatlockdown-file-positions",\n "version": 1,\n "files": [}'
    )
    with caplog.at_level(logging.ERROR):
        store = PositionStore(state, LOG)
    assert store.paths() == []
    assert f"{state / POSITIONS_FILE}:3: <file_positions>: invalid JSON" in caplog.text
    assert list(state.glob(f"{POSITIONS_FILE}.bad-*"))
    assert not (state / POSITIONS_FILE).exists()


def test_reading_pauses_while_too_many_events_wait_for_acks(tmp_path: Path) -> None:
    log = tmp_path / "burst.log"
    log.touch()

    async def scenario() -> tuple[list[str], int]:
        t = tailer(log, tmp_path / "state", max_unacked=5, poll_interval=0.05)
        async with running(t) as q:
            append(log, *(f"e{i}" for i in range(12)))
            first = await take(q, 5, ack=False)
            await asyncio.sleep(0.2)
            assert q.empty()  # paused: five events in flight, none acked
            unacked = t.stats()["unacked"]
            for e in first:
                assert e.ack is not None
                e.ack()
            rest = await take(q, 7)
            return [e.text for e in first + rest], unacked

    texts, unacked = run(scenario)
    assert texts == [f"e{i}" for i in range(12)]
    assert unacked == 5
