"""Reference-case benchmark: from the sshd line written on web1 to the DROP in place on web1.

Builds a lab (manager, web1, attackers atk0..atkN-1 without sshd), deploys with playbooks/site.yml
(firewall-drop, location local, rule 5710), then, one attack at a time, each attacker tries SSH as a
non-existent user against web1. For each attack:
  line   the time rsyslogd wrote the sshd "Invalid user" line to web1's auth.log (its RFC 3339 stamp);
  alert  the manager's alert timestamp for it (alerts.json);
  drop   the first time the attacker's address is seen in web1's nftables drop set (polled every ~20 ms,
         so figures are late by up to one poll plus an `nft list` run, about 20-40 ms).
Prints each attack and the p50/p90/max of line->drop; --json for one JSON document. Needs root.

  .venv/bin/python bench/bench_reference.py            # 10 attacks
  .venv/bin/python bench/bench_reference.py --attacks 20 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from threatlockdown.demo.deploy import Policy, run_site, write_inventory
from threatlockdown.demo.probes import drop_entry, log_line, ssh_attempt, wait_for
from threatlockdown.lab import HostSpec, Lab

REPO = Path(__file__).resolve().parents[1]
HOME = "/var/ossec"


@dataclass(frozen=True)
class Attack:
    attacker: str
    address: str
    line_to_alert: float
    line_to_drop: float


def _line_time(line: str) -> float:
    # Debian 12's rsyslog default: "2026-11-26T10:00:00.123456+00:00 web1 sshd[1]: ..."
    return datetime.fromisoformat(line.split(" ", 1)[0]).timestamp()


def _alert_time(lab: Lab, needle: str) -> float | None:
    path = lab.host_path("manager", f"{HOME}/logs/alerts/alerts.json")
    if not path.exists():
        return None
    for raw in path.read_text(errors="replace").splitlines():
        if needle in raw:
            alert = json.loads(raw)
            if alert["rule"]["id"] == "5710":
                return datetime.strptime(alert["timestamp"], "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
    return None


def _agent_connected(lab: Lab) -> bool:
    done = lab.exec("web1", [f"{HOME}/venv/bin/tld", "agent", "status", "--json", "--home", HOME])
    try:
        return bool(json.loads(done.stdout)["forwarder"]["connected"])
    except (ValueError, KeyError, TypeError):
        return False


def one_attack(lab: Lab, attacker: str, index: int) -> Attack:
    address = lab.ipv4(attacker)
    user = f"bench{index}x{int(time.time()) % 100000}"
    needle = f"Invalid user {user} from {address}"
    ssh_attempt(lab, attacker, "web1", user)
    wait_for(
        f"sshd line for {attacker}",
        lambda: log_line(lab, "web1", "/var/log/auth.log", needle) is not None,
        10,
        0.02,
    )
    wait_for(f"DROP of {attacker} on web1", lambda: drop_entry(lab, "web1", address) is not None, 60, 0.02)
    dropped = time.time()
    line = log_line(lab, "web1", "/var/log/auth.log", needle) or ""
    written = _line_time(line)
    alerted = _alert_time(lab, needle)
    return Attack(attacker, address, (alerted - written) if alerted else float("nan"), dropped - written)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--attacks", type=int, default=10, help="attacks, each from its own address (default 10)"
    )
    parser.add_argument("--name", default="tldbn", help="lab name (default tldbn)")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = parser.parse_args()
    attackers = [f"atk{i}" for i in range(args.attacks)]
    scratch = Path(tempfile.mkdtemp(prefix="tld-bench-reference-"))
    lab = Lab(
        name=args.name,
        hosts=[HostSpec("manager"), HostSpec("web1"), *(HostSpec(a, sshd=False) for a in attackers)],
        workdir=scratch / "lab",
    )
    log = sys.stderr
    results: list[Attack] = []
    try:
        lab.up()
        inventory = write_inventory(lab, scratch / "inventory", ["web1"], Policy(timeout=600))
        deployed = run_site(REPO, inventory, scratch / "site.log")
        if deployed.returncode != 0:
            print(f"site.yml failed (exit {deployed.returncode}); see {deployed.log}", file=log)
            return 1
        print(f"deployed in {deployed.seconds:.0f} s", file=log)
        wait_for("web1's agent connected", lambda: _agent_connected(lab), 30, 0.5)
        for i, attacker in enumerate(attackers):
            attack = one_attack(lab, attacker, i)
            results.append(attack)
            print(
                f"attack {i + 1:2}: {attack.address:<15} line->alert {attack.line_to_alert * 1000:7.0f} ms"
                f"   line->DROP {attack.line_to_drop * 1000:7.0f} ms",
                file=log,
            )
    finally:
        lab.down()
    drops = sorted(a.line_to_drop for a in results)
    summary = {
        "attacks": len(drops),
        "p50_ms": round(statistics.median(drops) * 1000),
        "p90_ms": round(drops[max(0, int(len(drops) * 0.9 + 0.5) - 1)] * 1000),
        "min_ms": round(drops[0] * 1000),
        "max_ms": round(drops[-1] * 1000),
    }
    if args.json:
        print(json.dumps({"summary": summary, "attacks": [asdict(a) for a in results]}, indent=1))
    else:
        print(
            f"reference case, sshd line on web1 -> DROP in place on web1, {summary['attacks']} attacks: "
            f"p50 {summary['p50_ms']} ms, p90 {summary['p90_ms']} ms, "
            f"min {summary['min_ms']} ms, max {summary['max_ms']} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
