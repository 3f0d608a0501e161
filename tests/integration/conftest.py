"""Shared fixtures for integration tests that run real processes in a namespace lab (root only).

Every test in this directory is marked ``root``; all of them are skipped, with the reason, when the
machine cannot run a lab (not root, namespaces not permitted, a required program missing).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from threatlockdown.lab import HostSpec, Lab, LabError
from threatlockdown.lab.commands import check_prerequisites

INTEGRATION_DIR = Path(__file__).resolve().parent
# Its own name (and so its own interfaces) so a developer's `tld lab up` lab can run alongside.
TEST_LAB_NAME = "tldt"


def _why_no_lab() -> str | None:
    if os.geteuid() != 0:
        return "integration tests need root (network namespaces, veth, bind mounts)"
    try:
        check_prerequisites()
    except LabError as exc:
        return str(exc)
    probe = subprocess.run(["unshare", "--net", "--mount", "--uts", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot create namespaces here: {probe.stderr.strip() or probe.returncode}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mine = [item for item in items if INTEGRATION_DIR in Path(item.path).resolve().parents]
    if not mine:
        return
    reason = _why_no_lab()
    for item in mine:
        item.add_marker(pytest.mark.root)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """web1 and web2 with sshd, attacker without; torn down at the end of the session."""
    the_lab = Lab(
        name=TEST_LAB_NAME,
        hosts=[HostSpec("web1"), HostSpec("web2"), HostSpec("attacker", sshd=False)],
        workdir=tmp_path_factory.mktemp("lab") / TEST_LAB_NAME,
    )
    the_lab.up()
    try:
        yield the_lab
    finally:
        the_lab.down()


@pytest.fixture(scope="session")
def lab_inventory(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ansible inventory of the session lab with a ``web`` group (web1, web2)."""
    return lab.write_inventory(
        tmp_path_factory.mktemp("inventory") / "hosts.yml", groups={"web": ["web1", "web2"]}
    )


@pytest.fixture(scope="session")
def ssh_login_attempt(lab: Lab) -> Callable[[str, str], subprocess.CompletedProcess[str]]:
    """``attempt(user, address)``: an ssh login from the attacker host, which has no key, so sshd refuses
    it and logs it (``Invalid user`` when the user does not exist)."""

    def attempt(user: str, address: str) -> subprocess.CompletedProcess[str]:
        return lab.exec(
            "attacker",
            [
                "ssh",
                "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null",
                "-o", "ConnectTimeout=5",
                f"{user}@{address}",
                "true",
            ],
            timeout=30,
        )  # fmt: skip

    return attempt
