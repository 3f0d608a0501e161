"""``tld ar list|history|block|unblock|simulate``, with and without a running engine, and the manager's
AlertSink (ResponseSink) with a real analysis result (exact group string, no_ar)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Everything the engine thread and the CLI import later is imported now: CPython 3.11 can fail with
# "AST constructor recursion depth mismatch" when two threads compile modules at the same time.
import threatlockdown.cli.ar_cmd
import threatlockdown.response.control
import threatlockdown.transport  # noqa: F401
from threatlockdown.analysis.session import AnalysisSession
from threatlockdown.cli.main import main
from threatlockdown.response.build import layout_for
from threatlockdown.response.executor import InProcessExecutor
from threatlockdown.response.sink import ResponseSink
from threatlockdown.response.state import read_active
from threatlockdown.response.testkit import STOCK_COMMANDS, alert
from threatlockdown.ruleset.loader import SHIPPED_DECODERS, SHIPPED_RULES, RulesetSources, load_ruleset

RESPONSES = """
<active-response><command>firewall-drop</command><location>local</location>
  <rules_id>5712</rules_id><timeout>600</timeout></active-response>
<active-response><command>firewall-drop</command><location>all</location>
  <rules_group>sshd,</rules_group><level>12</level><timeout>60</timeout></active-response>
"""


def make_home(
    tmp: Path, responses: str = RESPONSES, inventory: str | None = "web:\n  hosts:\n    web1:\n    web2:\n"
) -> Path:
    (tmp / "etc").mkdir(parents=True)
    (tmp / "etc" / "ossec.conf").write_text(
        "<ossec_config><global><white_list>10.0.0.0/8</white_list></global>"
        f"{STOCK_COMMANDS}{responses}</ossec_config>\n"
    )
    if inventory is not None:
        (tmp / "etc" / "inventory.yml").write_text(inventory)
    (tmp / "etc" / "response.xml").write_text(
        # Self-protection off: this machine's own addresses (lab bridges) may be any documentation
        # address; test_response_validate.py covers protection with fixed addresses.
        "<response_engine><batch_window>10ms</batch_window><flush_interval>50ms</flush_interval>"
        "<self_protection>no</self_protection></response_engine>"
    )
    return tmp


def tld(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


class RunningEngine:
    """A ResponseSink (engine + control socket) in a thread with its own event loop."""

    def __init__(self, home: Path) -> None:
        self.executor = InProcessExecutor()
        self.sink = ResponseSink(home, lambda layout: self.executor)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> RunningEngine:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.sink.start(), self.loop).result(60)
        return self

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def __exit__(self, *exc: object) -> None:
        self.call(self.sink.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    yield make_home(tmp_path / "home")


def test_offline_block_is_recorded_and_carried_out_when_the_engine_starts(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, _ = tld(
        capsys, "ar", "block", "--home", str(home), "--command", "firewall-drop", "--target", "web2",
        "--srcip", "192.0.2.50", "--timeout", "300",
    )  # fmt: skip
    assert rc == 0, out
    assert "firewall-drop/web2/192.0.2.50: blocking until" in out and "no engine is running" in out
    (entry,) = read_active(layout_for(home).state)
    assert (entry.phase, entry.origin, entry.timeout) == ("adding", "manual", 300)
    rc, out, _ = tld(capsys, "ar", "list", "--home", str(home), "--json")
    listed = json.loads(out)
    assert listed["source"] == "state file" and listed["active"][0]["phase"] == "adding"
    with RunningEngine(home) as eng:
        deadline = time.monotonic() + 5
        while not eng.executor.batches and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [(b.action, [i.key for i in b.items]) for b in eng.executor.batches] == [
            ("add", ["firewall-drop/web2/192.0.2.50"])
        ]


def test_block_list_unblock_through_the_running_engine(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with RunningEngine(home) as eng:
        rc, out, err = tld(
            capsys, "ar", "block", "--home", str(home), "--command", "firewall-drop", "--target", "web1",
            "--srcip", "198.51.100.9", "--json",
        )  # fmt: skip
        reply = json.loads(out)
        assert rc == 0 and reply["ok"] and reply["via"] == "the running engine", err
        rc, out, _ = tld(capsys, "ar", "list", "--home", str(home))
        assert rc == 0
        assert (
            "firewall-drop/web1/198.51.100.9" in out and "until unblocked" in out and "from the engine" in out
        )
        rc, out, err = tld(
            capsys, "ar", "block", "--home", str(home), "--command", "firewall-drop", "--target", "web1",
            "--srcip", "10.2.3.4",
        )  # fmt: skip
        assert rc == 1 and "whitelisted by <white_list> '10.0.0.0/8'" in err
        rc, out, _ = tld(
            capsys, "ar", "unblock", "--home", str(home), "--srcip", "198.51.100.9", "--target", "web1"
        )
        assert rc == 0 and "firewall-drop/web1/198.51.100.9: reverting" in out
        deadline = time.monotonic() + 5
        while len(eng.executor.batches) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [b.action for b in eng.executor.batches] == ["add", "delete"]
    rc, out, _ = tld(capsys, "ar", "history", "--home", str(home), "--since", "1h", "--json")
    events = [json.loads(line)["event"] for line in out.splitlines()]
    assert events == ["manual_block", "applied", "manual_unblock", "reverting", "reverted"]
    rc, out, _ = tld(capsys, "ar", "history", "--home", str(home))
    assert "manual_block" in out and "firewall-drop/web1/198.51.100.9" in out
    rc, out, err = tld(capsys, "ar", "history", "--home", str(home), "--since", "yesterday-ish")
    assert rc == 1 and "expected e.g. 1h" in err


def test_unblock_needs_a_key_or_an_address(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = tld(capsys, "ar", "unblock", "--home", str(home))
    assert rc == 2 and "give a KEY or --srcip" in err


def test_simulate_explains_each_alert_and_executes_nothing(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alerts = [
        alert(alert_id="a1"),
        alert(alert_id="a2", level=12, rule_id=5763, srcip="203.0.113.8"),
        alert(alert_id="a3", srcip="10.9.9.9"),
        alert(alert_id="a4", rule_id=5715, level=3),
        alert(alert_id="a5", srcip="1.2.3.4`reboot`"),
        {"no": "rule"},
    ]
    path = tmp_path / "alerts.json"
    path.write_text("\n".join(json.dumps(a) for a in alerts) + "\n")
    rc, out, _ = tld(capsys, "ar", "simulate", "--home", str(home), str(path), "--json")
    assert rc == 0
    result = json.loads(out)
    got = [[(d["outcome"], d.get("target")) for d in r.get("decisions", [])] for r in result]
    assert got == [
        [("add", "web1")],
        [("add", "web1"), ("add", "web2")],
        [("skipped", None)],
        [("skipped", None)],
        [("refused", None)],
        [],
    ]
    assert result[1]["decisions"][0]["timeout"] == 60
    assert "no <active-response> is bound to rule 5715" in result[3]["decisions"][0]["reason"]
    assert result[5]["error"] == "no 'rule' object"
    assert read_active(layout_for(home).state) == [], "a simulation changes nothing"
    rc, out, _ = tld(capsys, "ar", "simulate", "--home", str(home), str(path))
    assert "alert 1 (a1): rule 5712 level 10, agent 001 web1, srcip 198.51.100.7" in out
    assert "add      firewall-drop on web1: location local (agent 001 web1): firewall-drop for 600 s" in out
    assert "alert 6: unusable: no 'rule' object" in out


def test_configuration_errors_name_the_file(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (home / "etc" / "response.xml").write_text(
        "<response_engine>\n<queue_size>-1</queue_size>\n</response_engine>"
    )
    rc, _, err = tld(
        capsys,
        "ar",
        "block",
        "--home",
        str(home),
        "--command",
        "firewall-drop",
        "--target",
        "web1",
        "--srcip",
        "192.0.2.1",
    )
    assert rc == 1 and f"{home}/etc/response.xml:2: <queue_size>: invalid value '-1'" in err


# -- the manager's sink --------------------------------------------------------------------------------

NO_AR_RULES = """<group name="local,">
  <rule id="100200" level="6">
    <if_sid>5710</if_sid>
    <match>user quiet</match>
    <options>no_ar</options>
    <description>no response for this one</description>
  </rule>
