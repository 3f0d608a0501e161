"""``tld runner`` as a real process on a Wazuh alerts.json: decides from Wazuh's own 5712 alert, is
steered by ``tld ar`` through its socket, and resumes from its saved position after a restart."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

WAZUH = Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "wazuh"
TLD = [sys.executable, "-m", "threatlockdown.cli.main"]
CONF = """<ossec_config>
  <global><white_list>127.0.0.1</white_list></global>
  <command><name>firewall-drop</name><executable>firewall-drop</executable>
    <timeout_allowed>yes</timeout_allowed></command>
  <active-response><command>firewall-drop</command><location>local</location>
    <rules_group>pci_dss_11.4,</rules_group><timeout>600</timeout></active-response>
</ossec_config>
"""
INVENTORY = "managers:\n  hosts:\n    mgr:\n      threatlockdown_agent_id: '000'\n"


def real_alert(**changes: Any) -> dict[str, Any]:
    cases = yaml.safe_load((WAZUH / "cases_integratord_read_valid_json_alerts.yaml").read_text())
    alert: dict[str, Any] = json.loads(cases[0]["metadata"]["alert_sample"])
    alert.update(changes)
    return alert


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def audit(home: Path) -> list[dict[str, Any]]:
    path = home / "logs" / "active-responses.json"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def start(home: Path, alerts: Path, wazuh: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*TLD, "runner", "--home", str(home), "--alerts", str(alerts), "--config", str(wazuh / "ossec.conf"),
         "--inventory", str(wazuh / "inventory.yml"), "--executor", "none"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    assert proc.returncode == 0, err
    return err


@pytest.mark.skipif(not WAZUH.is_dir(), reason=f"{WAZUH} not available")
def test_runner_follows_wazuh_alerts_and_resumes(tmp_path: Path) -> None:
    home, wazuh = tmp_path / "tld", tmp_path / "wazuh"
    (wazuh / "logs" / "alerts").mkdir(parents=True)
    (wazuh / "ossec.conf").write_text(CONF)
    (wazuh / "inventory.yml").write_text(INVENTORY)
    alerts = wazuh / "logs" / "alerts" / "alerts.json"
    alerts.write_text(json.dumps(real_alert(id="old.1")) + "\n")  # before the first start: not read

    runner = start(home, alerts, wazuh)
    try:
        wait_for(lambda: (home / "var" / "run" / "tld-ar.sock").exists(), 60, "the control socket")
        with alerts.open("a") as f:
            f.write(json.dumps(real_alert(id="new.1")) + "\n")
        wait_for(lambda: any(a["event"] == "not_applied" for a in audit(home)), 30, "the dry-run execution")
        listed = subprocess.run(
            [*TLD, "ar", "list", "--home", str(home), "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        (entry,) = json.loads(listed.stdout)["active"]
        assert (entry["key"], entry["last_result"]) == ("firewall-drop/mgr/172.17.1.1", "skipped")
        assert json.loads(listed.stdout)["source"] == "engine"
    finally:
        err = stop(runner)
    assert "following" in err and "stopped after 1 alerts" in err
    triggered = [a for a in audit(home) if a["event"] == "triggered"]
    assert [a["alert_id"] for a in triggered] == ["new.1"], "only alerts written after the first start"

    with alerts.open("a") as f:  # written while the runner is down
        f.write(json.dumps(real_alert(id="new.2")) + "\n")
        f.write("not json\n")
    runner = start(home, alerts, wazuh)
    try:
        wait_for(
            lambda: any(a.get("alert_id") == "new.2" for a in audit(home)), 60, "the alert written while down"
        )
        time.sleep(0.5)
    finally:
        stop(runner)
    seen = [a["alert_id"] for a in audit(home) if a["event"] in ("triggered", "refreshed")]
    assert seen == ["new.1", "new.2"], "resumed from the saved position: nothing repeated, nothing skipped"
