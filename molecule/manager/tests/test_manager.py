"""Checks of the `manager` scenario: the host as the manager role left it, then the running manager."""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

testinfra_hosts = ["manager"]

HOME = "/var/ossec"
TLD = f"{HOME}/venv/bin/tld"
REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))


def _version() -> str:
    with (REPO / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def _json(host: Any, command: str) -> Any:
    return json.loads(host.check_output(command))


def _alerts(host: Any) -> list[dict[str, Any]]:
    text = host.file(f"{HOME}/logs/alerts/alerts.json").content_string
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _wait_for_alert(host: Any, rule_id: str, needle: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for alert in _alerts(host):
            if alert["rule"]["id"] == rule_id and needle in alert["full_log"]:
                return alert
        time.sleep(0.5)
    raise AssertionError(f"no alert {rule_id} for {needle!r} within {timeout:.0f} s")


def test_package_installed_from_the_wheelhouse(host: Any) -> None:
    assert host.check_output(f"{TLD} --version") == f"tld {_version()}"
    # The venv was made without pip; pip ran from the wheel the role copied.
    assert not host.file(f"{HOME}/venv/bin/pip").exists
    assert host.file(f"{HOME}/venv/threatlockdown-wheelhouse.sha256sums").exists


@pytest.mark.parametrize(
    "path", ["", "/etc", "/etc/rules", "/etc/decoders", "/logs", "/logs/alerts", "/queue", "/var/run"]
)
def test_home_layout(host: Any, path: str) -> None:
    d = host.file(HOME + path)
    assert d.is_directory
    assert d.user == "root"
    assert d.mode == 0o750


def test_collection_and_response_playbooks_installed(host: Any) -> None:
    manifest = host.file(
        f"{HOME}/active-response/collections/ansible_collections/threatlockdown/active_response/MANIFEST.json"
    )
    assert json.loads(manifest.content_string)["collection_info"]["name"] == "active_response"
    shipped = sorted(p.name for p in (REPO / "playbooks" / "responses").glob("*.yml"))
    installed = host.check_output(f"ls {HOME}/active-response/playbooks").split()
    assert installed == shipped


def test_runner_inventory_and_key_are_private(host: Any) -> None:
    inventory = host.file(f"{HOME}/etc/inventory.yml")
    assert inventory.mode == 0o600
    assert "web1" in inventory.content_string
    key = host.file(f"{HOME}/etc/responder_ssh_key")
    assert key.mode == 0o600
    assert key.content_string == "placeholder for the responder key\n"


def test_ossec_conf_is_valid_and_holds_the_inventory_policy(host: Any) -> None:
    assert host.run(f"{TLD} config check {HOME}/etc/ossec.conf").rc == 0
    conf = _json(host, f"{TLD} config show --json {HOME}/etc/ossec.conf")
    responses = [
        (ar["command"], sorted(ar["locations"]), ar["rules_id"], ar["timeout"], ar["target"])
        for ar in conf["active_responses"]
    ]
    assert responses == [
        ("firewall-drop", ["local"], [5710], 100, None),  # threatlockdown_manager_active_responses
        ("host-deny", ["all"], [5712], 600, None),  # ..._fleet, added by its name
        ("route-null", ["local"], [5712], 300, "web"),  # group_vars/web.yml of web1
    ]
    assert [c["name"] for c in conf["commands"].values()] == [
        "firewall-drop",
        "host-deny",
        "route-null",
        "disable-account",
        "restart-threatlockdown",
    ]


def test_variable_text_is_escaped(host: Any) -> None:
    raw = host.file(f"{HOME}/etc/ossec.conf").content_string
    assert "<white_list>^scanner&lt;&amp;&gt;&#34;quoted&#34;&#39;host&#39;$</white_list>" in raw
    conf = _json(host, f"{TLD} config show --json {HOME}/etc/ossec.conf")
    assert "^scanner<&>\"quoted\"'host'$" in [e["value"] for e in conf["global_"]["white_list"]]


def test_custom_rules_installed_and_purged(host: Any) -> None:
    assert host.check_output(f"ls {HOME}/etc/rules") == "local_rules.xml"
    assert host.file(f"{HOME}/etc/rules/local_rules.xml").mode == 0o640


def test_manager_runs_without_systemd(host: Any) -> None:
    status = _json(host, f"{TLD} manager status --json --home {HOME}")
    assert status["home"] == HOME
    assert status["pid"] > 0
    assert not host.file("/etc/systemd/system/threatlockdown-manager.service").exists


def test_an_sshd_line_becomes_rule_5710_and_the_site_rule_fires(host: Any) -> None:
    tag = f"molecule{int(time.time() * 1000)}"
    host.check_output(f"logger -p auth.info -t 'sshd[4242]' 'Invalid user {tag} from 192.0.2.201 port 50000'")
    alert = _wait_for_alert(host, "5710", tag)
    assert alert["data"]["srcip"] == "192.0.2.201"
    host.check_output("logger -p auth.info -t 'sshd[4243]' 'Invalid user admin from 192.0.2.202 port 50001'")
    site = _wait_for_alert(host, "100100", "192.0.2.202")
    assert site["rule"]["level"] == 10


def _ansible_env() -> dict[str, str]:
    return {
        **os.environ,
        "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
        "ANSIBLE_COLLECTIONS_PATH": str(REPO / "collections"),
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_GATHERING": "explicit",
    }


def _policy_playbook(extra: dict[str, Any], *options: str) -> subprocess.CompletedProcess[str]:
    inventories = [
        f"{os.environ['MOLECULE_EPHEMERAL_DIRECTORY']}/inventory/",
        f"{os.environ['MOLECULE_SCENARIO_DIRECTORY']}/inventory/",
    ]
    cmd = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        *[f"--inventory={i}" for i in inventories],
        str(REPO / "playbooks" / "policy.yml"),
        *options,
        "--extra-vars",
        json.dumps(extra),
    ]
    return subprocess.run(cmd, env=_ansible_env(), capture_output=True, text=True, timeout=300, check=False)


def test_policy_check_diff_shows_the_exact_change_and_changes_nothing(host: Any) -> None:
    before = host.file(f"{HOME}/etc/ossec.conf").sha256sum
    reloads = _json(host, f"{TLD} manager status --json --home {HOME}")["reloads"]
    preview = {
        "threatlockdown_manager_active_responses_zz_preview": [
            {"command": "disable-account", "location": "local", "rules_id": [5503], "timeout": 120}
        ]
    }
    run = _policy_playbook(preview, "--check", "--diff")
    assert run.returncode == 0, run.stdout + run.stderr
    # The expected file: the preview block lands after the manager's own lists, before the web group's.
    current = host.file(f"{HOME}/etc/ossec.conf").content_string
    web_block = "\n  <active-response>\n    <command>route-null</command>"
    assert current.count(web_block) == 1
    block = (
        "\n  <active-response>\n    <command>disable-account</command>\n    <location>local</location>\n"
        "    <rules_id>5503</rules_id>\n    <timeout>120</timeout>\n  </active-response>\n"
    )
    expected_after = current.replace(web_block, block + web_block)
    expected = [
        line.rstrip("\n")
        for line in difflib.unified_diff(current.splitlines(True), expected_after.splitlines(True), n=3)
    ][2:]
    lines = run.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("+++ after"))
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("changed: [manager]"))
    shown = lines[start + 1 : end]
    while shown and not shown[-1].strip():
        shown.pop()
    assert shown == expected, run.stdout
    assert "manager                    : ok=" in run.stdout and "changed=1 " in run.stdout, run.stdout
    # Check mode: the file and the running manager are untouched.
    assert host.file(f"{HOME}/etc/ossec.conf").sha256sum == before
    assert _json(host, f"{TLD} manager status --json --home {HOME}")["reloads"] == reloads


