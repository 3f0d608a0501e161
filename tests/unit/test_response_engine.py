"""The engine end to end with the in-process executor: add/refresh/revert, batching, bounds, retries,
restarts, repeated offenders, operator requests and the two audit files."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from threatlockdown.response.engine import EngineError, EnginePaths, ResponseEngine
from threatlockdown.response.executor import Batch, InProcessExecutor, ItemResult, ItemStatus, ResponseItem
from threatlockdown.response.selfprotect import SelfProtection
from threatlockdown.response.settings import ResponseSettings
from threatlockdown.response.state import read_active, read_history
from threatlockdown.response.testkit import alert, config_with, inventory_of

INV = inventory_of({"web": ["web1", "web2"]}, hostvars={"manager": {"threatlockdown_agent_id": "000"}})
FAST = ResponseSettings(batch_window=0.02, retry_initial=0.05, retry_max=0.2, flush_interval=0.05)


def fw(timeout: int = 60, location: str = "local", extra: str = "") -> str:
    return (
        f"<active-response><command>firewall-drop</command><location>{location}</location>"
        f"<rules_id>5712</rules_id><timeout>{timeout}</timeout>{extra}</active-response>"
    )


def make(
    tmp: Path,
    body: str,
    *,
    settings: ResponseSettings = FAST,
    executor: Any = None,
    clock: Callable[[], float] = time.time,
    white_list: tuple[str, ...] = (),
) -> ResponseEngine:
    return ResponseEngine(
        config=config_with(body, white_list=white_list),
        settings=settings,
        inventory=INV,
        executor=executor if executor is not None else InProcessExecutor(),
        paths=EnginePaths(tmp / "queue" / "state.db", tmp / "logs"),
        protection=SelfProtection(enabled=False),
        clock=clock,
    )


def run(coro: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(coro())


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def actions(ex: InProcessExecutor) -> list[tuple[str, list[str]]]:
    return [(b.action, [i.key for i in b.items]) for b in ex.batches]


K7 = "firewall-drop/web1/198.51.100.7"


def test_add_then_refresh_without_executing_twice_then_revert_within_a_second(tmp_path: Path) -> None:
    ex = InProcessExecutor()

    async def body() -> None:
        engine = make(tmp_path, fw(timeout=1), executor=ex)
        await engine.start()
        first = await engine.handle_alert(alert())
        await until(lambda: engine.state.active[K7].phase == "active")
        added_at = time.time()
        second = await engine.handle_alert(alert())
        assert [d.outcome for d in first + second] == ["add", "refresh"]
        await until(lambda: len(ex.batches) == 2, timeout=4)
        deleted_at = time.time()
        entry_expiry = second[0].expires
        assert entry_expiry is not None
        assert deleted_at - entry_expiry < 1.0, "the revert runs within a second of expiry"
        assert deleted_at >= entry_expiry
        assert deleted_at - added_at >= 0.9
        assert actions(ex) == [("add", [K7]), ("delete", [K7])]
        await until(lambda: not engine.state.active)
        await engine.stop()

    run(body)
    events = [h.event for h in read_history(tmp_path / "queue" / "state.db")]
    assert events == ["triggered", "applied", "reverting", "reverted"], "refreshes are audited, not history"


def test_actions_due_within_the_window_are_one_execution_per_command_and_action(tmp_path: Path) -> None:
    ex = InProcessExecutor()
    settings = ResponseSettings(batch_window=0.3, max_batch_items=40)

    async def body() -> None:
        engine = make(tmp_path, fw(location="all"), executor=ex, settings=settings)
        await engine.start()
        for i in range(50):
            await engine.handle_alert(alert(srcip=f"203.0.113.{i}"))
        await until(lambda: sum(len(b.items) for b in ex.batches) == 100)
        await engine.stop()

    run(body)
    # 50 addresses x 2 hosts = 100 items: one command and action, split at max_batch_items
    assert [len(b.items) for b in ex.batches] == [40, 40, 20]
    assert {b.command for b in ex.batches} == {"firewall-drop"} and {b.action for b in ex.batches} == {"add"}
    assert sorted(ex.batches[0].hosts) == ["web1", "web2"]


def test_concurrency_and_queue_are_bounded_with_back_pressure(tmp_path: Path) -> None:
    running = 0
    peak = 0
    release = asyncio.Event

    class Slow:
        def __init__(self) -> None:
            self.gate: asyncio.Event | None = None
            self.batches: list[Batch] = []

        async def execute(self, batch: Batch) -> list[ItemResult]:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            self.batches.append(batch)
            assert self.gate is not None
            await self.gate.wait()
            running -= 1
            return [ItemResult(i.key, i.host, "ok") for i in batch.items]

        async def close(self) -> None:
            return None

    slow = Slow()
    settings = ResponseSettings(batch_window=0.0, max_batch_items=1, max_concurrency=2, queue_size=3)

    async def body() -> None:
        slow.gate = release()
        engine = make(tmp_path, fw(), executor=slow, settings=settings)
        await engine.start()
        done = 0

        async def feed() -> None:
            nonlocal done
            for i in range(10):
                await engine.handle_alert(alert(srcip=f"203.0.113.{i}"))
                done += 1

        feeder = asyncio.create_task(feed())
        await asyncio.sleep(0.3)
        # 2 running + 1 taken by the dispatcher waiting for a slot + 3 queued: the 7th alert waits
        assert running == 2 and peak == 2
        assert done <= 7, f"back-pressure: handle_alert should wait, {done} alerts went through"
        assert not feeder.done()
        slow.gate.set()
        await asyncio.wait_for(feeder, 5)
        await until(lambda: len(slow.batches) == 10)
        await engine.stop()

    run(body)
    assert peak == 2


def scripted(statuses: dict[str, list[ItemStatus]]) -> InProcessExecutor:
    """Answers per (action) from a list, then "ok"."""

    def decide(batch: Batch, item: ResponseItem) -> ItemStatus:
        todo = statuses.get(batch.action, [])
        return todo.pop(0) if todo else "ok"

    return InProcessExecutor(decide=decide)


def test_failed_adds_are_retried_with_backoff_and_visible(tmp_path: Path) -> None:
    ex = scripted({"add": ["unreachable", "failed"]})

    async def body() -> None:
        engine = make(tmp_path, fw(), executor=ex)
        await engine.start()
        await engine.handle_alert(alert())
        await until(lambda: len(ex.batches) == 1)
        await asyncio.sleep(0.03)
        entry = engine.state.active[K7]
        assert (entry.phase, entry.attempts, entry.last_result) == ("adding", 1, "unreachable")
        await until(lambda: engine.state.active[K7].phase == "active")
        assert engine.state.active[K7].attempts == 3
        await engine.stop()

    run(body)
    assert [b.action for b in ex.batches] == ["add"] * 3
    gaps = [h.event for h in read_history(tmp_path / "queue" / "state.db")]
    assert gaps == ["triggered", "add_failed", "add_failed", "applied"]
    audit = [json.loads(x) for x in (tmp_path / "logs" / "active-responses.json").read_text().splitlines()]
    retries = [a for a in audit if a["event"] == "retry"]
    assert [r["attempt"] for r in retries] == [2, 3]
    assert retries[1]["delay"] == 2 * retries[0]["delay"]


def test_an_add_that_never_reached_the_host_is_dropped_at_expiry_without_a_delete(tmp_path: Path) -> None:
    ex = scripted({"add": ["unreachable"] * 10})
    settings = ResponseSettings(batch_window=0.01, retry_initial=0.01, add_attempts=2, flush_interval=0.05)

    async def body() -> None:
        engine = make(tmp_path, fw(timeout=1), executor=ex, settings=settings)
        await engine.start()
        await engine.handle_alert(alert())
        await until(lambda: len(ex.batches) == 2)
        await until(lambda: not engine.state.active, timeout=3)
        await engine.stop()

    run(body)
    assert [b.action for b in ex.batches] == ["add", "add"]
    events = [h.event for h in read_history(tmp_path / "queue" / "state.db")]
    assert events[-2:] == ["gave_up", "expired"]


def test_reverts_are_retried_until_they_succeed(tmp_path: Path) -> None:
    ex = scripted({"delete": ["unreachable"] * 4})

    async def body() -> None:
        engine = make(tmp_path, fw(timeout=1), executor=ex)
        await engine.start()
        await engine.handle_alert(alert())
        await until(lambda: any(b.action == "delete" for b in ex.batches), timeout=3)
        await asyncio.sleep(0.05)
        entry = engine.state.active[K7]
        assert entry.phase == "reverting" and entry.last_result == "unreachable"
        listed = read_active(tmp_path / "queue" / "state.db")
        assert listed[0].phase == "reverting", "a failing revert is visible to tld ar list"
        await until(lambda: not engine.state.active, timeout=5)
        await engine.stop()

    run(body)
    assert [b.action for b in ex.batches] == ["add"] + ["delete"] * 5


def test_graceful_stop_keeps_blocks_and_a_restart_reverts_them_on_time(tmp_path: Path) -> None:
    ex1, ex2 = InProcessExecutor(), InProcessExecutor()

    async def body() -> None:
        engine = make(tmp_path, fw(timeout=1), executor=ex1)
        await engine.start()
        await engine.handle_alert(alert())
        await until(lambda: len(ex1.batches) == 1)
        await engine.stop()
        assert actions(ex1) == [("add", [K7])], "a stop does not unblock"
        expires = read_active(tmp_path / "queue" / "state.db")[0].expires
        assert expires is not None
        again = make(tmp_path, fw(timeout=1), executor=ex2)
        await again.start()
        await until(lambda: len(ex2.batches) == 1, timeout=3)
        assert time.time() - expires < 1.0
        await again.stop()

    run(body)
    assert actions(ex2) == [("delete", [K7])]


def test_revert_on_stop_reverts_everything(tmp_path: Path) -> None:
    ex = InProcessExecutor()

    async def body() -> None:
        engine = make(tmp_path, fw(timeout=600), executor=ex, settings=ResponseSettings(revert_on_stop=True))
        await engine.start()
        for i in range(3):
            await engine.handle_alert(alert(srcip=f"192.0.2.{i}"))
        await until(lambda: len(ex.batches) == 1)
        await engine.stop()

    run(body)
    assert [b.action for b in ex.batches] == ["add", "delete"]
    assert len(ex.batches[1].items) == 3
    assert read_active(tmp_path / "queue" / "state.db") == []


def test_restart_after_expiry_reverts_once_and_reschedules_the_rest(tmp_path: Path) -> None:
    ex1, ex2 = InProcessExecutor(), InProcessExecutor()

    async def body() -> None:
        engine = make(tmp_path, fw(timeout=1) + fw(timeout=3).replace("5712", "5710"), executor=ex1)
        await engine.start()
        await engine.handle_alert(alert(srcip="192.0.2.1"))
        await engine.handle_alert(alert(rule_id=5710, srcip="192.0.2.2"))
        await until(lambda: len(ex1.batches) == 1)
        await engine.stop()
        await asyncio.sleep(1.2)
        again = make(tmp_path, fw(timeout=1) + fw(timeout=3).replace("5712", "5710"), executor=ex2)
        await again.start()
        await until(lambda: len(ex2.batches) >= 1)
        assert actions(ex2) == [("delete", ["firewall-drop/web1/192.0.2.1"])]
        assert list(again.state.active) == ["firewall-drop/web1/192.0.2.2"]
        await until(lambda: len(ex2.batches) == 2, timeout=4)
        await again.stop()

    run(body)
    assert actions(ex2)[1] == ("delete", ["firewall-drop/web1/192.0.2.2"])


def test_repeated_offenders_escalate_per_key_and_reset_after_the_window(tmp_path: Path) -> None:
    now = [1_000_000.0]
    settings = ResponseSettings(offender_reset=3600, batch_window=0.01)
    body_xml = fw(timeout=60, extra="<repeated_offenders>10,30</repeated_offenders>")

    async def body() -> None:
        engine = make(tmp_path, body_xml, settings=settings, clock=lambda: now[0])
        await engine.start()
        timeouts = []
        for step in (0, 100, 100, 100, 4000, 10):
            now[0] += step
            entry = engine.state.active.get(K7)
            if entry is not None and entry.expires is not None and entry.expires <= now[0]:
                engine.state.remove(K7)  # as if reverted meanwhile (the test clock does not run the loop)
            (d,) = await engine.handle_alert(alert())
            timeouts.append((d.outcome, d.offences, d.timeout))
        other = await engine.handle_alert(alert(srcip="192.0.2.99"))
        assert (other[0].offences, other[0].timeout) == (1, 60), "offences are counted per key"
        await engine.stop()
        assert timeouts == [
            ("add", 1, 60),
            ("add", 2, 600),
            ("refresh", 3, 1800),
            ("refresh", 4, 1800),
            ("add", 1, 60),  # 4000 s quiet > offender_reset 3600 s
            ("refresh", 2, 600),
        ]

    run(body)


def test_retrigger_while_reverting_applies_again(tmp_path: Path) -> None:
    gate = asyncio.Event

    class Gated(InProcessExecutor):
        gate: asyncio.Event | None = None

        async def execute(self, batch: Batch) -> list[ItemResult]:
            if batch.action == "delete":
                assert self.gate is not None
                await self.gate.wait()
            return await super().execute(batch)

    ex = Gated()

    async def body() -> None:
        ex.gate = gate()
        engine = make(tmp_path, fw(timeout=1), executor=ex)
        await engine.start()
        await engine.handle_alert(alert())
        await until(lambda: len(ex.batches) == 1)
        await until(lambda: engine.state.active[K7].phase == "reverting", timeout=3)
        (d,) = await engine.handle_alert(alert())
        assert d.outcome == "readd"
        ex.gate.set()
        await until(lambda: len(ex.batches) == 3)
        assert engine.state.active[K7].phase in ("adding", "active")
        await engine.stop()

    run(body)
    assert [b.action for b in ex.batches] == ["add", "delete", "add"]


def test_one_shot_commands_run_every_time(tmp_path: Path) -> None:
    ex = InProcessExecutor()
    body_xml = (
        "<active-response><command>restart</command><location>server</location>"
        "<rules_id>5712</rules_id></active-response>"
    )

    async def body() -> None:
        engine = make(tmp_path, body_xml, executor=ex)
        await engine.start()
        for n in (1, 2):
            (d,) = await engine.handle_alert(alert())
            assert d.outcome == "run" and d.target == "manager"
            await until(lambda n=n: len(ex.batches) == n)  # type: ignore[misc]
        assert engine.state.active == {}
        await engine.stop()

    run(body)
    assert [b.action for b in ex.batches] == ["add", "add"]


def test_operator_block_unblock_and_forget(tmp_path: Path) -> None:
    ex = InProcessExecutor()

    async def body() -> None:
        engine = make(tmp_path, fw(), executor=ex, white_list=("10.0.0.0/8",))
        await engine.start()
        reply = await engine.block("firewall-drop", "web2", srcip="::ffff:192.0.2.44", timeout=600)
        assert reply["key"] == "firewall-drop/web2/192.0.2.44" and reply["outcome"] == "add"
        await until(lambda: len(ex.batches) == 1)
        with pytest.raises(EngineError, match="whitelisted"):
            await engine.block("firewall-drop", "web2", srcip="10.1.1.1")
        with pytest.raises(EngineError, match="not an inventory host"):
            await engine.block("firewall-drop", "nowhere", srcip="192.0.2.1")
        with pytest.raises(EngineError, match="timeout_allowed"):
            await engine.block("restart", "web1", srcip="192.0.2.1", timeout=5)
        with pytest.raises(EngineError, match="template marker"):
            await engine.block("disable-account", "web1", user="{{ lookup('pipe','id') }}")
        reply = await engine.unblock(srcip="192.0.2.44")
        assert reply["unblocked"] == [{"key": "firewall-drop/web2/192.0.2.44", "outcome": "reverting"}]
        await until(lambda: not engine.state.active)
        await engine.block("firewall-drop", "web1", srcip="192.0.2.45")
        await until(lambda: len(ex.batches) == 3)
        assert engine.state.active["firewall-drop/web1/192.0.2.45"].expires is None
        await engine.unblock(key="firewall-drop/web1/192.0.2.45", forget=True)
        assert engine.state.active == {}
        await engine.stop()

    run(body)
    assert [b.action for b in ex.batches] == ["add", "delete", "add"]


# -- audit ------------------------------------------------------------------------------------------

AR_LINE = re.compile(r"^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) active-response/bin/firewall-drop: (\{.*\})$")


def test_active_responses_log_has_wazuh_lines_and_json_audit_has_every_decision(tmp_path: Path) -> None:
    ex = InProcessExecutor()

    async def body() -> None:
        engine = make(tmp_path, fw(timeout=1), executor=ex, white_list=("10.0.0.0/8",))
        await engine.start()
        await engine.handle_alert(alert(alert_id="1.1"))
        await engine.handle_alert(alert(alert_id="1.2"))
        await engine.handle_alert(alert(srcip="10.0.0.5", alert_id="1.3"))
        await until(lambda: len(ex.batches) == 2, timeout=3)
        await until(lambda: not engine.state.active)
        await engine.stop()

    run(body)
    lines = (tmp_path / "logs" / "active-responses.log").read_text().splitlines()
    assert len(lines) == 2
    messages = []
    for line in lines:
        m = AR_LINE.match(line)
        assert m, line
        messages.append(json.loads(m.group(2)))
    add, delete = messages
    assert add["version"] == 1 and add["origin"] == {"name": "undefined", "module": "threatlockdown"}
    assert (add["command"], delete["command"]) == ("add", "delete")
    assert add["parameters"]["program"] == "active-response/bin/firewall-drop"
    assert add["parameters"]["extra_args"] == [] and add["parameters"]["target"] == "web1"
    assert add["parameters"]["alert"]["data"]["srcip"] == "198.51.100.7"
    assert add["parameters"]["alert"]["id"] == "1.1"
    assert delete["parameters"]["alert"]["id"] == "1.1", "the delete carries the alert that added"
    audit = [json.loads(x) for x in (tmp_path / "logs" / "active-responses.json").read_text().splitlines()]
    assert [a["event"] for a in audit] == ["triggered", "refreshed", "skipped", "executed", "reverted"]
    assert audit[2]["reason"].startswith("srcip '10.0.0.5' is whitelisted")
    assert all(a["timestamp"] for a in audit)


def test_audit_line_becomes_alert_651_with_srcip_in_logtest(tmp_path: Path) -> None:
    import subprocess
    import sys

    ex = InProcessExecutor()

    async def body() -> None:
        engine = make(tmp_path, fw(timeout=1), executor=ex)
        await engine.start()
        await engine.handle_alert(alert())
        await until(lambda: len(ex.batches) == 2, timeout=3)
        await engine.stop()

    run(body)
    lines = (tmp_path / "logs" / "active-responses.log").read_text()
    out = subprocess.run(
        [sys.executable, "-m", "threatlockdown.cli.main", "logtest", "--json", "--home", str(tmp_path)],
        input=lines,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.splitlines()
    results = [json.loads(x) for x in out]
    assert [(r["rule"]["id"], r["data"]["srcip"]) for r in results] == [
        ("651", "198.51.100.7"),
        ("652", "198.51.100.7"),
    ]
    assert results[0]["rule"]["description"] == "Host Blocked by firewall-drop Active Response"
