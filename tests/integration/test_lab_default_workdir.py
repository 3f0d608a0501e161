"""`tld lab up`/`down` without --workdir, and workdirs that the hosts' own directories would hide."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from threatlockdown.lab import Lab, LabError
from threatlockdown.lab.spec import DEFAULT_WORKDIR_ROOT

REPO = Path(__file__).resolve().parents[2]
NAME = "tldw"  # its own name: no other test or scenario uses it


def _tld_lab(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "threatlockdown.cli.lab_cmd", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


def test_up_status_down_with_the_default_workdir() -> None:
    workdir = DEFAULT_WORKDIR_ROOT / NAME
    try:
        up = _tld_lab("up", "--name", NAME, "--host", "s1", "--host", "c1:nossh")
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"lab {NAME} is up in {workdir}" in up.stdout
        assert (workdir / "state.json").is_file()
        # The hosts really see their own directories (what a workdir under /run broke).
        lab = Lab.attach(NAME)
        assert lab.exec("s1", ["hostname"], check=True).stdout == "s1\n"
        assert lab.host_path("s1", "/etc/ssh/sshd_config").is_file()

        status = _tld_lab("status", "--name", NAME)
        assert status.returncode == 0, status.stdout + status.stderr
        assert f"lab {NAME}: up ({workdir})" in status.stdout
    finally:
        down = _tld_lab("down", "--name", NAME)
    assert down.returncode == 0, down.stdout + down.stderr
    assert f"removed {workdir}" in down.stdout
    assert not workdir.exists()
    again = _tld_lab("down", "--name", NAME)
    assert again.returncode == 0 and "nothing to tear down" in again.stdout


@pytest.mark.parametrize(
    "workdir", ["/run/threatlockdown/lab/x", "/var/run/tld-x", "/etc/tld-lab", "/var/log/l"]
)
def test_a_workdir_the_hosts_would_hide_is_refused_before_touching_the_system(workdir: str) -> None:
    with pytest.raises(
        LabError, match=r"workdir .* is under /(run|etc|var/log), which every lab host replaces"
    ):
        Lab(name="tldw", hosts=["s1"], workdir=Path(workdir))
    done = _tld_lab("up", "--name", NAME, "--host", "s1", "--workdir", workdir)
    assert done.returncode == 1
    assert "tld lab: error: invalid lab spec: workdir" in done.stderr
    assert not Path(workdir).exists()
