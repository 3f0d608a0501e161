"""``tld lab up|down|status``: the namespace test lab from the command line (see docs/lab.md)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..lab import HostSpec, Lab, LabError, LabSpec, destroy_lab, lab_status
from ..lab.commands import check_prerequisites

DEFAULT_HOSTS = ("manager", "web1", "web2", "attacker:nossh")
# Exit status of `status`: 0 up and healthy, 1 degraded or half-built, 3 no such lab.
STATUS_EXIT = {"up": 0, "degraded": 1, "building": 1, "absent": 3}


def register(sub: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--name", default="tld", help="lab name, prefix of its interfaces (default: tld)")
    common.add_argument(
        "--workdir", type=Path, default=None, help="lab directory (default: /var/lib/threatlockdown/lab/NAME)"
    )
    p = sub.add_parser("lab", help="build, inspect and tear down the namespace test lab")
    actions = p.add_subparsers(dest="lab_action", metavar="ACTION")
    actions.required = True

    up = actions.add_parser(
        "up", parents=[common], help="build the lab (removing leftovers of the same name)"
    )
    up.add_argument(
        "--host",
        action="append",
        dest="hosts",
        metavar="NAME[:nossh]",
        help=f"a host, repeatable; ':nossh' for a host without sshd (default: {' '.join(DEFAULT_HOSTS)})",
    )
    up.add_argument(
        "--ipv4-subnet",
        help="IPv4 documentation subnet (default: first free /26 of 192.0.2.0/24, 198.51.100.0/24, ...)",
    )
    up.add_argument("--ipv6-subnet", help="IPv6 subnet inside 2001:db8::/32 (default: paired with IPv4)")
    up.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each sshd (default: 10)")
    up.add_argument("--inventory", type=Path, help="also write an Ansible YAML inventory to this path")
    up.add_argument(
        "--group",
        action="append",
        default=[],
        metavar="GROUP=HOST,HOST",
        help="inventory group; repeat for more",
    )
    up.set_defaults(func=_guarded(_up))

    down = actions.add_parser("down", parents=[common], help="tear the lab down (also after a crashed run)")
    down.set_defaults(func=_guarded(_down))

    status = actions.add_parser("status", parents=[common], help="show the lab and whether its daemons run")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=_guarded(_status))


def _parse_hosts(values: Sequence[str]) -> list[HostSpec]:
    hosts: list[HostSpec] = []
    for value in values:
        name, _, flag = value.partition(":")
        if flag not in ("", "nossh"):
            raise LabError(f"--host {value}: unknown flag {flag!r} (only ':nossh')")
        hosts.append(HostSpec(name, sshd=flag != "nossh"))
    return hosts


def _parse_groups(values: Sequence[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for value in values:
        group, sep, members = value.partition("=")
        if not sep or not group or not members:
            raise LabError(f"--group {value}: expected GROUP=HOST,HOST")
        groups.setdefault(group, []).extend(m for m in members.split(",") if m)
    return groups


def _up(args: argparse.Namespace) -> int:
    spec = LabSpec(
        name=args.name,
        hosts=_parse_hosts(args.hosts or DEFAULT_HOSTS),
        workdir=args.workdir,
        ipv4_subnet=args.ipv4_subnet,
        ipv6_subnet=args.ipv6_subnet,
        sshd_timeout=args.timeout,
    )
    groups = _parse_groups(args.group)
    lab = Lab(spec).up()
    print(f"lab {lab.name} is up in {lab.workdir}")
    print(f"  controller (bridge {lab.layout.bridge}): {lab.controller_ipv4} {lab.controller_ipv6}")
    for h in lab.layout.hosts:
        print(f"  {h.name:<12} {h.ipv4:<16} {h.ipv6:<24} {'sshd' if h.sshd else 'no sshd'}")
    print(f"  ssh key: {lab.key_file}")
    if args.inventory is not None:
        print(f"  inventory: {lab.write_inventory(args.inventory, groups)}")
    print(
        f"tear down with: tld lab down --name {lab.name}"
        + (f" --workdir {args.workdir}" if args.workdir else "")
    )
    return 0


def _down(args: argparse.Namespace) -> int:
    report = destroy_lab(args.name, args.workdir)
    if not report.found_anything:
        print(f"lab {args.name}: nothing to tear down")
        return 0
    print(f"lab {args.name} torn down:")
    if report.stopped_pids:
        print(f"  stopped processes: {' '.join(map(str, report.stopped_pids))}")
    if report.unmounted:
        print(f"  unmounted: {' '.join(map(str, report.unmounted))}")
    if report.netns:
        print(f"  deleted namespaces: {' '.join(report.netns)}")
    if report.links:
        print(f"  deleted interfaces: {' '.join(report.links)}")
    if report.removed_workdir is not None:
        print(f"  removed {report.removed_workdir}")
    return 0


def _status(args: argparse.Namespace) -> int:
    tools = check_prerequisites()
    workdir = args.workdir if args.workdir is not None else LabSpec(name=args.name).effective_workdir
    st = lab_status(tools, args.name, workdir)
    if args.json:
        data = asdict(st)
        data["workdir"] = str(st.workdir)
        print(json.dumps(data, indent=2))
    else:
        print(f"lab {st.name}: {st.state} ({st.workdir})")
        for h in st.hosts:
            sshd = "-" if h.sshd is None else ("running" if h.sshd else "NOT RUNNING")
            rsyslogd = "running" if h.rsyslogd else "NOT RUNNING"
            netns = "present" if h.netns else "MISSING"
            print(f"  {h.name:<12} {h.ipv4:<16} netns {netns:<8} rsyslogd {rsyslogd:<12} sshd {sshd}")
    return STATUS_EXIT[st.state]


def _guarded(action: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Report lab errors as one clear line and exit status 1 instead of a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return action(args)
        except LabError as exc:
            print(f"tld lab: error: {exc}", file=sys.stderr)
            return 1

    return run


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry (``python -m threatlockdown.cli.lab_cmd up``), same as ``tld lab``."""
    parser = argparse.ArgumentParser(prog="tld")
    sub = parser.add_subparsers(dest="command")
    register(sub)
    args = parser.parse_args(["lab", *(argv if argv is not None else sys.argv[1:])])
    rc: int = args.func(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
