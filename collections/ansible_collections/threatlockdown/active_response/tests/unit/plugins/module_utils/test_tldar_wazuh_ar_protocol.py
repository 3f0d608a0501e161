"""The execd protocol against small stand-in scripts, and alerts from Wazuh's own execd test cases."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.threatlockdown.active_response.plugins.module_utils.wazuh_ar_protocol import (
    alert_problems,
    build_message,
    composed_key,
    encode_line,
    parse_check_keys,
    run_script,
)

# .../collections/ansible_collections/threatlockdown/active_response/tests/unit/plugins/module_utils/x.py
REPO_ROOT = Path(__file__).resolve().parents[8]
EXECD_CASES = REPO_ROOT.parent / "shared" / "conformance" / "wazuh" / "cases_execd_firewall_drop.yaml"

# A stand-in for a stateful Wazuh script: records what it reads, asks check_keys for data.srcip.
STATEFUL = """
import json, sys
first = sys.stdin.readline()
msg = json.loads(first)
with open(sys.argv[0] + ".log", "a") as log:
    log.write(first)
    if msg["command"] == "add":
        keys = [msg["parameters"]["alert"]["data"]["srcip"]]
        print(json.dumps({"version": 1, "origin": {"name": "x", "module": "active-response"},
                          "command": "check_keys", "parameters": {"keys": keys}}), flush=True)
        log.write(sys.stdin.readline())
