"""``tld logtest``: output phases, --json, -U exit codes, one session across lines; once as a real process."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from threatlockdown.cli.main import main

REPO = Path(__file__).resolve().parents[2]
WAZUH_DATA = REPO.parent / "shared" / "conformance" / "wazuh"
TLD = REPO / ".venv" / "bin" / "tld"

INVALID_USER = "Mar  3 10:00:00 web1 sshd[1234]: Invalid user admin from 198.51.100.7 port 4242"
ACCEPTED = (
    "Mar  8 22:39:13 ip-10-0-0-10 sshd[2742]: Accepted publickey for root from 73.189.131.56 port 57516"
)


def wazuh_5710_line() -> str:
    """The first 'Invalid user' line of Wazuh's sshd.ini case for rule 5710."""
    path = WAZUH_DATA / "sshd.ini"
    if not path.is_file():
        pytest.skip(f"Wazuh test data not found: {path}")
    for raw in path.read_text(encoding="utf-8").splitlines():
        key, _, value = raw.partition("=")
        if key.strip().startswith("log ") and ": Invalid user " in value:
            return value.strip()
    raise AssertionError("no 'Invalid user' line in sshd.ini")


def logtest(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    home: Path,
    lines: list[str],
    *args: str,
) -> tuple[int, str, str]:
    """Run `tld logtest --home HOME ARGS` with LINES on stdin; return (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(f"{line}\n" for line in lines)))
    rc = main(["logtest", "--home", str(home), *args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_human_output_has_the_three_phases(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rc, out, _ = logtest(monkeypatch, capsys, tmp_path, [ACCEPTED])
    assert rc == 0
    phase1 = out.index("**Phase 1: Completed pre-decoding.")
    phase2 = out.index("**Phase 2: Completed decoding.")
    phase3 = out.index("**Phase 3: Completed filtering (rules).")
    assert phase1 < phase2 < phase3 < out.index("**Alert to be generated.")
    assert f"\tfull event: '{ACCEPTED}'" in out
    assert "\thostname: 'ip-10-0-0-10'" in out and "\tprogram_name: 'sshd'" in out
    assert "\tname: 'sshd'" in out and "\tdstuser: 'root'" in out and "\tsrcip: '73.189.131.56'" in out
    assert "\tid: '5715'" in out and "\tlevel: '3'" in out


def test_human_output_for_an_undecoded_unmatched_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rc, out, _ = logtest(monkeypatch, capsys, tmp_path, ["nothing anyone decodes"])
    assert rc == 0
    assert "No decoder matched." in out
    assert "Phase 3" not in out and "Alert to be generated" not in out


def test_json_output_has_the_alert_flag_and_no_rule_when_nothing_matched(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lines = [INVALID_USER, "nothing anyone decodes", ""]
    rc, out, _ = logtest(monkeypatch, capsys, tmp_path, lines, "--json", "-l", "/var/log/secure")
    assert rc == 0
    objects = [json.loads(text) for text in out.splitlines()]
    assert len(objects) == 2  # the empty line is skipped
    hit, miss = objects
    assert hit["alert"] is True and hit["rule"]["id"] == "5710" and hit["location"] == "/var/log/secure"
    assert miss["alert"] is False and "rule" not in miss


def test_json_level_zero_rule_is_shown_but_does_not_alert(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    line = "Mar  3 10:00:00 web1 sshd[1]: Connection closed by 10.0.2.2 port 55462 [preauth]"
    rc, out, _ = logtest(monkeypatch, capsys, tmp_path, [line], "--json")
    obj = json.loads(out)
    assert rc == 0 and obj["alert"] is False and obj["rule"]["level"] == 0


def test_ut_exits_zero_for_the_expected_triple_and_one_otherwise(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    line = wazuh_5710_line()
    assert logtest(monkeypatch, capsys, tmp_path, [line], "-U", "5710:5:sshd", "-q")[0] == 0
    for wrong in ("5710:6:sshd", "5712:5:sshd", "5710:5:pam"):
        rc, out, _ = logtest(monkeypatch, capsys, tmp_path, [line], "-U", wrong, "-q")
        assert rc == 1, wrong
        assert out == ""  # -q prints nothing
    assert logtest(monkeypatch, capsys, tmp_path, ["nothing"], "-U", "5710:5:sshd", "-q")[0] == 1
    assert logtest(monkeypatch, capsys, tmp_path, [], "-U", "5710:5:sshd", "-q")[0] == 1


def test_ut_with_a_malformed_triple_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rc, _, err = logtest(monkeypatch, capsys, tmp_path, [INVALID_USER], "-U", "5710:5", "-q")
    assert rc == 2 and "RULE:LEVEL:DECODER" in err


def test_lines_of_one_invocation_share_frequency_state(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lines = [INVALID_USER.replace("4242", str(4000 + i)) for i in range(8)]
    rc, out, _ = logtest(monkeypatch, capsys, tmp_path, lines, "--json")
    ids = [json.loads(text)["rule"]["id"] for text in out.splitlines()]
    assert rc == 0 and ids == ["5710"] * 7 + ["5712"]
    assert logtest(monkeypatch, capsys, tmp_path, lines, "-q", "-U", "5712:10:sshd")[0] == 0
    assert logtest(monkeypatch, capsys, tmp_path, lines[:7], "-q", "-U", "5712:10:sshd")[0] == 1


def test_own_ruleset_directory(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ruleset = tmp_path / "mine"
    (ruleset / "decoders").mkdir(parents=True)
    (ruleset / "rules").mkdir()
    (ruleset / "decoders" / "d.xml").write_text(
        '<decoder name="app"><program_name>^app$</program_name></decoder>'
    )
    (ruleset / "rules" / "r.xml").write_text(
        '<group name="local,"><rule id="100001" level="7"><decoded_as>app</decoded_as>'
        "<match>boom</match><description>app went boom</description></rule></group>"
    )
    line = "Mar  3 10:00:00 web1 app: boom"
    rc, _, _ = logtest(
        monkeypatch, capsys, tmp_path, [line], "--ruleset", str(ruleset), "-q", "-U", "100001:7:app"
    )
    assert rc == 0
    # The shipped sshd rules are not loaded from there.
    rc, _, _ = logtest(
        monkeypatch, capsys, tmp_path, [INVALID_USER], "--ruleset", str(ruleset), "-q", "-U", "5710:5:sshd"
    )
    assert rc == 1


def test_broken_ruleset_is_reported_and_nothing_is_analysed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ruleset = tmp_path / "broken"
    (ruleset / "decoders").mkdir(parents=True)
    (ruleset / "rules").mkdir()
    (ruleset / "decoders" / "d.xml").write_text('<decoder name="app">\n  <parent>nope</parent>\n</decoder>\n')
    rc, out, err = logtest(monkeypatch, capsys, tmp_path, [INVALID_USER], "--ruleset", str(ruleset))
    assert rc == 1 and out == ""
    assert "d.xml:2: <parent>:" in err and "nothing analysed" in err


def test_as_a_real_process() -> None:
    if not TLD.exists():
        pytest.skip(f"{TLD} not installed")
    lines = "\n".join(INVALID_USER.replace("4242", str(4000 + i)) for i in range(8)) + "\n"
    done = subprocess.run(
        [str(TLD), "logtest", "--home", "/nonexistent-home", "-U", "5712:10:sshd"],
        input=lines,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("**Phase 1: Completed pre-decoding.") == 8
    assert "\tid: '5712'" in done.stdout
