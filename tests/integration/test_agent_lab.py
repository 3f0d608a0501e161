"""An agent inside a lab host: sshd -> rsyslogd -> /var/log/auth.log -> tld agent -> TLS -> the manager in
the root namespace (on the lab's controller address). Alerts carry the agent's id, name and address.
A 30 s manager outage while the agent keeps reading: everything arrives after the restart, in order."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from test_manager_daemon import Manager, free_port, numbered_line, wait_for, write_home

from threatlockdown.lab import Lab

HOST = "web1"
AGENT_HOME = "/var/ossec"  # the host's own, bind-mounted
STREAM = "/var/log/tldtest.log"
PY = [sys.executable, "-m", "threatlockdown.cli.main"]


@dataclass
class Setup:
    manager: Manager
    alerts: Path
    agent_id: str


def _alerts(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def agent_setup(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    controller = lab.controller_ipv4
    agent_port, enroll_port = free_port(), free_port()
    home = write_home(
        tmp_path_factory.mktemp("manager"),
        f"<remote><connection>secure</connection><port>{agent_port}</port><local_ip>{controller}</local_ip></remote>"
        f"<auth><port>{enroll_port}</port></auth>",
    )
    manager = Manager(home).start()
    agent_etc = lab.host_path(HOST, AGENT_HOME) / "etc"
    agent_etc.mkdir(parents=True, exist_ok=True)
    lab.host_path(HOST, STREAM).touch()
    (agent_etc / "ossec.conf").write_text(
        f"""<ossec_config>
  <client><server><address>{controller}</address><port>{agent_port}</port></server>
    <time-reconnect>2</time-reconnect></client>
  <localfile><log_format>syslog</log_format><location>/var/log/auth.log</location></localfile>
  <localfile><log_format>syslog</log_format><location>{STREAM}</location></localfile>
</ossec_config>
"""
    )
    enrolled = lab.exec(
        HOST,
        [
            *PY,
            "agent",
            "enroll",
            "--home",
            AGENT_HOME,
            "--manager",
            f"{controller}:{enroll_port}",
            "--name",
            HOST,
        ],
        timeout=60,
    )
    assert enrolled.returncode == 0, enrolled.stderr
    agent_id = enrolled.stdout.split("enrolled as agent ")[1].split()[0]
    agent = lab.spawn(HOST, [*PY, "agent", "start", "--foreground", "--home", AGENT_HOME])
    try:
        wait_for(lambda: len(manager.status()["agents"]["connected"]) == 1, 30, "the agent connected")
        yield Setup(manager, home / "logs" / "alerts" / "alerts.json", agent_id)
    finally:
        agent.terminate()
        agent.wait(30)
        manager.stop()


def test_agent_in_a_host_forwards_sshd_and_alerts_name_the_agent(
    lab: Lab, agent_setup: Setup, ssh_login_attempt: Callable[[str, str], object]
) -> None:
    web1, attacker = lab.ipv4(HOST), lab.ipv4("attacker")
    [connected] = agent_setup.manager.status()["agents"]["connected"]
    assert (connected["name"], connected["ip"]) == (HOST, web1)
    user = f"ghost{int(time.time()) % 100000}"
    ssh_login_attempt(user, web1)

    def ours() -> list[dict[str, Any]]:
        return [a for a in _alerts(agent_setup.alerts) if a["rule"]["id"] == "5710" and user in a["full_log"]]

    wait_for(lambda: bool(ours()), 20, "a 5710 alert from the agent")
    alert = ours()[0]
    assert alert["agent"] == {"id": agent_setup.agent_id, "name": HOST, "ip": web1}
    assert alert["location"] == "/var/log/auth.log"
    assert alert["data"]["srcip"] == attacker and alert["data"]["srcuser"] == user
    text = (agent_setup.alerts.parent / "alerts.log").read_text()
    assert f"({HOST}) {web1}->/var/log/auth.log" in text


def test_manager_down_for_30_s_everything_arrives_after_restart_in_order(
    lab: Lab, agent_setup: Setup
) -> None:
    stream = lab.host_path(HOST, STREAM)
    count, rate = 900, 25.0  # 36 s of lines; the manager is away for 30 s of them

    def write() -> None:
        start = time.monotonic()
        with stream.open("a") as f:
            for seq in range(count):
                f.write(numbered_line(seq))
                f.flush()
                time.sleep(max(0.0, start + (seq + 1) / rate - time.monotonic()))

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    time.sleep(2.0)
    manager = agent_setup.manager
    assert manager.stop() == 0
    stopped_at = time.monotonic()
    time.sleep(30.0)
    manager.start()
    outage = time.monotonic() - stopped_at
    writer.join(30)

    def seqs() -> list[int]:
        return [
            int(a["full_log"].rsplit("seq=", 1)[1][:6])
            for a in _alerts(agent_setup.alerts)
            if a["rule"]["id"] == "100100" and a["agent"]["id"] == agent_setup.agent_id
        ]

    wait_for(lambda: len(seqs()) >= count, 60, f"{count} alerts after the restart (have {len(seqs())})")
    time.sleep(0.5)
    assert outage >= 30.0
    assert seqs() == list(range(count)), "lost, repeated or out of order"
