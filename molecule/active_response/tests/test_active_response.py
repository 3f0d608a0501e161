"""Checks of the `active_response` scenario: the reference case end to end, and locations all/defined-agent.

The manager's files and tld commands are checked through testinfra (`host` is the manager); what happens
inside the other lab hosts (the attacker's SSH attempt and TCP connects, syslog lines, the nft set) goes
through the lab itself, which runs commands in a host's namespaces without SSH.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from threatlockdown.lab import Lab

testinfra_hosts = ["manager"]

HOME = "/var/ossec"
TLD = f"{HOME}/venv/bin/tld"
TIMEOUT = 20  # the scenario's firewall-drop timeout (inventory/group_vars/threatlockdown_managers.yml)
# Addresses of made-up sources in injected syslog lines: the benchmarking range (RFC 2544), which no lab
# subnet uses, so they can never be lab hosts (which self-protection would refuse to block).
ALL_SOURCE = "198.18.0.6"
DEFINED_SOURCE = "198.18.0.7"


@pytest.fixture(scope="module")
def lab() -> Lab:
    ephemeral = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
    return Lab.attach("tldmr", ephemeral / "lab")


def _wait(what: str, check: Callable[[], bool], seconds: float) -> float:
    """Poll until check() holds; the seconds it took. Fails naming what did not happen."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > seconds:
            raise AssertionError(f"{what}: not within {seconds:g} s")
        time.sleep(0.25)
    return time.monotonic() - start


def _alerts(lab: Lab) -> list[dict[str, Any]]:
    path = lab.host_path("manager", f"{HOME}/logs/alerts/alerts.json")
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _alert_for(lab: Lab, rule: str, text: str) -> dict[str, Any] | None:
    for alert in _alerts(lab):
        if alert["rule"]["id"] == rule and text in alert["full_log"]:
            return alert
    return None


def _blocked(lab: Lab, host: str, address: str) -> bool:
    listed = lab.exec(host, ["nft", "list", "set", "inet", "threatlockdown", "blocked4"])
    return listed.returncode == 0 and address in listed.stdout


def _tcp_connects(lab: Lab, source: str, target: str) -> bool:
    probe = (
        "import socket, sys\n"
        "try:\n"
        f"    socket.create_connection(({lab.ipv4(target)!r}, 22), timeout=3).close()\n"
        "except OSError:\n"
        "    sys.exit(1)\n"
    )
    return lab.exec(source, ["python3", "-c", probe], timeout=10).returncode == 0


def _ssh_as_unknown_user(lab: Lab, source: str, user: str) -> None:
    lab.exec(
        source,
        [
            "ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5",
            f"{user}@{lab.ipv4('web1')}", "true",
        ],
        timeout=30,
    )  # fmt: skip


def _syslog(lab: Lab, host: str, message: str) -> None:
    """An sshd-tagged line through the host's own rsyslogd into its auth.log, which the agent reads."""
    lab.exec(host, ["logger", "-p", "authpriv.info", "-t", "sshd", "--id=4242", message], check=True)


def _agent_id(host: Any, name: str) -> str:
    for line in host.file(f"{HOME}/etc/client.keys").content_string.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[1] == name:
            return fields[0]
    raise AssertionError(f"agent {name} not in the manager's client.keys")


def test_policy_from_the_inventory(host: Any, lab: Lab) -> None:
    conf = host.file(f"{HOME}/etc/ossec.conf").content_string
    assert f"<white_list>{lab.ipv4('client')}</white_list>" in conf
    assert conf.count("<active-response>") == 3
    assert "<location>defined-agent</location>" in conf
    assert f"<agent_id>{_agent_id(host, 'web2')}</agent_id>" in conf
    assert host.run(f"{TLD} config check {HOME}/etc/ossec.conf").rc == 0
    runner_hosts = yaml.safe_load(host.file(f"{HOME}/etc/inventory.yml").content_string)["all"]["hosts"]
    assert sorted(runner_hosts) == ["web1", "web2"]
    assert runner_hosts["web1"]["ansible_host"] == lab.ipv4("web1")


