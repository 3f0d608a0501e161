"""The active-response engine's per-alert shortcuts give exactly what the plain computations give.

Each shortcut is checked against the code it stands for: the IPv4 parse against ``ipaddress``, the
spelled-out group lists against GROUP_KEYS, the refresh audit record against the generic one, the
Wazuh line with the alert spliced in against serialising the whole message, the lazy expiry heap against
the expiries it must honour, and offenders changed in place against what the file holds.
"""

from __future__ import annotations

import ast
import asyncio
import ipaddress
import json
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from threatlockdown.response import engine as engine_module
from threatlockdown.response.alertfacts import GROUP_KEYS, facts_from_alert
from threatlockdown.response.audit import AuditLog
from threatlockdown.response.decisions import decision_of, preview, refresh_decision
from threatlockdown.response.engine import EnginePaths, ResponseEngine
from threatlockdown.response.executor import AlertText, InProcessExecutor
from threatlockdown.response.policy import Policy
from threatlockdown.response.scheduler import ExpiryScheduler
from threatlockdown.response.selfprotect import SelfProtection
from threatlockdown.response.settings import ResponseSettings
from threatlockdown.response.state import _CHANGING, Entry, Offender, StateStore, read_active, read_offenders
from threatlockdown.response.testkit import alert, config_with, inventory_of
from threatlockdown.response.validate import Refusal, parse_srcip, parse_srcip_text

INV = inventory_of({"web": ["web1", "web2"]})
BLOCK = (
    "<active-response><command>firewall-drop</command><location>local</location>"
    "<rules_id>5712</rules_id><timeout>60</timeout>"
    "<repeated_offenders>10,30</repeated_offenders></active-response>"
)


def slow_parse(raw: str) -> str | None:
    """What the address parse gave before the IPv4 shortcut (canonical text, None if refused)."""
    text = raw[7:] if raw[:7].lower() == "::ffff:" and "." in raw else raw
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return None if "%" in text else str(addr)


def fast_parse(raw: str) -> str | None:
    parsed = parse_srcip_text(raw)
    if isinstance(parsed, Refusal):
        return None
    addr, text = parsed
    assert text == str(addr) and parse_srcip(raw) == addr
    return text


