"""Checks of the `agent` scenario: web1's agent enrolled with the manager and its events arrive there."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import testinfra  # type: ignore[import-untyped]
import yaml

testinfra_hosts = ["web1"]

HOME = "/var/ossec"
TLD = f"{HOME}/venv/bin/tld"


def _lab_inventory() -> dict[str, Any]:
    path = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "inventory" / "lab.yml"
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


@pytest.fixture()
def manager() -> Any:
    inventory = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "inventory"
    return testinfra.get_host("ansible://manager", ansible_inventory=str(inventory))


def _json(host: Any, command: str) -> Any:
    return json.loads(host.check_output(command))


def test_agent_config_points_at_the_manager(host: Any) -> None:
    manager_ip = _lab_inventory()["all"]["hosts"]["manager"]["ansible_host"]
    conf = host.file(f"{HOME}/etc/ossec.conf").content_string
    assert f"<address>{manager_ip}</address>" in conf
    assert "<location>/var/log/auth.log</location>" in conf
    assert host.run(f"{TLD} config check {HOME}/etc/ossec.conf").rc == 0


def test_agent_enrolled_and_connected(host: Any, manager: Any) -> None:
    web1 = host
    keys = web1.file(f"{HOME}/etc/client.keys")
    assert keys.mode == 0o600
    agent_id, name, _ip, _key = keys.content_string.split()
    assert name == "web1"
    # The pinned fingerprint is the manager's certificate.
    pinned = web1.file(f"{HOME}/etc/manager.fingerprint").content_string.strip()
    openssl = manager.check_output(f"openssl x509 -noout -fingerprint -sha256 -in {HOME}/etc/sslmanager.cert")
    assert pinned == openssl.split("=", 1)[1].replace(":", "").lower()
    assert f"{agent_id} " in manager.check_output(f"{TLD} manager agents list --home {HOME}")
    deadline = time.monotonic() + 30
    while not _json(web1, f"{TLD} agent status --json --home {HOME}")["forwarder"]["connected"]:
        assert time.monotonic() < deadline, "agent not connected within 30 s"
        time.sleep(0.5)


def test_ssh_attempt_on_web1_reaches_the_manager_as_5710(manager: Any) -> None:
    hosts = _lab_inventory()["all"]["hosts"]
    user = f"mol{int(time.time()) % 100000}"
    # A real sshd line: an unknown user tries to log in to web1 from the controller.
    subprocess.run(
        [
            "ssh",
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null",
            "-o", "ConnectTimeout=5",
            f"{user}@{hosts['web1']['ansible_host']}",
            "true",
        ],
        capture_output=True,
        timeout=30,
        check=False,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in manager.file(f"{HOME}/logs/alerts/alerts.json").content_string.splitlines():
            alert = json.loads(line)
            if alert["rule"]["id"] == "5710" and f"Invalid user {user} " in alert["full_log"]:
                assert alert["agent"]["name"] == "web1"
                assert alert["agent"]["ip"] == hosts["web1"]["ansible_host"]
                assert alert["location"] == "/var/log/auth.log"
                return
        time.sleep(0.5)
    raise AssertionError(f"no rule 5710 alert for {user} from agent web1 within 30 s")
