"""Reading the manager's and agent's settings: <auth>, <client>, relative locations, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from threatlockdown.errors import SourceErrors
from threatlockdown.manager.home import Home
from threatlockdown.manager.sections import read_auth_section, read_client_section, split_host_port
from threatlockdown.manager.settings import load_manager_settings


def _conf(tmp_path: Path, body: str) -> Path:
    (tmp_path / "etc").mkdir(exist_ok=True)
    path = tmp_path / "etc" / "ossec.conf"
    path.write_text(f"<ossec_config>\n{body}\n</ossec_config>\n")
    return path


def test_auth_defaults_and_values(tmp_path: Path) -> None:
    assert read_auth_section(_conf(tmp_path, "")).port == 1515
    conf = _conf(
        tmp_path,
        "<auth><port>2515</port><use_password>yes</use_password><force><enabled>yes</enabled></force></auth>",
    )
    auth = read_auth_section(conf)
    assert (auth.port, auth.use_password, auth.force, auth.disabled) == (2515, True, True, False)


def test_bad_values_name_file_line_and_element(tmp_path: Path) -> None:
    conf = _conf(tmp_path, "<auth>\n<port>0</port>\n<disabled>maybe</disabled>\n</auth>")
    with pytest.raises(SourceErrors) as err:
        read_auth_section(conf)
    messages = [str(e) for e in err.value.errors]
    assert messages[0].startswith(f"{conf}:3: <port>: invalid port '0'")
    assert messages[1].startswith(f"{conf}:4: <disabled>: invalid value 'maybe'")


def test_client_section(tmp_path: Path) -> None:
    conf = _conf(
        tmp_path,
        "<client><server><address>mgr.example</address><port>1600</port></server>"
        "<time-reconnect>5</time-reconnect></client>",
    )
    client = read_client_section(conf)
    assert (client.address, client.port, client.reconnect_seconds) == ("mgr.example", 1600, 5)
    assert read_client_section(_conf(tmp_path, "")).address is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("h", ("h", 1515)),
        ("h:1", ("h", 1)),
        ("[2001:db8::1]:9", ("2001:db8::1", 9)),
        ("2001:db8::1", ("2001:db8::1", 1515)),
    ],
)
def test_split_host_port(value: str, expected: tuple[str, int]) -> None:
    assert split_host_port(value, 1515) == expected


def test_split_host_port_refuses_a_bad_port() -> None:
    with pytest.raises(ValueError, match="port must be a number"):
        split_host_port("h:x", 1515)


def test_manager_settings(tmp_path: Path) -> None:
    _conf(
        tmp_path,
        """<localfile><log_format>syslog</log_format><location>logs/active-responses.log</location></localfile>
<remote><connection>secure</connection><port>1600</port></remote>
<remote><connection>syslog</connection><port>1514</port><protocol>udp</protocol><allowed-ips>127.0.0.1</allowed-ips></remote>
<alerts><log_alert_level>5</log_alert_level></alerts>""",
    )
    settings = load_manager_settings(Home(tmp_path))
    assert settings.localfiles[0].location == str(tmp_path / "logs" / "active-responses.log")
    assert settings.agent_remote is not None and settings.agent_remote.port == 1600
    assert [r.port for r in settings.syslog_remotes] == [1514]
    assert settings.log_alert_level == 5
    assert settings.ruleset.rules  # the shipped ruleset, since the home has none


def test_missing_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SourceErrors, match=r"ossec\.conf: file not found"):
        load_manager_settings(Home(tmp_path))
