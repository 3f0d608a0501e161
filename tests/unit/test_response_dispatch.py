"""The dispatcher's idle detection: ``wait_idle`` and a stop that waits for every job it has taken."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from threatlockdown.response.dispatch import Dispatcher, Job
from threatlockdown.response.engine import EnginePaths, ResponseEngine
from threatlockdown.response.executor import Batch, InProcessExecutor, ItemResult
from threatlockdown.response.selfprotect import SelfProtection
from threatlockdown.response.settings import ResponseSettings
from threatlockdown.response.state import read_active
from threatlockdown.response.testkit import alert, config_with, inventory_of

COMMANDS = config_with("").commands


def job(command: str, n: int) -> Job:
    return Job(
        "add", COMMANDS[command], f"{command}/web1/192.0.2.{n}", "web1", f"192.0.2.{n}", None, 0, (), ""
    )


class Gated:
    """Every execution waits for one gate, so several finish in the same turn of the loop."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.started: list[str] = []

    async def execute(self, batch: Batch) -> list[ItemResult]:
        self.started.append(batch.command)
        await self.gate.wait()
        return [ItemResult(i.key, i.host, "ok") for i in batch.items]

    async def close(self) -> None:
        return None


def test_wait_idle_sees_several_runs_finish_together_and_their_results_recorded() -> None:
    async def body() -> None:
        ex = Gated()
        recorded: list[str] = []

        async def on_results(batch: Batch, pairs: list[tuple[Job, ItemResult]]) -> None:
            await asyncio.sleep(0)  # recording may yield: idle only once it is done
            recorded.extend(j.key for j, _ in pairs)

        d = Dispatcher(ex, on_results=on_results, window=0.01, concurrency=4)
        runner = asyncio.create_task(d.run())
        assert not d.busy and await d.wait_idle(0.1)
        for command, n in (("firewall-drop", 1), ("host-deny", 2), ("custom", 3)):
            await d.submit(job(command, n))
        assert d.busy
        waiter = asyncio.create_task(d.wait_idle(5.0))
        deadline = time.monotonic() + 5
        while len(ex.started) < 3:  # three executions (one per command), all waiting for the gate
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        assert not waiter.done(), "idle reported while three executions run"
        ex.gate.set()  # all three finish in the same turn of the loop
        assert await asyncio.wait_for(waiter, 2.0) is True
        assert sorted(recorded) == [
            "custom/web1/192.0.2.3",
            "firewall-drop/web1/192.0.2.1",
            "host-deny/web1/192.0.2.2",
        ]
        assert not d.busy
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)

    asyncio.run(body())


def test_wait_idle_times_out_while_a_job_is_in_the_batch_being_formed() -> None:
    async def body() -> None:
        ex = InProcessExecutor()

        async def on_results(batch: Batch, pairs: list[tuple[Job, ItemResult]]) -> None:
            return None

        d = Dispatcher(ex, on_results=on_results, window=0.5)
        runner = asyncio.create_task(d.run())
        await d.submit(job("firewall-drop", 1))
        await asyncio.sleep(0.1)  # taken from the queue, waiting out the window
        assert d.waiting == 0 and d.stats.running == 0 and d.busy
        assert await d.wait_idle(0.1) is False
        assert await d.wait_idle(2.0) is True
        assert len(ex.batches) == 1
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)

    asyncio.run(body())


def test_stop_waits_for_a_job_taken_into_the_batching_window(tmp_path: Path) -> None:
    """A stop right after an alert: the add is out of the queue, in the 0.5 s window, not yet running.
    It must run before the stop returns (before, the stop saw an empty queue and nothing running, and
    cancelled the dispatcher with the add in hand)."""
    ex = InProcessExecutor()
    body_xml = (
        "<active-response><command>firewall-drop</command><location>local</location>"
        "<rules_id>5712</rules_id><timeout>600</timeout></active-response>"
    )

    async def body() -> None:
        engine = ResponseEngine(
            config=config_with(body_xml),
            settings=ResponseSettings(batch_window=0.5),
            inventory=inventory_of({"web": ["web1"]}),
            executor=ex,
            paths=EnginePaths(tmp_path / "state.db", tmp_path / "logs"),
            protection=SelfProtection(enabled=False),
        )
        await engine.start()
        (d,) = await engine.handle_alert(alert())
        assert d.outcome == "add"
        await asyncio.sleep(0.1)
        assert engine.dispatcher.waiting == 0 and engine.dispatcher.stats.running == 0
        await engine.stop()

    asyncio.run(body())
    assert [(b.action, [i.key for i in b.items]) for b in ex.batches] == [
        ("add", ["firewall-drop/web1/198.51.100.7"])
    ]
    (entry,) = read_active(tmp_path / "state.db")
    assert entry.phase == "active" and entry.last_result == "ok"
