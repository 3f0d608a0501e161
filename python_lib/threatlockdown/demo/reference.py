"""The main job: build a lab, deploy with site.yml, run the reference attack and print its timeline.

The reference case: an attacker tries SSH as a non-existent user against web1; web1's agent forwards the
sshd line; the manager raises rule 5710 and runs firewall-drop on web1 through ansible-runner; the
attacker's TCP connects to web1:22 then fail until the timeout, when the manager removes the block.
"""

from __future__ import annotations

import json
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from ..lab import HostSpec, Lab, LabError
from .deploy import Policy, run_site, write_inventory
from .probes import WaitTimeout, drop_entry, log_line, ssh_attempt, tcp_connects, wait_for
from .timeline import Timeline

HOME = "/var/ossec"
TLD = f"{HOME}/venv/bin/tld"
REFERENCE_TIMEOUT = 100  # what the reference policy uses; the demo uses a shorter one to show the revert
AGENTS = ("web1", "web2")


@dataclass(frozen=True)
class DemoOptions:
    repo: Path
    lab_name: str = "tldjob"
    timeout: int = 30
    keep: bool = False  # leave the lab up afterwards (for looking around); the default cleans up


class Interrupted(Exception):
    """SIGTERM or SIGHUP arrived; unwinding runs the cleanup."""


@contextmanager
def _signals_unwind() -> Iterator[None]:
    # Ctrl-C already raises KeyboardInterrupt; make TERM and HUP unwind the same way so the lab goes down.
    def handler(signum: int, _frame: FrameType | None) -> None:
        raise Interrupted(signal.Signals(signum).name)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _manager_json_lines(lab: Lab, argv: list[str]) -> list[dict[str, Any]]:
    done = lab.exec("manager", argv, timeout=30)
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip().startswith("{")]


def _alert(lab: Lab, rule: str, needle: str) -> dict[str, Any] | None:
    path = lab.host_path("manager", f"{HOME}/logs/alerts/alerts.json")
    if not path.exists():
        return None
    for line in path.read_text(errors="replace").splitlines():
        if needle in line:
            alert: dict[str, Any] = json.loads(line)
            if alert.get("rule", {}).get("id") == rule:
                return alert
    return None


def _history(lab: Lab, address: str) -> list[dict[str, Any]]:
    rows = _manager_json_lines(lab, [TLD, "ar", "history", "--json", "--home", HOME])
    return [r for r in rows if r.get("subject") == address or address in json.dumps(r.get("key"))]


# Fields of a `tld ar history --json` row; every other field is the event's detail (at the top level).
_ROW_FIELDS = frozenset({"time", "event", "key", "command", "target", "subject"})
# The history events of a block being removed (by the timeout, or given up on as never applied).
REVERT_EVENTS = frozenset({"reverting", "reverted", "expired"})


def describe_history_row(row: dict[str, Any]) -> str:
    """One history row as a timeline detail: the event, the host the response ran on (the row's
    ``target``), the command, then the event's details."""
    detail = " ".join(
        f"{k}={v}" for k, v in row.items() if k not in _ROW_FIELDS and v not in (None, "", [], {})
    )
    return f"{row.get('event')}: host={row.get('target')} command={row.get('command')} {detail}".rstrip()


def _agent_connected(lab: Lab, host: str) -> bool:
    done = lab.exec(host, [TLD, "agent", "status", "--json", "--home", HOME], timeout=15)
    try:
        return bool(json.loads(done.stdout)["forwarder"]["connected"])
    except (ValueError, KeyError, TypeError):
        return False


def _save_logs(lab: Lab, scratch: Path) -> None:
    """Copy the manager's logs out of the lab before it goes (its files live on the lab's tmpfs)."""
    try:
        logs = lab.host_path("manager", f"{HOME}/logs")
        if logs.is_dir():
            shutil.copytree(logs, scratch / "manager-logs", dirs_exist_ok=True)
    except (LabError, OSError):
        pass  # the lab never came up: nothing to keep


def run(options: DemoOptions) -> int:
    """The whole main job; 0 when every step held."""
    timeline = Timeline()
    scratch = Path(tempfile.mkdtemp(prefix="tld-main-job-"))
    lab = Lab(
        name=options.lab_name,
        hosts=[HostSpec("manager"), *(HostSpec(h) for h in AGENTS), HostSpec("attacker", sshd=False)],
        workdir=scratch / "lab",
    )
    try:
        with _signals_unwind():
            _reference_case(lab, options, timeline, scratch)
    except (LabError, WaitTimeout, Interrupted, KeyboardInterrupt) as exc:
        # Long tool output (a failed mount script, a playbook log tail) stays readable as details.
        first, *rest = (str(exc) or type(exc).__name__).splitlines()
        timeline.fail(first, rest[-30:])
    finally:
        _save_logs(lab, scratch)
        if options.keep:
            timeline.note(
                f"lab {options.lab_name} left up (--keep); `tld lab down --name {options.lab_name}`"
            )
        else:
            report = lab.down()
            timeline.step(
                f"lab {options.lab_name} torn down: {len(report.stopped_pids)} processes stopped, "
                f"{len(report.netns)} namespaces and {len(report.links)} interfaces removed"
            )
    if timeline.failures:
        timeline.note(f"{timeline.failures} step(s) failed; logs in {scratch}")
        return 1
    timeline.note(f"reference case: OK (logs in {scratch})")
    return 0


