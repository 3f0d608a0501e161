"""journald collector against a fake journalctl placed first on PATH (there is no systemd here)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from threatlockdown.collect.event import RawEvent
from threatlockdown.collect.journald import CURSOR_FILE, FieldFilter, FilterGroup, JournaldCollector

LOG = logging.getLogger("test.collect.journald")
T = TypeVar("T")

# Prints the records of $FAKE_JOURNAL (JSON lines) as `journalctl -o json --follow` would: after
# --after-cursor, or only those appended later for --since now; logs its argv to $FAKE_JOURNAL.args.
# With $FAKE_JOURNAL_EXIT_AFTER=N it exits after N records, like a journalctl that dies.
FAKE = r"""
import json, os, sys, time
journal = os.environ["FAKE_JOURNAL"]
exit_after = int(os.environ.get("FAKE_JOURNAL_EXIT_AFTER", "0"))
args = sys.argv[1:]
with open(journal + ".args", "a") as f:
    f.write(json.dumps(args) + "\n")
def records():
    with open(journal) as f:
        return [line for line in f.read().splitlines() if line.strip()]
start = 0
if "--after-cursor" in args:
    cursor = args[args.index("--after-cursor") + 1]
    cursors = [json.loads(r)["__CURSOR"] for r in records()]
    start = cursors.index(cursor) + 1
elif "now" in args:
    start = len(records())
printed = 0
while True:
    current = records()
    for line in current[start:]:
        sys.stdout.write(line + "\n")
        printed += 1
        if exit_after and printed >= exit_after:
            sys.stdout.flush()
            sys.stderr.write("fake journalctl: exiting as told\n")
            sys.exit(1)
    sys.stdout.flush()
    start = len(current)
    time.sleep(0.01)