def test_reference_case_block_then_release(host: Any, lab: Lab) -> None:
    attacker, client = lab.ipv4("attacker"), lab.ipv4("client")
    assert _tcp_connects(lab, "attacker", "web1"), "the attacker must reach web1:22 before the attack"
    user = f"nosuch{int(time.time()) % 100000}"

    _ssh_as_unknown_user(lab, "attacker", user)
    auth_log = lab.host_path("web1", "/var/log/auth.log")
    _wait("sshd line on web1", lambda: f"Invalid user {user} from {attacker}" in auth_log.read_text(), 10)
    _wait(
        "rule 5710 alert on the manager",
        lambda: _alert_for(lab, "5710", f"Invalid user {user} ") is not None,
        30,
    )
    alert = _alert_for(lab, "5710", f"Invalid user {user} ")
    assert alert is not None
    assert alert["agent"]["name"] == "web1"
    assert alert["data"]["srcip"] == attacker

    _wait("attacker in web1's drop set", lambda: _blocked(lab, "web1", attacker), 30)
    assert not _tcp_connects(lab, "attacker", "web1"), "the attacker still reaches web1:22 while blocked"
    # Location local: only web1 blocks.
    assert not _blocked(lab, "web2", attacker)
    assert _tcp_connects(lab, "attacker", "web2")

    active = json.loads(host.check_output(f"{TLD} ar list --json --home {HOME}"))
    assert (
        attacker in json.dumps(active)
        and "web1" in json.dumps(active)
        and "firewall-drop" in json.dumps(active)
    )
    # The role makes queue/ 0750; the executor keeps its sockets in 0700 directories of its own there and
    # refuses more open ones (which would send every run cold), so after a run both exist, private.
    for private in ("ansible-warm", "ssh-cp"):
        directory = host.file(f"{HOME}/queue/{private}")
        assert (directory.is_directory, directory.user, directory.mode) == (True, "root", 0o700), private
    assert host.file(f"{HOME}/queue").mode == 0o750
    assert host.file(f"{HOME}/queue/ansible-warm/server.sock").is_socket
    # The audit line is written when the run's results come back, a moment after the set changed.
    ar_log = lab.host_path("manager", f"{HOME}/logs/active-responses.log")
    _wait(
        "firewall-drop line in active-responses.log",
        lambda: any(attacker in line and "firewall-drop" in line for line in ar_log.read_text().splitlines()),
        15,
    )

    # The whitelisted client makes the same mistake: alert, but no block, and it still connects.
    _ssh_as_unknown_user(lab, "client", user + "c")
    _wait("client's 5710 alert", lambda: _alert_for(lab, "5710", f"Invalid user {user}c ") is not None, 30)
    time.sleep(3)  # time for a response that must not come
    assert not _blocked(lab, "web1", client)
    assert _tcp_connects(lab, "client", "web1")

    # After the timeout the manager deletes the block (the set's own expiry is far later).
    waited = _wait(
        "block on web1 removed after the timeout", lambda: not _blocked(lab, "web1", attacker), TIMEOUT + 30
    )
    assert _tcp_connects(lab, "attacker", "web1")
    history = host.check_output(f"{TLD} ar history --json --home {HOME}")
    assert attacker in history
    assert waited >= 0


def test_location_all_blocks_on_every_agent_host(lab: Lab) -> None:
    _syslog(lab, "web1", f"Did not receive identification string from {ALL_SOURCE} port 4242")
    _wait("rule 5706 alert", lambda: _alert_for(lab, "5706", ALL_SOURCE) is not None, 30)
    _wait("block on web1", lambda: _blocked(lab, "web1", ALL_SOURCE), 30)
    _wait("block on web2", lambda: _blocked(lab, "web2", ALL_SOURCE), 30)


def test_location_defined_agent_blocks_on_web2_only(lab: Lab) -> None:
    _syslog(
        lab, "web1", f"Bad protocol version identification 'GET / HTTP/1.1' from {DEFINED_SOURCE} port 4242"
    )
    _wait("rule 5701 alert", lambda: _alert_for(lab, "5701", DEFINED_SOURCE) is not None, 30)
    _wait("block on web2 (the defined agent)", lambda: _blocked(lab, "web2", DEFINED_SOURCE), 30)
    assert not _blocked(lab, "web1", DEFINED_SOURCE), "defined-agent must not block where the event came from"