sys.stderr.write("E" * 10000)
"""


def make_script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)
    return str(path)


def alert(ip: str = "203.0.113.7") -> dict[str, Any]:
    return {
        "rule": {"id": "5712", "level": 10},
        "data": {"srcip": ip, "dstuser": "alice"},
        "full_log": "x\ny",
    }


def test_message_shape_and_single_line() -> None:
    message = build_message("/var/ossec/active-response/bin/firewall-drop", "add", "node01", alert(), ["a"])
    assert message == {
        "version": 1,
        "origin": {"name": "node01", "module": "wazuh-execd"},
        "command": "add",
        "parameters": {"extra_args": ["a"], "alert": alert(), "program": "active-response/bin/firewall-drop"},
    }
    line = encode_line(message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == message


def test_keys() -> None:
    assert composed_key("/x/active-response/bin/firewall-drop", ["1.2.3.4"]) == "firewall-drop-1.2.3.4"
    line = b'{"version":1,"origin":{},"command":"check_keys","parameters":{"keys":["1.2.3.4"]}}'
    assert parse_check_keys(line) == ["1.2.3.4"]
    assert parse_check_keys(b"hello") is None
    assert parse_check_keys(b'{"command":"check_keys","parameters":{"keys":[1]}}') is None


def test_continue_handshake_and_bounded_stderr(tmp_path: Path) -> None:
    script = make_script(tmp_path, "fw", STATEFUL)
    message = build_message(script, "add", "n", alert(), [])
    result = run_script(script, message, str(tmp_path), [], 5, 5, 100)
    assert (result.rc, result.keys, result.key, result.reply) == (
        0,
        ["203.0.113.7"],
        "fw-203.0.113.7",
        "continue",
    )
    sent = [json.loads(line) for line in Path(script + ".log").read_text().splitlines()]
    assert sent[0] == message
    assert sent[1] == dict(message, command="continue")
    assert result.stderr == "E" * 100 and result.stderr_dropped == 9900
    assert '"check_keys"' in result.stdout


@pytest.mark.parametrize("listed", ["fw-203.0.113.7", "203.0.113.7"])
def test_abort_when_key_is_listed(tmp_path: Path, listed: str) -> None:
    script = make_script(tmp_path, "fw", STATEFUL)
    result = run_script(
        script, build_message(script, "add", "n", alert(), []), str(tmp_path), [listed], 5, 5, 100
    )
    assert result.reply == "abort"
    assert json.loads(Path(script + ".log").read_text().splitlines()[1])["command"] == "abort"


def test_delete_has_no_handshake(tmp_path: Path) -> None:
    script = make_script(tmp_path, "fw", STATEFUL)
    result = run_script(
        script, build_message(script, "delete", "n", alert(), []), str(tmp_path), [], 5, 5, 100
    )
    assert (result.rc, result.keys, result.reply) == (0, None, None)
    assert len(Path(script + ".log").read_text().splitlines()) == 1


def test_script_without_handshake_exits(tmp_path: Path) -> None:
    script = make_script(tmp_path, "stateless", "import sys\nsys.stdin.readline()\nsys.exit(3)\n")
    result = run_script(script, build_message(script, "add", "n", alert(), []), str(tmp_path), [], 5, 5, 100)
    assert (result.rc, result.keys, result.reply, result.timed_out) == (3, None, None, False)


def test_hanging_script_is_killed_with_its_children(tmp_path: Path) -> None:
    marker = tmp_path / "child-survived"
    child = f"import time; time.sleep(1.5); open({str(marker)!r}, 'w')"
    body = (
        f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', {child!r}])\ntime.sleep(60)\n"
    )
    script = make_script(tmp_path, "hang", body)
    started = time.monotonic()
    result = run_script(
        script, build_message(script, "add", "n", alert(), []), str(tmp_path), [], 0.5, 0.5, 100
    )
    assert result.timed_out and result.rc is not None and result.rc < 0
    assert time.monotonic() - started < 5
    time.sleep(2)
    assert not marker.exists()


def test_script_that_never_reads_a_large_message_cannot_hang_the_module(tmp_path: Path) -> None:
    script = make_script(tmp_path, "deaf", "import time\ntime.sleep(60)\n")
    big = dict(alert(), full_log="x" * 1_000_000)  # far beyond a pipe buffer
    started = time.monotonic()
    result = run_script(script, build_message(script, "add", "n", big, []), str(tmp_path), [], 0.5, 0.5, 100)
    assert result.timed_out and time.monotonic() - started < 5


def test_background_child_holding_stdout_does_not_delay_the_result(tmp_path: Path) -> None:
    body = "import subprocess, sys\nsys.stdin.readline()\nsubprocess.Popen(['sleep', '30'])\nprint('bye')\n"
    script = make_script(tmp_path, "forks", body)
    started = time.monotonic()
    result = run_script(
        script, build_message(script, "delete", "n", alert(), []), str(tmp_path), [], 5, 20, 100
    )
    assert (result.rc, result.timed_out, result.stdout) == (0, False, "bye\n")
    assert time.monotonic() - started < 5


def test_alert_fields_the_stock_scripts_use_are_checked() -> None:
    assert alert_problems(alert()) == []
    bad = {"data": {"srcip": "1.2.3.4;touch /tmp/pwned", "dstuser": "-rf"}}
    problems = alert_problems(bad)
    assert len(problems) == 2 and "data.srcip" in problems[0] and "data.dstuser" in problems[1]
    windows = {"data": {"win": {"eventdata": {"ipAddress": "$(id)"}}}}
    assert "data.win.eventdata.ipAddress" in alert_problems(windows)[0]


def execd_case_alerts() -> list[dict[str, Any]]:
    if not EXECD_CASES.is_file():
        pytest.skip(f"Wazuh conformance data not found at {EXECD_CASES}")
    alerts = []
    for case in yaml.safe_load(EXECD_CASES.read_text()):
        text = case["metadata"]["input"]
        try:
            message = json.loads(text.split(" ", 1)[1])
        except ValueError:
            continue  # the cases that test execd's reaction to broken JSON
        alert_object = message.get("parameters", {}).get("alert")
        if isinstance(alert_object, dict):
            alerts.append(alert_object)
    return alerts


def test_wazuh_execd_case_alerts_pass_through_unchanged(tmp_path: Path) -> None:
    """Alerts from wazuh/wazuh's execd firewall-drop tests reach the script byte-for-byte as JSON data."""
    alerts = execd_case_alerts()
    assert alerts, "expected alerts in the execd cases"
    script = make_script(
        tmp_path, "firewall-drop", "import sys\nopen(sys.argv[0] + '.log', 'a').write(sys.stdin.readline())\n"
    )
    for item in alerts:
        assert alert_problems(item) == []
        result = run_script(
            script, build_message(script, "delete", "n", item, []), str(tmp_path), [], 5, 5, 100
        )
        assert result.rc == 0
    received = [json.loads(line) for line in Path(script + ".log").read_text().splitlines()]
    assert [m["parameters"]["alert"] for m in received] == alerts
    assert {m["parameters"]["program"] for m in received} == {"active-response/bin/firewall-drop"}
