"""The lab's state file (JSON in the workdir) so that `down`/`status` work from another process."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import LabError
from .spec import HostLayout, LabLayout

STATE_VERSION = 1
# Marks a directory as a lab workdir; teardown refuses to delete a directory without it.
MARKER_FILE = ".threatlockdown-lab"


@dataclass
class LabState:
    """Layout plus what changes while the lab runs: daemon pids per host and whether `up` finished."""

    layout: LabLayout
    status: str = "building"  # "building" until up() completes, then "up"
    pids: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        lay = self.layout
        return {
            "version": STATE_VERSION,
            "status": self.status,
            "name": lay.name,
            "workdir": str(lay.workdir),
            "bridge": lay.bridge,
            "ipv4_subnet": lay.ipv4_subnet,
            "ipv6_subnet": lay.ipv6_subnet,
            "controller_ipv4": lay.controller_ipv4,
            "controller_ipv6": lay.controller_ipv6,
            "hosts": [
                {
                    "name": h.name,
                    "netns": h.netns,
                    "veth": h.veth,
                    "ipv4": h.ipv4,
                    "ipv6": h.ipv6,
                    "sshd": h.sshd,
                    "root": str(h.root),
                    "mnt_ns_file": str(h.mnt_ns_file),
                    "uts_ns_file": str(h.uts_ns_file),
                    "pids": self.pids.get(h.name, {}),
                }
                for h in lay.hosts
            ],
        }

    def save(self) -> None:
        path = self.layout.state_file
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        # Atomic replace: a reader never sees half a file, even if we crash mid-write.
        os.replace(tmp, path)


def load_state(path: Path) -> LabState:
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise LabError(f"{path}: cannot read lab state: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise LabError(f"{path}:{exc.lineno}: lab state is not valid JSON: {exc.msg}") from None
    try:
        if data["version"] != STATE_VERSION:
            raise LabError(f"{path}: lab state version {data['version']} is not {STATE_VERSION}")
        hosts = tuple(
            HostLayout(
                name=h["name"],
                netns=h["netns"],
                veth=h["veth"],
                ipv4=h["ipv4"],
                ipv6=h["ipv6"],
                sshd=bool(h["sshd"]),
                root=Path(h["root"]),
                mnt_ns_file=Path(h["mnt_ns_file"]),
                uts_ns_file=Path(h["uts_ns_file"]),
            )
            for h in data["hosts"]
        )
        layout = LabLayout(
            name=data["name"],
            workdir=Path(data["workdir"]),
            bridge=data["bridge"],
            ipv4_subnet=data["ipv4_subnet"],
            ipv6_subnet=data["ipv6_subnet"],
            controller_ipv4=data["controller_ipv4"],
            controller_ipv6=data["controller_ipv6"],
            hosts=hosts,
        )
        pids = {h["name"]: {str(k): int(v) for k, v in h.get("pids", {}).items()} for h in data["hosts"]}
        return LabState(layout=layout, status=str(data["status"]), pids=pids)
    except (KeyError, TypeError, ValueError) as exc:
        raise LabError(f"{path}: lab state is missing or has a bad field: {exc}") from None
