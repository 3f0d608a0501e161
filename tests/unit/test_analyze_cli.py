"""``tld analyze``: alerts.json output, the summary, the replay clock, journald input, missing files."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from threatlockdown.analysis.eventtime import ReplayClock
from threatlockdown.cli.main import main

SUMMARY = re.compile(r"^analyzed (\d+) lines, (\d+) alerts in \d+\.\d\d s \(\d+ lines/s\)$")
PER_RULE = re.compile(r"^ +(\d+)  rule +(\d+)  (.+)$")
ATTACKER = "198.51.100.7"


def invalid_user(at: int, port: int = 4242) -> str:
    """An 'Invalid user' line written ``at`` seconds after 10:00:00."""
    minute, second = divmod(at, 60)
    header = f"Mar  3 10:{minute:02d}:{second:02d} web1 sshd[{port}]"
    return f"{header}: Invalid user admin from {ATTACKER} port {port}"


def analyze(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> tuple[int, list[str], list[str]]:
    rc = main(["analyze", "--home", str(home), "--no-progress", *args])
    out, err = capsys.readouterr()
    return rc, out.splitlines(), err.splitlines()


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def read_alerts(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_writes_one_json_alert_per_line_and_a_summary(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log = write(
        tmp_path / "secure",
        [invalid_user(i, 4000 + i) for i in range(3)] + ["", "nothing anyone decodes"],
    )
    out_file = tmp_path / "alerts.json"
    rc, out, err = analyze(capsys, tmp_path, str(log), "--alerts", str(out_file))
    assert rc == 0 and err == []
    alerts = read_alerts(out_file)
    assert [a["rule"]["id"] for a in alerts] == ["5710"] * 3
    assert all(a["location"] == str(log) for a in alerts)
    per_rule = PER_RULE.match(out[0])
    assert per_rule is not None and per_rule.groups()[:2] == ("3", "5710")
    summary = SUMMARY.match(out[-1])
    assert summary is not None and summary.groups() == ("4", "3")  # the empty line is not counted


def test_alerts_to_stdout_send_the_summary_to_stderr(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log = write(tmp_path / "secure", [invalid_user(1)])
    rc, out, err = analyze(capsys, tmp_path, str(log), "--alerts", "-", "--location", "/var/log/secure")
    assert rc == 0
    assert len(out) == 1 and json.loads(out[0])["location"] == "/var/log/secure"
    assert len(err) == 1 and SUMMARY.match(err[0])


def test_replay_clock_uses_the_time_written_in_each_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # 5712 needs 8 events within 120 s. Spread over 10 minutes they never correlate...
    spread = write(tmp_path / "spread.log", [invalid_user(85 * i, 4000 + i) for i in range(8)])
    out_file = tmp_path / "a.json"
    assert analyze(capsys, tmp_path, str(spread), "--alerts", str(out_file))[0] == 0
    assert {a["rule"]["id"] for a in read_alerts(out_file)} == {"5710"}
    # ...within one minute they do, on the eighth line.
    burst = write(tmp_path / "burst.log", [invalid_user(7 * i, 4000 + i) for i in range(8)])
    assert analyze(capsys, tmp_path, str(burst), "--alerts", str(out_file))[0] == 0
    ids = [a["rule"]["id"] for a in read_alerts(out_file)]
    assert ids == ["5710"] * 7 + ["5712"]


def test_live_clock_correlates_by_analysis_time(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    spread = write(tmp_path / "spread.log", [invalid_user(85 * i, 4000 + i) for i in range(8)])
    out_file = tmp_path / "a.json"
    assert analyze(capsys, tmp_path, str(spread), "--alerts", str(out_file), "--live-clock")[0] == 0
    assert [a["rule"]["id"] for a in read_alerts(out_file)][-1] == "5712"


def test_journald_records(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    start = int(time.mktime((2024, 5, 6, 10, 0, 0, 0, 0, -1)))

    def record(i: int) -> str:
        return json.dumps(
            {
                "MESSAGE": f"Invalid user admin from {ATTACKER} port {4000 + i}",
                "__REALTIME_TIMESTAMP": str((start + 5 * i) * 1_000_000),
                "_HOSTNAME": "web1",
                "SYSLOG_IDENTIFIER": "sshd",
                "_PID": str(100 + i),
            }
        )

    lines = [record(i) for i in range(8)]
    lines.insert(3, "not json")
    lines.insert(5, "[1, 2]")
    log = write(tmp_path / "journal.json", lines)
    out_file = tmp_path / "a.json"
    rc, out, err = analyze(capsys, tmp_path, "--format", "journald", str(log), "--alerts", str(out_file))
    assert rc == 0
    alerts = read_alerts(out_file)
    assert [a["rule"]["id"] for a in alerts] == ["5710"] * 7 + ["5712"]
    assert (
        alerts[0]["full_log"]
        == f"May  6 10:00:00 web1 sshd[100]: Invalid user admin from {ATTACKER} port 4000"
    )
    assert alerts[0]["predecoder"] == {
        "program_name": "sshd",
        "timestamp": "May  6 10:00:00",
        "hostname": "web1",
    }
    # Bad records are warnings that name the file and line; they do not stop the run.
    assert any(f"{log}:4: not a journal record" in e for e in err), err
    assert any(f"{log}:6: not a journal record" in e for e in err), err
    assert SUMMARY.match(out[-1])


def test_missing_file_is_reported_the_others_are_analysed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log = write(tmp_path / "secure", [invalid_user(1)])
    missing = tmp_path / "no-such.log"
    rc, out, err = analyze(capsys, tmp_path, str(missing), str(log), str(tmp_path))
    assert rc == 1  # the input was incomplete
    assert f"error: {missing}: No such file or directory" in err
    assert any(str(tmp_path) in e and "directory" in e.lower() for e in err if e.startswith("error:")), err
    summary = SUMMARY.match(out[-1])
    assert summary is not None and summary.groups() == ("1", "1")


def test_broken_ruleset_means_nothing_is_analysed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    ruleset = tmp_path / "rs"
    (ruleset / "decoders").mkdir(parents=True)
    (ruleset / "rules").mkdir()
    (ruleset / "rules" / "r.xml").write_text('<group name="x">\n<rule id="1" level="99"/>\n</group>\n')
    log = write(tmp_path / "secure", [invalid_user(1)])
    rc, out, err = analyze(capsys, tmp_path, "--ruleset", str(ruleset), str(log))
    assert rc == 1 and out == []
    assert any("r.xml:2: <rule>:" in e and "level=99" in e for e in err), err


def test_replay_clock_parses_the_header_formats() -> None:
    clock = ReplayClock(year=2024)
    base = clock.time_of("May  6 10:00:00")
    assert base == time.mktime((2024, 5, 6, 10, 0, 0, 0, 0, -1))
    assert clock.time_of("May  6 10:02:00") - base == 120
    assert clock.time_of("May  7 10:00:00") - base == 86400
    assert clock.time_of("2024 May 06 10:00:05") - base == 5
    iso = clock.time_of("2024-05-06T10:00:00+00:00")
    assert iso == 1714989600.0
    # Lines without a usable timestamp keep the last good time.
    assert clock.time_of("") == iso and clock.time_of("garbage here") == iso
