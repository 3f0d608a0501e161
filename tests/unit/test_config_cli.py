"""``tld config check`` and ``tld config show``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from threatlockdown.cli.main import main
from threatlockdown.config import default_config_path

SHIPPED_SUMMARY = "5 commands, 0 active responses, 3 localfiles, 1 remote"


def write(path: Path, *lines: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_check_valid_file_prints_one_summary_line(capsys: pytest.CaptureFixture[str]) -> None:
    path = default_config_path()
    assert main(["config", "check", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: OK ({SHIPPED_SUMMARY})\n"
    assert err == ""


def test_check_invalid_file_lists_every_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(
        tmp_path / "ossec.conf",
        "<ossec_config>",
        "  <active-response>",
        "    <command>firewall-dorp</command>",
        "    <location>local</location>",
        "    <level>42</level>",
        "  </active-response>",
        "</ossec_config>",
    )
    assert main(["config", "check", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"{path}:3: <active-response>: unknown command 'firewall-dorp'",
        f"{path}:5: <level>: invalid value '42' (expected an integer from 0 to 20)",
        "2 errors",
    ]


def test_check_prints_notes_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(
        tmp_path / "ossec.conf",
        "<ossec_config>",
        "  <command><name>restart</name><executable>restart</executable></command>",
        "  <active-response>",
        "    <command>restart</command>",
        "    <location>server</location>",
        "    <timeout>60</timeout>",
        "  </active-response>",
        "</ossec_config>",
    )
    assert main(["config", "check", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: OK (1 command, 1 active response, 0 localfiles, 0 remotes)\n"
    assert err == (
        f"note: {path}:6: <timeout>: command 'restart' does not have <timeout_allowed>yes</timeout_allowed>: "
        "timeout 60 is ignored and the response is never reverted\n"
    )


def test_check_counts_disabled_responses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(
        tmp_path / "ossec.conf",
        "<ossec_config>",
        "  <active-response>",
        "    <disabled>yes</disabled><command>x</command><location>all</location>",
        "  </active-response>",
        "</ossec_config>",
    )
    assert main(["config", "check", str(path)]) == 0
    assert "1 active response (1 disabled)" in capsys.readouterr().out


def test_check_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nope.conf"
    assert main(["config", "check", str(path)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{path}: cannot read: No such file or directory",
        "1 error",
    ]


def test_default_path_uses_home_option_then_tld_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "opt"
    conf = write(home / "etc" / "ossec.conf", "<ossec_config/>")
    assert main(["config", "check", "--home", str(home)]) == 0
    assert capsys.readouterr().out.startswith(f"{conf}: OK (")

    monkeypatch.setenv("TLD_HOME", str(home))
    assert main(["config", "check"]) == 0
    assert capsys.readouterr().out.startswith(f"{conf}: OK (")

    # --home wins over $TLD_HOME.
    assert main(["config", "check", "--home", str(tmp_path / "elsewhere")]) == 1
    assert f"{tmp_path / 'elsewhere' / 'etc' / 'ossec.conf'}: cannot read" in capsys.readouterr().err


def test_without_home_the_default_is_var_ossec(monkeypatch: pytest.MonkeyPatch) -> None:
    from threatlockdown.cli.config_cmd import config_path

    monkeypatch.delenv("TLD_HOME", raising=False)
    assert config_path(None, None) == Path("/var/ossec/etc/ossec.conf")
    assert config_path("x.conf", "/opt/tld") == Path("x.conf")


def test_show_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show", str(default_config_path()), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data["commands"]) == [
        "firewall-drop",
        "host-deny",
        "route-null",
        "disable-account",
        "restart-threatlockdown",
    ]
    assert data["commands"]["restart-threatlockdown"]["timeout_allowed"] is False
    assert data["global_"]["white_list"][0] == {
        "value": "127.0.0.1",
        "line": data["global_"]["white_list"][0]["line"],
        "path": str(default_config_path()),
    }
    assert data["localfiles"][1]["filters"] == [["_SYSTEMD_UNIT", "^ssh.service$"]]
    assert data["active_responses"] == []
    assert data["infos"] == []


def test_show_json_locations_are_sorted_lists(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(
        tmp_path / "ossec.conf",
        "<ossec_config>",
        "  <command>",
        "    <name>fw</name><executable>fw</executable><timeout_allowed>yes</timeout_allowed>",
        "  </command>",
        "  <active-response>",
        "    <command>fw</command><location>server,local</location><rules_id>5712</rules_id>",
        "    <timeout>60</timeout>",
        "  </active-response>",
        "</ossec_config>",
    )
    assert main(["config", "show", "--json", str(path)]) == 0
    (resp,) = json.loads(capsys.readouterr().out)["active_responses"]
    assert (resp["locations"], resp["rules_id"], resp["timeout"], resp["line"]) == (
        ["local", "server"],
        [5712],
        60,
        5,
    )


def test_show_human(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show", str(default_config_path())]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{default_config_path()}: {SHIPPED_SUMMARY}"
    assert "command firewall-drop: runs firewall-drop (timeout allowed)" in out
    assert "remote syslog on 514/udp" in out


def test_show_invalid_file_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "ossec.conf", "<ossec_config><golbal/></ossec_config>")
    assert main(["config", "show", "--json", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines()[-1] == "1 error"


def test_tld_as_ansible_validate_on_a_temp_file(tmp_path: Path) -> None:
    # Ansible's validate runs the command on a temporary copy with an arbitrary name.
    candidate = tmp_path / ".ansible_tmpk3j2ossec"
    candidate.write_bytes(default_config_path().read_bytes())
    tld = Path(sys.executable).parent / "tld"
    result = subprocess.run(
        [str(tld), "config", "check", str(candidate)], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        f"{candidate}: OK ({SHIPPED_SUMMARY})\n",
        "",
    )