OCTET = st.one_of(
    st.integers(0, 300).map(str),
    st.integers(0, 255).map(lambda n: f"0{n}"),  # leading zeros are refused
    st.text("0123456789xX+- ", max_size=4),
    st.sampled_from(["", "٣", "00", "0x1f", "1e2"]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(OCTET, min_size=1, max_size=6), st.sampled_from(["", "::ffff:", "::FFFF:", " ", "\x00"]))
def test_ipv4_shortcut_accepts_exactly_what_ipaddress_accepts(octets: list[str], prefix: str) -> None:
    raw = prefix + ".".join(octets)
    assert fast_parse(raw) == slow_parse(raw), raw


@pytest.mark.parametrize(
    "raw",
    [
        "198.51.100.7",
        "0.0.0.0",
        "255.255.255.255",
        "01.2.3.4",
        "1.2.3",
        "1.2.3.4.",
        "1.2.3.4 ",
        "2001:db8::1",
    ],
)
def test_ipv4_shortcut_examples(raw: str) -> None:
    assert fast_parse(raw) == slow_parse(raw)


def test_a_changed_group_list_of_a_known_rule_is_noticed() -> None:
    config = config_with(
        "<active-response><command>firewall-drop</command><location>local</location>"
        "<rules_group>pci_dss_11.4,</rules_group><timeout>60</timeout></active-response>"
    )
    policy = Policy(config)
    plain = alert()
    assert policy.bound(facts_from_alert(plain)) == ()
    for key in GROUP_KEYS:
        # the same rule id, now with pci_dss_11.4 under one of the lists the group string is built from
        changed = alert(
            extra_rule={"pci_dss": ["11.4"]} if key == "pci_dss" else {key: ["x"], "pci_dss": ["11.4"]}
        )
        assert len(policy.bound(facts_from_alert(changed))) == 1, key
        assert policy.bound(facts_from_alert(plain)) == (), key


def audit_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def engine_at(
    tmp: Path, clock: Any = time.time, settings: ResponseSettings | None = None, block: str = BLOCK
) -> ResponseEngine:
    return ResponseEngine(
        config=config_with(block),
        settings=settings or ResponseSettings(),
        inventory=INV,
        executor=InProcessExecutor(),
        paths=EnginePaths(tmp / "state.db", tmp / "logs"),
        protection=SelfProtection(enabled=False),
        clock=clock,
    )


@pytest.mark.parametrize("alert_id", ["1700000000.5", "", 'a"\\\u00e9\u2028'])
@pytest.mark.parametrize("timeout", [60, 0])
def test_refresh_audit_record_is_the_generic_record(tmp_path: Path, alert_id: str, timeout: int) -> None:
    async def body() -> None:
        engine = engine_at(tmp_path, block=BLOCK.replace("<timeout>60<", f"<timeout>{timeout}<"))
        await engine.start()
        await engine.handle_alert(alert(srcip="192.0.2.5"))
        (d,) = await engine.handle_alert(alert(srcip="192.0.2.5", alert_id=alert_id))
        assert d.outcome == "refresh" and (d.expires is None) == (timeout == 0)
        facts = facts_from_alert(alert(srcip="192.0.2.5", alert_id=alert_id))
        engine._audit_decision(d, facts)  # the generic path, for the same decision
        await engine.stop()

    asyncio.run(body())
    lines = (tmp_path / "logs" / "active-responses.json").read_bytes().splitlines()
    fast, generic = [line for line in lines if b'"event":"refreshed"' in line]
    assert fast[fast.index(b'"event"') :] == generic[generic.index(b'"event"') :]  # same members, same order
    record = json.loads(fast)
    assert record["event"] == "refreshed" and record.get("alert_id") == (alert_id or None)


def test_executed_line_with_the_alert_text_is_the_serialised_message(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path, node_name="node-1")
    sample = {"id": "1.2", "rule": {"id": "5712", "groups": ["a", "ü"]}, "data": {"srcip": "192.0.2.1"}}
    for alert_value in (sample, {}):
        text = orjson.dumps(alert_value).decode() if alert_value else ""
        for args in ((), ("-a", "b")):
            common: dict[str, Any] = dict(
                action="add", executable="firewall-drop", extra_args=args, target="web1"
            )
            audit.executed(**common, alert=alert_value, when=1_700_000_000.0)
            audit.executed(**common, alert_text=text, when=1_700_000_000.0)
    audit.close()
    lines = (tmp_path / "active-responses.log").read_bytes().splitlines()
    assert len(lines) == 8
    for plain, spliced in zip(lines[::2], lines[1::2], strict=True):
        assert plain == spliced
    message = json.loads(lines[1].split(b": ", 1)[1])
    assert message["parameters"]["alert"] == sample and message["parameters"]["target"] == "web1"


def test_scheduler_moves_an_item_to_the_later_expiry_instead_of_reverting() -> None:
    expiries = {"k": 10.0}
    seen: dict[str, float] = {"k": 10.0}  # the time of the key's live item

    def follow(key: str, at: float) -> float | None:
        if seen.get(key) != at:
            return None
        seen[key] = expiries[key]
        return expiries[key]

    async def on_due(keys: list[str]) -> None:
        return None

    sched = ExpiryScheduler(on_due, follow, clock=lambda: 0.0)
    sched.schedule("k", 10.0)
    expiries["k"] = 25.0  # extended: nothing pushed
    assert len(sched) == 1
    assert sched.pop_due(9.9) == []
    assert sched.pop_due(10.0) == [] and sched.next_expiry() == 25.0, "moved, not due"
    assert sched.pop_due(30.0) == ["k"], "due at the later expiry"
    sched.schedule("k", 40.0)
    seen["k"] = 35.0  # a newer, earlier item exists elsewhere: this one is stale
    assert sched.pop_due(50.0) == []


def test_refreshes_push_nothing_and_the_revert_waits_for_the_last_expiry(tmp_path: Path) -> None:
    now = [1_000_000.0]

    async def body() -> None:
        engine = engine_at(tmp_path, clock=lambda: now[0])
        await engine.start()
        await engine.handle_alert(alert())
        await engine.dispatcher.wait_idle(5)
        base = len(engine.scheduler)
        for _ in range(50):
            now[0] += 1
            await engine.handle_alert(alert())
        assert len(engine.scheduler) == base, "a refresh adds no heap item"
        entry = engine.state.active["firewall-drop/web1/198.51.100.7"]
        assert entry.expires is not None and entry.expires > 1_000_060.0
        assert engine.scheduler.pop_due(1_000_060.0) == [], "first expiry passed: moved on"
        assert engine.scheduler.pop_due(entry.expires - 0.001) == []
        assert engine.scheduler.pop_due(entry.expires) == [entry.key]
        await engine.stop()

    asyncio.run(body())


def test_offenders_changed_in_place_are_written(tmp_path: Path) -> None:
    async def body() -> None:
        engine = engine_at(tmp_path)
        await engine.start()
        for _ in range(3):
            await engine.handle_alert(alert())
        off = engine.state.offenders["firewall-drop/web1/198.51.100.7"]
        assert off.count == 3
        await engine.stop()

    asyncio.run(body())
    assert read_offenders(tmp_path / "state.db")["firewall-drop/web1/198.51.100.7"].count == 3


@pytest.mark.parametrize(
    "block",
    [
        BLOCK,
        BLOCK.replace("<timeout>60<", "<timeout>0<"),
        BLOCK.replace("<repeated_offenders>10,30</repeated_offenders>", ""),
    ],
)
@pytest.mark.parametrize("reset", [3600.0, 0.0])
@pytest.mark.parametrize("expires", [None, 1_000_030.0, 1_009_999.0])
@pytest.mark.parametrize("offender", [None, (0, 999_990.0), (1, 999_990.0), (4, 999_000.0), (2, 900_000.0)])
@pytest.mark.parametrize("phase", ["adding", "active"])
def test_refresh_decision_is_decision_of_preview(
    block: str, reset: float, expires: float | None, offender: tuple[int, float] | None, phase: str
) -> None:
    settings_ = ResponseSettings(offender_reset=reset)
    policy = Policy(config_with(block))
    facts = facts_from_alert(alert(alert_id="1.7"))
    (intent,) = policy.plan(facts, INV, SelfProtection(enabled=False)).intents
    entry = Entry(intent.key, "firewall-drop", "firewall-drop", "web1", "198.51.100.7", None, 999_000.0,
                  expires, 60, 1, phase)  # type: ignore[arg-type]  # fmt: skip
    off = Offender(*offender) if offender is not None else None
    now = 1_000_000.0
    plain = decision_of(intent, facts, preview(intent, entry, off, now, settings_))
    assert plain.outcome == "refresh"
    assert refresh_decision(intent, entry, off, facts, now, settings_) == plain


def test_the_engine_changes_only_the_columns_an_update_writes() -> None:
    """touch() writes _CHANGING only (the rest is fixed at insert): every Entry field the engine
    assigns after creating it must be one of them, or in memory only."""
    source = Path(engine_module.__file__).read_text()
    assigned = {
        target.attr
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Assign | ast.AugAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Attribute)
        and isinstance(target.value, ast.Name)
        and target.value.id in ("entry", "e")
    }
    assert assigned, "found the assignments"
    in_memory = {"busy", "revert_due", "readd", "scheduled"}
    assert assigned <= set(_CHANGING) | in_memory, assigned - set(_CHANGING) - in_memory


