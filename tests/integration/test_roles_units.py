"""The roles' systemd unit templates, rendered as the roles render them, pass `systemd-analyze verify`.

The lab hosts and Molecule run without systemd as PID 1, so these units are never started there; this is
where a typo in them (an unknown key, a bad value, a missing command) is caught. systemd-analyze works
without a running systemd (Debian's systemd package is installed even when it is not PID 1).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import jinja2
import pytest

REPO = Path(__file__).resolve().parents[2]
UNITS = {
    "threatlockdown_manager": "threatlockdown-manager.service",
    "threatlockdown_agent": "threatlockdown-agent.service",
}
ANALYZE = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (Debian: systemd)")


def _render(role: str, home: Path, venv: Path) -> str:
    template = (REPO / "roles" / role / "templates" / f"{UNITS[role]}.j2").read_text()
    # StrictUndefined: a variable the test does not supply fails here instead of rendering empty.
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.from_string(template).render({f"{role}_home": str(home), f"{role}_venv": str(venv)})


def _verify(unit: Path) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run(
        [ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture()
def venv(tmp_path: Path) -> Path:
    # verify checks that ExecStart's program exists and is executable: a stand-in for the venv's tld.
    tld = tmp_path / "venv" / "bin" / "tld"
    tld.parent.mkdir(parents=True)
    tld.write_text("#!/bin/sh\nexit 0\n")
    tld.chmod(0o755)
    return tld.parent.parent


@pytest.mark.parametrize("role", sorted(UNITS))
def test_rendered_unit_passes_systemd_analyze_verify(role: str, tmp_path: Path, venv: Path) -> None:
    unit = tmp_path / UNITS[role]
    unit.write_text(_render(role, tmp_path / "home", venv))
    done = _verify(unit)
    assert done.returncode == 0, done.stderr
    # Unknown keys are only warnings (exit 0): any message about the unit counts as a failure.
    assert UNITS[role] not in done.stderr, done.stderr
    assert f"ExecStart={venv}/bin/tld " in unit.read_text()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("RestartSec=5", "RestartSecs=5"), "Unknown key 'RestartSecs'"),
        (("Type=simple", "Type=simplest"), "Failed to parse service type"),
    ],
)
def test_verify_catches_a_broken_unit(
    change: tuple[str, str], message: str, tmp_path: Path, venv: Path
) -> None:
    role = "threatlockdown_manager"
    text = _render(role, tmp_path / "home", venv)
    assert change[0] in text
    unit = tmp_path / UNITS[role]
    unit.write_text(text.replace(change[0], change[1]))
    assert message in _verify(unit).stderr
