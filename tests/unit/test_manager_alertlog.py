"""alerts.log entries: Wazuh's multi-line text format."""

from __future__ import annotations

import pytest

from threatlockdown.analysis.session import AgentInfo, AnalysisSession
from threatlockdown.manager.alertlog import format_alert_text
from threatlockdown.ruleset.loader import load_ruleset

LINE = "Nov 26 05:33:21 web1 sshd[121]: Invalid user bob from 192.0.2.66 port 50001"


@pytest.fixture(scope="module")
def session() -> AnalysisSession:
    return AnalysisSession(load_ruleset(), manager_name="mgr")


def test_local_event_entry(session: AnalysisSession) -> None:
    result = session.process(LINE, "/var/log/auth.log")
    lines = format_alert_text(result).split("\n")
    assert lines[0].startswith(f"** Alert {result.alert_id}: - syslog,sshd,")
    assert lines[0].endswith(",")  # Wazuh's group string ends with a comma
    # date, then host->location (the pre-decoded host name of the line)
    assert lines[1].endswith(" web1->/var/log/auth.log")
    assert lines[2] == "Rule: 5710 (level 5) -> 'sshd: Attempt to login using a non-existent user'"
    assert lines[3] == "Src IP: 192.0.2.66"
    assert lines[4] == "Src Port: 50001"
    assert LINE in lines
    # srcuser is a static field: never repeated as "srcuser: bob"
    assert not any(line.startswith("srcuser:") for line in lines)
    assert format_alert_text(result).endswith(LINE + "\n\n")


def test_agent_event_shows_wazuh_queue_origin(session: AnalysisSession) -> None:
    result = session.process(LINE, "/var/log/auth.log", AgentInfo("001", "web1", "192.0.2.12"))
    second = format_alert_text(result).split("\n")[1]
    assert second.endswith(" (web1) 192.0.2.12->/var/log/auth.log")
