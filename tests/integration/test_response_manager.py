"""The engine inside the manager daemon (in-process, in-process executor): an sshd line gives alert 5710,
the engine blocks its address on the manager, the manager reads logs/active-responses.log back, so the
block and the unblock become alerts 651 and 652 with the address; those never trigger a response."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from threatlockdown.manager.daemon import ManagerDaemon
from threatlockdown.manager.home import Home
from threatlockdown.response.executor import InProcessExecutor
from threatlockdown.response.sink import ResponseSink
from threatlockdown.response.state import read_history

CONF = """<ossec_config>
  <global><white_list>127.0.0.1</white_list></global>
  <localfile><log_format>syslog</log_format><location>{auth}</location></localfile>
  <localfile><log_format>syslog</log_format><location>logs/active-responses.log</location></localfile>
  <command><name>firewall-drop</name><executable>firewall-drop</executable>
    <timeout_allowed>yes</timeout_allowed></command>
  <active-response><command>firewall-drop</command><location>local</location>
    <level>3</level><timeout>2</timeout></active-response>
  <ruleset><decoder_dir>ruleset/decoders</decoder_dir><rule_dir>ruleset/rules</rule_dir></ruleset>
</ossec_config>
"""


def alerts(home: Path) -> list[dict[str, Any]]:
    path = home / "logs" / "alerts" / "alerts.json"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


async def until(what: Any, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not what():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_block_and_unblock_become_alerts_651_and_652(tmp_path: Path) -> None:
    home = tmp_path / "h"
    (home / "etc").mkdir(parents=True)
    auth = tmp_path / "auth.log"
    auth.touch()
    (home / "etc" / "ossec.conf").write_text(CONF.format(auth=auth))
    # Level 3 binds every alert of level >= 3, 651/652 included: the feedback guard must hold.
    (home / "etc" / "response.xml").write_text(
        "<response_engine><batch_window>20ms</batch_window><self_protection>no</self_protection></response_engine>"
    )
    executor = InProcessExecutor()

    async def main() -> None:
        sink = ResponseSink(home, lambda layout: executor)
        daemon = ManagerDaemon(Home(home), sinks=[sink])
        ready: list[str | None] = []
        task = asyncio.create_task(daemon.run(ready.append))
        await until(lambda: ready)
        assert ready == [None]
        await until(lambda: (home / "logs" / "active-responses.log").exists())
        with auth.open("a") as f:
            f.write("Nov 26 10:00:01 mgr sshd[42]: Invalid user admin from 203.0.113.5 port 52113\n")
        await until(lambda: [a["rule"]["id"] for a in alerts(home)].count("652") == 1)
        await asyncio.sleep(1.0)  # anything the 651/652 alerts would (wrongly) trigger shows up now
        daemon.request_stop()
        assert await asyncio.wait_for(task, 30) == 0

    asyncio.run(main())
    got = [(a["rule"]["id"], a.get("data", {}).get("srcip")) for a in alerts(home)]
    assert got == [("5710", "203.0.113.5"), ("651", "203.0.113.5"), ("652", "203.0.113.5")]
    assert [(b.action, [i.key for i in b.items]) for b in executor.batches] == [
        ("add", ["firewall-drop/localhost/203.0.113.5"]),
        ("delete", ["firewall-drop/localhost/203.0.113.5"]),
    ]
    audit = [json.loads(x) for x in (home / "logs" / "active-responses.json").read_text().splitlines()]
    guarded = [a for a in audit if a["event"] == "skipped"]
    assert len(guarded) == 2 and all("responses never trigger responses" in a["reason"] for a in guarded)
    events = [h.event for h in read_history(home / "queue" / "active-response" / "state.db")]
    assert events == ["triggered", "applied", "reverting", "reverted"]