def test_changed_columns_reach_the_file(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    e = Entry("firewall-drop/web1/192.0.2.1", "firewall-drop", "firewall-drop", "web1", "192.0.2.1", None,
              100.0, 160.0, 60, 1, "adding", rule_id="5712")  # fmt: skip
    store.put(e, {"id": "1"})
    store.flush()
    e.started, e.expires, e.timeout, e.offences, e.phase = 200.0, None, 0, 3, "active"
    e.attempts, e.applied, e.last_result, e.last_message, e.last_attempt = 2, True, "ok", "done", 201.5
    store.touch(e)
    store.flush()
    (row,) = read_active(tmp_path / "state.db")
    assert [getattr(row, c) for c in _CHANGING] == [getattr(e, c) for c in _CHANGING]
    assert (row.user, row.alert_id, row.rule_id) == (None, None, "5712"), "None stays None"
    e.last_message = None
    store.touch(e)
    store.flush()
    assert read_active(tmp_path / "state.db")[0].last_message is None
    store.remove(e.key)
    store.flush()
    store.touch(e)  # a row that is gone is inserted again (as before)
    store.flush()
    assert [r.key for r in read_active(tmp_path / "state.db")] == [e.key]
    assert store.alert_of(e.key) == {}
    store.close()


def test_alert_text_reads_as_the_decoded_alert() -> None:
    sample = {"id": "1.2", "rule": {"id": "5712"}, "data": {"srcip": "192.0.2.1"}}
    lazy = AlertText(orjson.dumps(sample).decode())
    assert lazy._data is None, "nothing decoded until read"
    assert lazy == sample and dict(lazy) == sample and lazy["data"]["srcip"] == "192.0.2.1"
    assert len(lazy) == 3 and "rule" in lazy and lazy.get("missing") is None
    assert AlertText("") == {} and AlertText("[1, 2]") == {}, "no alert, or not an object: empty"
    with pytest.raises(KeyError):
        AlertText("{}")["id"]


def test_an_alert_without_a_usable_rule_is_counted_and_decides_nothing(tmp_path: Path) -> None:
    async def body() -> None:
        engine = engine_at(tmp_path)
        await engine.start()
        assert await engine.handle_alert({"id": "9", "rule": {"id": "x57", "level": 10}}) == []
        assert await engine.handle_alert({"id": "10"}) == []
        assert engine.counts["unusable_alerts"] == 2 and engine.counts["alerts"] == 0
        await engine.stop()

    asyncio.run(body())
