"""The main job's timeline lines for active-response history rows (`tld ar history --json`)."""

from __future__ import annotations

import io

from threatlockdown.demo.reference import describe_history_row
from threatlockdown.demo.timeline import Timeline
from threatlockdown.response.state import HistoryRow


def _row(event: str, **detail: object) -> dict[str, object]:
    # Built by the history's own serialiser, so a change of its field names shows up here.
    return HistoryRow(
        time=1.0,
        event=event,
        key="firewall-drop|web1|192.0.2.50",
        command="firewall-drop",
        host="web1",
        subject="192.0.2.50",
        detail=dict(detail),
    ).to_json()


def test_history_rows_name_the_host_the_response_ran_on() -> None:
    triggered = describe_history_row(_row("triggered", rule_id="5710", timeout=30, alert_id=None))
    assert triggered == "triggered: host=web1 command=firewall-drop rule_id=5710 timeout=30"
    reverted = describe_history_row(_row("reverted", attempt=1, status="ok"))
    assert reverted == "reverted: host=web1 command=firewall-drop attempt=1 status=ok"
    assert "None" not in triggered + reverted


def test_timeline_prints_details_under_the_step() -> None:
    ticks = iter([10.0, 12.5])
    out = io.StringIO()
    timeline = Timeline(out=out, clock=lambda: next(ticks))
    timeline.step("revert after the 30 s timeout", [describe_history_row(_row("reverted", status="ok"))])
    assert out.getvalue() == (
        "[+   2.5 s] revert after the 30 s timeout\n"
        "              reverted: host=web1 command=firewall-drop status=ok\n"
    )
