"""Batches of one command that arrive while its run is busy share the next run; each caller gets its own."""

from __future__ import annotations

import asyncio
import threading

import pytest

from threatlockdown.response.ansible_lanes import Lanes
from threatlockdown.response.executor import Action, Batch, ItemResult, ResponseItem


class FakeRuns:
    """Records each run; a run lasts until released (or ``seconds``)."""

    def __init__(self, seconds: float = 0.2, fail: bool = False) -> None:
        self.seconds = seconds
        self.fail = fail
        self.runs: list[Batch] = []
        self.cancels: list[threading.Event] = []

    async def __call__(self, batch: Batch, cancel: threading.Event) -> list[ItemResult]:
        self.runs.append(batch)
        self.cancels.append(cancel)
        deadline = asyncio.get_running_loop().time() + self.seconds
        while asyncio.get_running_loop().time() < deadline and not cancel.is_set():
            await asyncio.sleep(0.01)
        if self.fail:
            raise RuntimeError("runner exploded")
        status = "failed" if cancel.is_set() else "ok"
        return [ItemResult(i.key, i.host, status, message=batch.batch_id) for i in batch.items]


def batch(name: str, size: int, command: str = "firewall-drop", action: Action = "add") -> Batch:
    items = tuple(ResponseItem(f"{name}-{i}", "web1", srcip=f"203.0.113.{i + 1}") for i in range(size))
    return Batch(name, command, command, action, items)


async def submit_spaced(lanes: Lanes, batches: list[Batch], gap: float) -> list[list[ItemResult]]:
    tasks = []
    for b in batches:
        tasks.append(asyncio.create_task(lanes.submit(b)))
        await asyncio.sleep(gap)
    return list(await asyncio.gather(*tasks))


def test_batches_waiting_for_a_busy_lane_share_one_run() -> None:
    runs = FakeRuns(seconds=0.3)
    lanes = Lanes(runs, per_lane=1, max_items=1000, linger=0.0)
    batches = [batch(f"b{i}", 3) for i in range(4)]
    results = asyncio.run(submit_spaced(lanes, batches, 0.05))
    assert [r.batch_id for r in runs.runs] == ["b0", "b1+2"]
    assert [len(r.items) for r in runs.runs] == [3, 9]
    for given, got in zip(batches, results, strict=True):
        assert [r.key for r in got] == [i.key for i in given.items]
    assert {r.message for r in results[2]} == {"b1+2"}
    assert lanes.merged_batches == 3


def test_other_commands_and_actions_do_not_wait() -> None:
    runs = FakeRuns(seconds=0.3)
    lanes = Lanes(runs, per_lane=1, max_items=1000, linger=0.0)
    batches = [batch("add", 1), batch("del", 1, action="delete"), batch("deny", 1, command="host-deny")]
    asyncio.run(submit_spaced(lanes, batches, 0.0))
    assert sorted(r.batch_id for r in runs.runs) == ["add", "del", "deny"]


def test_per_lane_runs_and_item_limit() -> None:
    runs = FakeRuns(seconds=0.3)
    lanes = Lanes(runs, per_lane=2, max_items=5, linger=0.0)
    batches = [batch(f"b{i}", 2) for i in range(5)]
    asyncio.run(submit_spaced(lanes, batches, 0.02))
    # b0 and b1 run at once; b2..b4 wait; a run takes at most 5 items, so b4 needs a run of its own.
    assert [r.batch_id for r in runs.runs] == ["b0", "b1", "b2+1", "b4"]


def test_follow_up_run_lingers_for_late_batches() -> None:
    runs = FakeRuns(seconds=0.2)
    lanes = Lanes(runs, per_lane=1, max_items=1000, linger=0.15)

    async def scenario() -> None:
        first = asyncio.create_task(lanes.submit(batch("b0", 1)))
        await asyncio.sleep(0.05)
        second = asyncio.create_task(lanes.submit(batch("b1", 1)))
        await first  # b0's run is over; b1 waits for the linger
        late = asyncio.create_task(lanes.submit(batch("b2", 1)))
        await asyncio.gather(second, late)

    asyncio.run(scenario())
    assert [r.batch_id for r in runs.runs] == ["b0", "b1+1"]


def test_cancelling_a_queued_caller_removes_its_batch() -> None:
    runs = FakeRuns(seconds=0.3)
    lanes = Lanes(runs, per_lane=1, max_items=1000, linger=0.0)

    async def scenario() -> None:
        first = asyncio.create_task(lanes.submit(batch("b0", 1)))
        await asyncio.sleep(0.05)
        queued = asyncio.create_task(lanes.submit(batch("b1", 1)))
        kept = asyncio.create_task(lanes.submit(batch("b2", 1)))
        await asyncio.sleep(0.05)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        await asyncio.gather(first, kept)

    asyncio.run(scenario())
    assert [r.batch_id for r in runs.runs] == ["b0", "b2"]


def test_cancelling_the_only_caller_of_a_run_cancels_the_run() -> None:
    runs = FakeRuns(seconds=5.0)
    lanes = Lanes(runs, per_lane=1, max_items=1000, linger=0.0)

    async def scenario() -> None:
        task = asyncio.create_task(lanes.submit(batch("b0", 1)))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(lanes.wait(), 2.0)

    asyncio.run(scenario())
    assert runs.cancels[0].is_set()


def test_a_shared_run_is_not_cancelled_for_one_caller() -> None:
    runs = FakeRuns(seconds=0.3)
    lanes = Lanes(runs, per_lane=1, max_items=1000, linger=0.0)

    async def scenario() -> list[ItemResult]:
        first = asyncio.create_task(lanes.submit(batch("b0", 1)))
        await asyncio.sleep(0.05)
        a = asyncio.create_task(lanes.submit(batch("b1", 1)))
        b = asyncio.create_task(lanes.submit(batch("b2", 1)))
        await first
        await asyncio.sleep(0.05)  # b1 and b2 now share a run
        a.cancel()
        with pytest.raises(asyncio.CancelledError):
            await a
        return await b

    results = asyncio.run(scenario())
    assert results[0].status == "ok"
    assert not runs.cancels[1].is_set()


def test_a_failing_run_fails_its_callers() -> None:
    lanes = Lanes(FakeRuns(seconds=0.0, fail=True), per_lane=1, max_items=10, linger=0.0)
    with pytest.raises(RuntimeError, match="runner exploded"):
        asyncio.run(lanes.submit(batch("b0", 1)))


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Lanes(FakeRuns(), per_lane=0, max_items=10)