def test_policy_rollout_reloads_and_a_bad_policy_is_refused_before_install(host: Any) -> None:
    def status() -> dict[str, Any]:
        result: dict[str, Any] = _json(host, f"{TLD} manager status --json --home {HOME}")
        return result

    before = status()
    extra = {
        "threatlockdown_manager_active_responses_zz_rollout": [
            {"command": "host-deny", "location": "local", "rules_id": [5760], "timeout": 30}
        ]
    }
    run = _policy_playbook(extra)
    assert run.returncode == 0, run.stdout + run.stderr
    after = status()
    assert after["pid"] == before["pid"]  # reloaded, not restarted
    assert after["reloads"] == before["reloads"] + 1
    conf = _json(host, f"{TLD} config show --json {HOME}/etc/ossec.conf")
    assert [5760] in [ar["rules_id"] for ar in conf["active_responses"]]

    # A command that does not exist: tld config check refuses the candidate, the installed file stays.
    installed = host.file(f"{HOME}/etc/ossec.conf").sha256sum
    typo = [{"command": "firewall-dorp", "rules_id": [1]}]
    bad = {"threatlockdown_manager_active_responses_zz_rollout": typo}
    run = _policy_playbook(bad)
    assert run.returncode != 0
    output = run.stdout + run.stderr
    assert "unknown command 'firewall-dorp' (did you mean 'firewall-drop'?)" in output, output
    assert host.file(f"{HOME}/etc/ossec.conf").sha256sum == installed
    assert status()["reloads"] == after["reloads"]

    # Back to the inventory's policy.
    run = _policy_playbook({})
    assert run.returncode == 0, run.stdout + run.stderr
    assert status()["reloads"] == after["reloads"] + 1
