"""Deploy ThreatLockDown onto a lab with playbooks/site.yml and an inventory-defined policy.

The inventory directory holds the lab's own inventory (hosts, addresses, key) plus group_vars with the
reference policy and the inventory the manager's response runner uses; every address comes from the lab.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..lab import Lab
from ..lab.inventory import inventory_data

MANAGER_GROUP = "threatlockdown_managers"
AGENT_GROUP = "threatlockdown_agents"
WEB_GROUP = "web"
# Per-lab, throwaway: the lab exists only for this run.
ENROLLMENT_PASSWORD = "reference-case-enrollment"


@dataclass(frozen=True)
class Policy:
    """The reference policy: firewall-drop on the host that saw the event, for rule 5710."""

    timeout: int
    rules_id: tuple[int, ...] = (5710,)
    command: str = "firewall-drop"
    location: str = "local"
    white_list: tuple[str, ...] = ("127.0.0.1", "::1")

    def manager_vars(self) -> dict[str, Any]:
        return {
            "threatlockdown_manager_enrollment_password": ENROLLMENT_PASSWORD,
            "threatlockdown_manager_white_list": list(self.white_list),
            "threatlockdown_manager_active_responses": [
                {
                    "command": self.command,
                    "location": self.location,
                    "rules_id": list(self.rules_id),
                    "timeout": self.timeout,
                }
            ],
        }


def runner_inventory(lab: Lab, hosts: Sequence[str]) -> dict[str, Any]:
    """The inventory the manager's response runner reaches ``hosts`` with (from the manager's namespace
    over the lab bridge, with the lab key), on the nftables backend."""
    lab_hosts = inventory_data(lab.layout)["all"]["hosts"]
    entries: dict[str, Any] = {}
    for name in hosts:
        entry = {k: v for k, v in lab_hosts[name].items() if k.startswith("ansible_")}
        entry["tld_firewall_backend"] = "nftables"
        entries[name] = entry
    return {"all": {"hosts": entries}}


def write_inventory(lab: Lab, directory: Path, agents: Sequence[str], policy: Policy) -> Path:
    """lab.yml (hosts and groups) and group_vars for site.yml; returns the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    lab.write_inventory(directory / "lab.yml", groups={MANAGER_GROUP: ["manager"], WEB_GROUP: list(agents)})
    groups: dict[str, Any] = {
        "all": {"children": {MANAGER_GROUP: {}, AGENT_GROUP: {"children": {WEB_GROUP: {}}}}}
    }
    (directory / "groups.yml").write_text(yaml.safe_dump(groups, sort_keys=False))
    group_vars = directory / "group_vars"
    group_vars.mkdir(exist_ok=True)
    manager_vars = {
        **policy.manager_vars(),
        "threatlockdown_manager_inventory": runner_inventory(lab, agents),
    }
    (group_vars / f"{MANAGER_GROUP}.yml").write_text(yaml.safe_dump(manager_vars, sort_keys=False))
    return directory


@dataclass(frozen=True)
class PlaybookRun:
    returncode: int
    seconds: float
    log: Path
    recap: list[str]


def run_site(repo: Path, inventory: Path, log: Path, env: Mapping[str, str] | None = None) -> PlaybookRun:
    """``ansible-playbook -i INVENTORY playbooks/site.yml`` from the repository (its ansible.cfg), output
    to ``log``; the PLAY RECAP lines are returned for the timeline."""
    playbook_bin = Path(os.environ.get("VIRTUAL_ENV", repo / ".venv")) / "bin" / "ansible-playbook"
    argv = [str(playbook_bin), "-i", str(inventory), str(repo / "playbooks" / "site.yml")]
    run_env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(repo / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        # Short-lived SSH masters: the lab's hosts are gone a few minutes later.
        "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=30s",
        **(env or {}),
    }
    start = time.monotonic()
    with log.open("w") as out:
        done = subprocess.run(argv, cwd=repo, env=run_env, stdout=out, stderr=subprocess.STDOUT, check=False)
    seconds = time.monotonic() - start
    lines = log.read_text(errors="replace").splitlines()
    recap: list[str] = []
    if "PLAY RECAP" in "\n".join(lines):
        after = lines[next(i for i, line in enumerate(lines) if line.startswith("PLAY RECAP")) + 1 :]
        recap = [" ".join(line.split()) for line in after if ":" in line and "ok=" in line]
    return PlaybookRun(done.returncode, seconds, log, recap)
