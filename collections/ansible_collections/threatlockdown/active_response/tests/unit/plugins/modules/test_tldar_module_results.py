"""Modules run in-process through AnsibleModule: results, diff on request, check mode and failure results.

Only modules that need neither root nor real firewall tools run here (hosts.deny in a temporary file,
restart_manager and wazuh_ar_script with small executables); tests/integration/test_modules_netns.py runs
all of them through ansible-playbook in network namespaces.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.threatlockdown.active_response.plugins.module_utils.hosts_deny_file import BEGIN

PACKAGE = "ansible_collections.threatlockdown.active_response.plugins.modules"


def run_module(
    capsys: pytest.CaptureFixture[str],
    name: str,
    args: dict[str, Any],
    *,
    check: bool = False,
    diff: bool = False,
) -> dict[str, Any]:
    """The module's JSON result; ``failed`` is set when it ended with fail_json."""
    module = importlib.import_module(f"{PACKAGE}.{name}")
    module_args = {**args, "_ansible_check_mode": check, "_ansible_diff": diff}
    with patch_module_args(module_args), pytest.raises(SystemExit) as exited:
        module.main()
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert bool(result.get("failed")) is (exited.value.code != 0)
    return result


def executable(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def test_host_deny_edits_and_diffs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "hosts.deny"
    path.write_text("sshd: 192.0.2.9\n")
    args = {"addresses": ["203.0.113.7", "2001:db8::7"], "path": str(path)}

    checked = run_module(capsys, "host_deny", args, check=True)
    assert checked["changed"] is True and "diff" not in checked
    assert path.read_text() == "sshd: 192.0.2.9\n"

    done = run_module(capsys, "host_deny", args, diff=True)
    assert done["changed"] is True
    assert done["denied"] == ["203.0.113.7", "2001:db8::7"]
    assert [r["entry"] for r in done["results"]] == ["ALL: 203.0.113.7", "ALL: [2001:db8::7]"]
    assert done["diff"]["before_header"] == done["diff"]["after_header"] == str(path)
    assert done["diff"]["before"] == ""
    assert "ALL: [2001:db8::7]" in done["diff"]["after"]
    assert "ALL: 203.0.113.7" in path.read_text()

    again = run_module(capsys, "host_deny", args)
    assert again["changed"] is False and "diff" not in again


def test_host_deny_failures(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    refused = run_module(
        capsys, "host_deny", {"addresses": ["203.0.113.7", "10.0.0.0/8"], "path": str(tmp_path / "d")}
    )
    assert refused["failed"] is True
    assert refused["invalid"] == [
        "addresses[1] '10.0.0.0/8': zone ids and prefixes are not accepted, give a single host address"
    ]

    missing_dir = tmp_path / "no-such-dir" / "hosts.deny"
    unwritable = run_module(capsys, "host_deny", {"addresses": ["203.0.113.7"], "path": str(missing_dir)})
    assert unwritable["failed"] is True
    assert unwritable["msg"].startswith(f"cannot update {missing_dir}: ")

    broken = tmp_path / "broken.deny"
    broken.write_text(BEGIN + "\n")
    unclosed = run_module(capsys, "host_deny", {"addresses": ["203.0.113.7"], "path": str(broken)})
    assert unclosed["failed"] is True
    assert unclosed["msg"].startswith(f"{broken}:1: ")


def test_restart_manager_check_mode_and_failure_details(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    failing = executable(tmp_path / "tld", "echo restarting; echo broken >&2; exit 4\n")
    args = {"home": str(tmp_path), "tld_path": failing}

    checked = run_module(capsys, "restart_manager", args, check=True)
    assert checked["changed"] is True and checked["rc"] is None
    assert checked["cmd"] == [failing, "manager", "restart", "--home", str(tmp_path)]

    failed = run_module(capsys, "restart_manager", args)
    assert failed["failed"] is True
    assert failed["msg"] == f"{failing} manager restart --home {tmp_path} exited 4"
    assert (failed["rc"], failed["stdout"], failed["stderr"]) == (4, "restarting\n", "broken\n")
    assert failed["cmd"] == [failing, "manager", "restart", "--home", str(tmp_path)]

    missing = run_module(capsys, "restart_manager", {"home": str(tmp_path / "nowhere"), "tld_path": failing})
    assert missing["failed"] is True and "is not an existing directory" in missing["msg"]
    assert "cmd" not in missing


ALERT = {"rule": {"id": "5712", "level": 10}, "data": {"srcip": "203.0.113.7"}, "agent": {"id": "000"}}


@pytest.mark.parametrize("diff", [False, True])
def test_wazuh_ar_script_failed_runs_fail_with_every_result(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, diff: bool
) -> None:
    script = executable(tmp_path / "ar.sh", "read -r line; exit 3\n")
    args = {"executable": script, "items": [{"alert": ALERT}, {"alert": ALERT}], "chdir": str(tmp_path)}
    result = run_module(capsys, "wazuh_ar_script", args, diff=diff)
    assert result["failed"] is True
    assert result["msg"] == "2 of 2 script run(s) failed (non-zero exit or timeout): items 0, 1"
    assert [r["rc"] for r in result["results"]] == [3, 3]
    assert ("diff" in result) is diff


def test_wazuh_ar_script_check_mode_runs_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    script = executable(tmp_path / "ar.sh", f"touch {marker}\n")
    args = {"executable": script, "items": [{"alert": ALERT}], "chdir": str(tmp_path)}
    result = run_module(capsys, "wazuh_ar_script", args, check=True, diff=True)
    assert result["changed"] is True and not result.get("failed")
    assert result["results"][0]["rc"] is None
    assert result["diff"]["before"] == "" and result["diff"]["after"].count("\n") == 1
    assert not marker.exists()


def test_wazuh_ar_script_refuses_bad_inputs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    result = run_module(capsys, "wazuh_ar_script", {"executable": "relative.sh", "items": [{"alert": ALERT}]})
    assert result["failed"] is True
    assert result["msg"] == "executable 'relative.sh' must be an absolute path"