"""


def record(n: int, unit: str = "ssh.service", **extra: Any) -> dict[str, Any]:
    return {
        "__CURSOR": f"s=abc;i={n}",
        "__REALTIME_TIMESTAMP": str(1_700_000_000_000_000 + n * 1_000_000),
        "_HOSTNAME": "web1",
        "SYSLOG_IDENTIFIER": "sshd",
        "_PID": str(1000 + n),
        "_SYSTEMD_UNIT": unit,
        "MESSAGE": f"Invalid user u{n} from 192.0.2.{n} port 22",
        **extra,
    }


@pytest.fixture
def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "journalctl"
    fake.write_text(f"#!{sys.executable}\n{FAKE}")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    path = tmp_path / "journal.jsonl"
    path.touch()
    monkeypatch.setenv("FAKE_JOURNAL", str(path))
    return path


def add(journal: Path, *records: dict[str, Any]) -> None:
    with open(journal, "a") as f:
        f.write("".join(json.dumps(r) + "\n" for r in records))


def calls(journal: Path) -> list[list[str]]:
    return [json.loads(line) for line in Path(f"{journal}.args").read_text().splitlines()]


def run(coro: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await asyncio.wait_for(coro(), 15)

    return asyncio.run(main())


@asynccontextmanager
async def running(c: JournaldCollector) -> AsyncIterator[asyncio.Queue[RawEvent]]:
    q: asyncio.Queue[RawEvent] = asyncio.Queue(100)
    task = asyncio.create_task(c.run(q))
    await asyncio.sleep(0.3)  # journalctl started
    try:
        yield q
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def take(q: asyncio.Queue[RawEvent], n: int, *, ack: bool = True) -> list[RawEvent]:
    events = []
    for _ in range(n):
        e = await asyncio.wait_for(q.get(), 3)
        if ack and e.ack is not None:
            e.ack()
        events.append(e)
    return events


def collector(state: Path, **kw: Any) -> JournaldCollector:
    kw.setdefault("groups", ())
    return JournaldCollector(state_dir=state, logger=LOG, restart_delay=0.05, flush_interval=0.1, **kw)


def test_records_become_wazuh_style_syslog_lines_and_the_cursor_resumes(
    journal: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    add(journal, record(1))  # already in the journal: not read on a first start

    async def first_run() -> list[RawEvent]:
        async with running(collector(state)) as q:
            add(journal, record(2), record(3), record(4))
            events = await take(q, 3, ack=False)
            for e in events[:2]:  # record 4 is never acked
                assert e.ack is not None
                e.ack()
            return events

    async def second_run() -> list[str]:
        async with running(collector(state)) as q:
            add(journal, record(5))
            texts = [e.text for e in await take(q, 2)]
            await asyncio.sleep(0.1)
            assert q.empty()
            return texts

    events = run(first_run)
    assert events[0].text == "Nov 14 22:13:22 web1 sshd[1002]: Invalid user u2 from 192.0.2.2 port 22"
    assert (events[0].location, events[0].log_format) == ("journald", "journald")
    assert events[0].record is not None and events[0].record["__CURSOR"] == "s=abc;i=2"
    assert json.loads((state / CURSOR_FILE).read_text())["cursor"] == "s=abc;i=3"
    assert [e.text.split(": ", 1)[1] for e in events] == [
        f"Invalid user u{n} from 192.0.2.{n} port 22" for n in (2, 3, 4)
    ]

    assert run(second_run) == [
        "Nov 14 22:13:24 web1 sshd[1004]: Invalid user u4 from 192.0.2.4 port 22",
        "Nov 14 22:13:25 web1 sshd[1005]: Invalid user u5 from 192.0.2.5 port 22",
    ]
    first, second = calls(journal)
    assert first == ["-o", "json", "--follow", "--no-pager", "--all", "--since", "now"]
    assert second == ["-o", "json", "--follow", "--no-pager", "--all", "--after-cursor", "s=abc;i=3"]


def test_filters_are_applied_and_literal_ones_passed_to_journalctl(journal: Path, tmp_path: Path) -> None:
    groups = (FilterGroup((FieldFilter("_SYSTEMD_UNIT", re.compile(r"^ssh\.service$")),)),)

    async def scenario() -> tuple[list[str], dict[str, int]]:
        c = collector(tmp_path / "state", groups=groups)
        async with running(c) as q:
            # The fake ignores FIELD=VALUE, so filtering here is what keeps cron out.
            add(journal, record(1, unit="cron.service"), record(2), record(3, unit="ssh.service.bak"))
            add(journal, {"__CURSOR": "s=abc;i=4", "_SYSTEMD_UNIT": "ssh.service"})  # no MESSAGE: skipped
            texts = [e.text for e in await take(q, 1)]
            await asyncio.sleep(0.2)
            assert q.empty()
            return texts, c.stats()

    texts, stats = run(scenario)
    assert texts == ["Nov 14 22:13:22 web1 sshd[1002]: Invalid user u2 from 192.0.2.2 port 22"]
    assert stats["filtered"] == 2
    assert stats["skipped"] == 1
    assert calls(journal)[0][-1] == "_SYSTEMD_UNIT=ssh.service"
    # Filtered and skipped records still move the saved cursor once everything before them is acked.
    assert json.loads((tmp_path / "state" / CURSOR_FILE).read_text())["cursor"] == "s=abc;i=4"


def test_a_dying_journalctl_is_restarted_after_the_last_record_read(
    journal: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_JOURNAL_EXIT_AFTER", "2")

    async def scenario() -> tuple[list[str], dict[str, int]]:
        c = collector(tmp_path / "state")
        async with running(c) as q:
            add(journal, *(record(n) for n in range(1, 6)))
            texts = [e.text.split(" from ")[1].split()[0] for e in await take(q, 5)]
            await asyncio.sleep(0.2)
            return texts, c.stats()

    texts, stats = run(scenario)
    assert texts == [f"192.0.2.{n}" for n in range(1, 6)]  # nothing lost, nothing repeated
    assert stats["restarts"] >= 2
    argv = calls(journal)
    assert argv[1][-2:] == ["--after-cursor", "s=abc;i=2"]
    assert argv[2][-2:] == ["--after-cursor", "s=abc;i=4"]


def test_missing_journalctl_is_counted_and_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))

    async def scenario() -> dict[str, int]:
        c = collector(tmp_path / "state")
        async with running(c):
            await asyncio.sleep(0.2)
        return c.stats()

    stats = run(scenario)
    assert stats["errors"] >= 2
    assert stats["restarts"] >= 2