</group>
"""


def test_sink_uses_the_rules_exact_group_string_and_no_ar(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "local_rules.xml").write_text(NO_AR_RULES)
    ruleset = load_ruleset(
        RulesetSources(decoder_dirs=(SHIPPED_DECODERS,), rule_dirs=(SHIPPED_RULES, str(rules)))
    )
    session = AnalysisSession(ruleset, log_alert_level=3)
    home = make_home(
        tmp_path / "home",
        responses="""<active-response><command>firewall-drop</command><location>local</location>
        <rules_group>invalid_login,</rules_group><timeout>60</timeout></active-response>""",
        inventory=None,
    )
    line = "Nov 26 10:00:01 mgr sshd[42]: Invalid user {who} from 198.51.100.{n} port 52113"
    with RunningEngine(home) as eng:
        for n, who in ((1, "admin"), (2, "quiet")):
            result = session.process(line.format(who=who, n=n), "/var/log/auth.log")
            assert result.rule is not None
            eng.call(eng.sink.handle(result, result.output()))
        assert eng.sink.engine is not None
        keys = sorted(eng.sink.engine.state.active)
    # 5710 is in invalid_login; 100200 is its child (same groups) but says no_ar. The manager's own
    # event runs on the implicit localhost (no inventory).
    assert keys == ["firewall-drop/localhost/198.51.100.1"]
