"""``tld demo``: the reference case end to end on a namespace lab (the main job; needs root)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="build a lab, deploy with playbooks/site.yml, run the reference attack and print its timeline",
    )
    p.add_argument(
        "--repo", type=Path, default=Path.cwd(), help="repository checkout (default: the current directory)"
    )
    p.add_argument("--name", default="tldjob", help="lab name (default: tldjob)")
    p.add_argument(
        "--timeout",
        type=int,
        default=30,
        help="firewall-drop timeout in seconds (default: 30; reference: 100)",
    )
    p.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..demo.reference import DemoOptions, run

    repo = args.repo.resolve()
    if not (repo / "playbooks" / "site.yml").is_file():
        print(f"error: {repo} is not a ThreatLockDown checkout (no playbooks/site.yml); use --repo")
        return 2
    return run(DemoOptions(repo=repo, lab_name=args.name, timeout=args.timeout, keep=args.keep))