def _reference_case(lab: Lab, options: DemoOptions, timeline: Timeline, scratch: Path) -> None:
    lab.up()
    timeline.step(
        f"lab {options.lab_name} up",
        [f"{h:<9}{lab.ipv4(h)}" for h in lab.hosts],
    )

    policy = Policy(timeout=options.timeout)
    inventory = write_inventory(lab, scratch / "inventory", AGENTS, policy)
    timeline.step(
        "deploying: ansible-playbook -i INVENTORY playbooks/site.yml",
        [
            f"inventory {inventory} (lab hosts + group_vars with the policy)",
            f"policy: {policy.command}, location {policy.location}, rules_id "
            f"{','.join(map(str, policy.rules_id))}, timeout {policy.timeout} s "
            f"(the reference policy uses {REFERENCE_TIMEOUT} s; shorter here to show the revert)",
        ],
    )
    deployed = run_site(options.repo, inventory, scratch / "site.log")
    if deployed.returncode != 0:
        tail = deployed.log.read_text(errors="replace").splitlines()[-25:]
        raise LabError(f"site.yml failed (exit {deployed.returncode}); {deployed.log}:\n" + "\n".join(tail))
    timeline.step(f"deployed in {deployed.seconds:.0f} s", deployed.recap)
    wait_for("web1's agent connected to the manager", lambda: _agent_connected(lab, "web1"), 30, 0.5)

    attacker = lab.ipv4("attacker")
    if not tcp_connects(lab, "attacker", "web1"):
        raise LabError("before the attack the attacker cannot reach web1:22; the lab is not healthy")
    user = f"nosuch{int(time.time()) % 100000}"
    timeline.step(f"attack: attacker ({attacker}) runs ssh {user}@web1")
    ssh_attempt(lab, "attacker", "web1", user)

    needle = f"Invalid user {user} from {attacker}"
    wait_for(
        "sshd line in web1's auth.log",
        lambda: log_line(lab, "web1", "/var/log/auth.log", needle) is not None,
        10,
    )
    timeline.step("web1 /var/log/auth.log", [log_line(lab, "web1", "/var/log/auth.log", needle) or ""])

    wait_for(
        "rule 5710 alert in the manager's alerts.json", lambda: _alert(lab, "5710", needle) is not None, 30
    )
    alert = _alert(lab, "5710", needle) or {}
    rule = alert.get("rule", {})
    timeline.step(
        f"manager alerts.json: rule {rule.get('id')} (level {rule.get('level')}) {rule.get('description')}",
        [f"agent {alert.get('agent', {}).get('id')} {alert.get('agent', {}).get('name')}, "
         f"srcip {alert.get('data', {}).get('srcip')}, location {alert.get('location')}"],
    )  # fmt: skip

    wait_for("firewall-drop on web1", lambda: drop_entry(lab, "web1", attacker) is not None, 60, 0.05)
    blocked_at = time.monotonic()
    entry = drop_entry(lab, "web1", attacker)
    rows = _history(lab, attacker)
    nft_set = "inet/threatlockdown/blocked4"
    timeline.step(
        "active response on web1 through ansible-runner",
        [describe_history_row(r) for r in rows] + [f"web1 nft set {nft_set}: {entry.text if entry else '?'}"],
    )
    ar_log = log_line(lab, "manager", f"{HOME}/logs/active-responses.log", attacker)
    if ar_log:
        timeline.note(f"manager active-responses.log: {ar_log}")

    if tcp_connects(lab, "attacker", "web1"):
        timeline.fail("block: the attacker still completes a TCP connect to web1:22")
    else:
        timeline.step("block verified: the attacker's TCP connect to web1:22 times out")
    if tcp_connects(lab, "attacker", "web2"):
        timeline.note("web2 (location local: not blocked there) still answers the attacker")

    wait_for("revert on web1", lambda: drop_entry(lab, "web1", attacker) is None, options.timeout + 60, 0.2)
    reverts = [r for r in _history(lab, attacker) if r.get("event") in REVERT_EVENTS]
    timeline.step(
        f"revert after the {options.timeout} s timeout: block removed "
        f"{time.monotonic() - blocked_at:.1f} s after it was seen",
        [describe_history_row(r) for r in reverts[-2:]],
    )
    if tcp_connects(lab, "attacker", "web1"):
        timeline.step("connection restored: the attacker reaches web1:22 again")
    else:
        timeline.fail("after the revert the attacker still cannot reach web1:22")
