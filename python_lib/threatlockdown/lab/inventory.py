"""Ansible inventory (YAML) for the hosts of a lab that run sshd."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from .errors import LabError
from .spec import LabLayout
from .sshd import SSH_CLIENT_OPTIONS


def inventory_data(layout: LabLayout, groups: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    managed = [h for h in layout.hosts if h.sshd]
    names = {h.name for h in managed}
    hosts: dict[str, Any] = {
        h.name: {
            "ansible_host": h.ipv4,
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(layout.key_file),
            "ansible_ssh_common_args": shlex.join(SSH_CLIENT_OPTIONS),
            "ansible_python_interpreter": "/usr/bin/python3",
            "lab_ipv6": h.ipv6,
        }
        for h in managed
    }
    children: dict[str, Any] = {}
    for group, members in (groups or {}).items():
        if group in ("all", "ungrouped") or group in names:
            raise LabError(f"inventory group {group!r} clashes with a built-in group or a host name")
        unknown = [m for m in members if m not in names]
        if unknown:
            raise LabError(
                f"inventory group {group!r}: {', '.join(unknown)} not a lab host with sshd "
                f"(hosts with sshd: {', '.join(sorted(names)) or 'none'})"
            )
        children[group] = {"hosts": {m: None for m in members}}
    data: dict[str, Any] = {"all": {"hosts": hosts, "vars": {"lab_name": layout.name}}}
    if children:
        data["all"]["children"] = children
    return data


def write_inventory(layout: LabLayout, path: Path, groups: Mapping[str, Sequence[str]] | None = None) -> Path:
    text = yaml.safe_dump(inventory_data(layout, groups), sort_keys=False, default_flow_style=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# Lab {layout.name}: written by threatlockdown.lab\n{text}")
    return path
