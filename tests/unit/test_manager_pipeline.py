"""The analysis pipeline: batches, durable alerts before acks, the AlertSink interface, agent events."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from threatlockdown.analysis.session import AnalysisSession, ProcessResult
from threatlockdown.collect.event import RawEvent
from threatlockdown.manager.agents import AgentIntake
from threatlockdown.manager.journal import BatchJournal
from threatlockdown.manager.outputs import AlertFiles, OutputSettings
from threatlockdown.manager.pipeline import AnalysisPipeline
from threatlockdown.manager.sink import NullSink
from threatlockdown.ruleset.loader import Ruleset, load_ruleset
from threatlockdown.transport import AgentEvent, AgentIdentity

INVALID_USER = "Nov 26 05:33:21 web1 sshd[1]: Invalid user {u} from 192.0.2.66 port 5000"  # 5710, level 5
LOG = logging.getLogger("test")


@pytest.fixture(scope="module")
def ruleset() -> Ruleset:
    return load_ruleset()


class RecordingSink:
    def __init__(self) -> None:
        self.seen: list[tuple[str, int, str]] = []

    async def handle(self, result: ProcessResult, alert: dict[str, Any]) -> None:
        assert result.rule is not None
        self.seen.append((alert["rule"]["id"], result.rule.level, alert["full_log"]))


class FailingSink:
    async def handle(self, result: ProcessResult, alert: dict[str, Any]) -> None:
        raise RuntimeError("boom")


def _pipeline(
    tmp_path: Path, ruleset: Ruleset, level: int, sinks: list[Any]
) -> tuple[AnalysisPipeline, asyncio.Queue[RawEvent]]:
    queue: asyncio.Queue[RawEvent] = asyncio.Queue(maxsize=100)
    files = AlertFiles(tmp_path, OutputSettings(), LOG)
    files.open()
    journal = BatchJournal(tmp_path / "batch.journal")
    journal.open()
    session = AnalysisSession(ruleset, log_alert_level=level, manager_name="mgr")
    return AnalysisPipeline(queue, session, files, journal, sinks, LOG), queue


def test_alerts_are_on_disk_before_the_ack(tmp_path: Path, ruleset: Ruleset) -> None:
    acked: list[int] = []

    async def main() -> None:
        pipeline, _queue = _pipeline(tmp_path, ruleset, 3, [NullSink()])

        def acker(n: int) -> Any:
            def ack() -> None:
                # the alert of this event (and of the whole batch) is already in the file
                assert len((tmp_path / "alerts.json").read_text().splitlines()) == 3
                assert (tmp_path / "batch.journal").read_text() != ""  # the batch is still journaled
                acked.append(n)

            return ack

        events = [
            RawEvent(
                "/var/log/auth.log", INVALID_USER.format(u=f"u{n}"), "syslog", ack=acker(n), source="file:x"
            )
            for n in range(3)
        ]
        await pipeline.process_batch(events)
        assert pipeline.counters.processed["file:x"] == 3
        assert pipeline.counters.alerts_by_level[5] == 3

    asyncio.run(main())
    assert acked == [0, 1, 2]
    assert (tmp_path / "batch.journal").read_text() == ""  # cleared once acked
    assert "u2" in (tmp_path / "alerts.log").read_text()


def test_sink_sees_every_alert_above_level_0_even_below_log_alert_level(
    tmp_path: Path, ruleset: Ruleset
) -> None:
    sink = RecordingSink()

    async def main() -> None:
        pipeline, _ = _pipeline(tmp_path, ruleset, 10, [sink, FailingSink()])
        await pipeline.process_batch([RawEvent("/l", INVALID_USER.format(u="zed"), "syslog")])
        assert pipeline.counters.sink_errors == 1  # logged and counted, the batch still completes
        assert pipeline.counters.alerts_written == 0

    asyncio.run(main())
    assert sink.seen == [("5710", 5, INVALID_USER.format(u="zed"))]
    assert (tmp_path / "alerts.json").read_text() == ""  # level 5 < log_alert_level 10


def test_run_takes_batches_until_stopped(tmp_path: Path, ruleset: Ruleset) -> None:
    async def main() -> int:
        pipeline, queue = _pipeline(tmp_path, ruleset, 3, [])
        for n in range(20):
            queue.put_nowait(RawEvent("/l", INVALID_USER.format(u=f"v{n}"), "syslog", source="s"))
        task = asyncio.create_task(pipeline.run())
        while queue.qsize():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        pipeline.stop()
        await asyncio.wait_for(task, 3)
        return pipeline.counters.processed["s"]

    assert asyncio.run(main()) == 20
    assert len((tmp_path / "alerts.json").read_text().splitlines()) >= 20


def test_agent_batch_returns_after_its_alerts_are_written(tmp_path: Path, ruleset: Ruleset) -> None:
    async def main() -> None:
        pipeline, queue = _pipeline(tmp_path, ruleset, 3, [])
        intake = AgentIntake(queue)
        task = asyncio.create_task(pipeline.run())
        who = AgentIdentity("001", "web1", "192.0.2.12")
        events = [
            AgentEvent(n + 1, "/var/log/auth.log", INVALID_USER.format(u=f"a{n}"), "syslog") for n in range(2)
        ]
        await asyncio.wait_for(intake.on_events(who, events), 5)
        alerts = [json.loads(line) for line in (tmp_path / "alerts.json").read_text().splitlines()]
        assert [a["agent"] for a in alerts] == [{"id": "001", "name": "web1", "ip": "192.0.2.12"}] * 2
        assert {a["location"] for a in alerts} == {"/var/log/auth.log"}
        assert pipeline.counters.processed["agent:001"] == 2
        pipeline.stop()
        await task

    asyncio.run(main())
