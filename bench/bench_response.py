"""Benchmark of the active-response engine: decisions per second and memory with many active responses.

    .venv/bin/python bench/bench_response.py                 # 100k alerts from 10k addresses, then 100k held
    .venv/bin/python bench/bench_response.py --alerts 200000 --addresses 20000 --hold 150000 --json

Phase 1 (decisions): ``--alerts`` alerts.json-shaped alerts (rule 5712 with its groups and compliance
arrays, about 1 KB each) from ``--addresses`` source addresses, drawn at random (seeded), go through
``ResponseEngine.handle_alert`` one after the other: policy, validation, whitelist, state, audit, and the
batched dispatch to an in-process executor that answers "ok" without keeping anything. The first alert
of an address adds a response, the others refresh it (Wazuh's abort). The clock stops once every add has
been executed and the state is on disk.

Phase 2 (memory): alerts from ``--hold`` new addresses, each adding one more response, until the engine
holds that many active responses (plus phase 1's); the process's peak RSS is then read.

Also measured: the time a new engine takes to load and reconcile that state (a restart).
Goals: at least 20,000 decisions/s, and under 200 MB RSS holding 100,000 active responses.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from threatlockdown.response.engine import EnginePaths, ResponseEngine
from threatlockdown.response.executor import Batch, ItemResult
from threatlockdown.response.selfprotect import SelfProtection
from threatlockdown.response.settings import ResponseSettings
from threatlockdown.response.testkit import config_with, inventory_of

GOAL_RATE = 20_000
GOAL_RSS_MB = 200
BODY = """<active-response><command>firewall-drop</command><location>local</location>
<rules_group>authentication_failures,|pci_dss_11.4,</rules_group><timeout>3600</timeout>
<repeated_offenders>30,60,120</repeated_offenders></active-response>"""


class CountingExecutor:
    """In-process executor that answers "ok" and keeps only counts (InProcessExecutor keeps every batch)."""

    def __init__(self) -> None:
        self.items = {"add": 0, "delete": 0}
        self.batches = 0

    async def execute(self, batch: Batch) -> list[ItemResult]:
        self.batches += 1
        self.items[batch.action] += len(batch.items)
        return [ItemResult(i.key, i.host, "ok", changed=True) for i in batch.items]

    async def close(self) -> None:
        return None


def make_alert(n: int, ip: str) -> dict[str, Any]:
    """A 5712 alert shaped like Wazuh's alerts.json (about 1 KB)."""
    return {
        "timestamp": "2026-11-26T05:33:21.000+0000",
        "rule": {
            "level": 10,
            "description": "sshd: brute force trying to get access to the system. Non existent user.",
            "id": "5712",
            "mitre": {"id": ["T1110"], "tactic": ["Credential Access"], "technique": ["Brute Force"]},
            "frequency": 8,
            "firedtimes": n,
            "mail": False,
            "groups": ["syslog", "sshd", "authentication_failures"],
            "gdpr": ["IV_35.7.d", "IV_32.2"],
            "hipaa": ["164.312.b"],
            "nist_800_53": ["SI.4", "AU.14", "AC.7"],
            "pci_dss": ["11.4", "10.2.4", "10.2.5"],
            "tsc": ["CC6.1", "CC6.8", "CC7.2", "CC7.3"],
        },
        "agent": {"id": "001", "name": "web1", "ip": "192.0.2.11"},
        "manager": {"name": "manager"},
        "id": f"1795672800.{n}",
        "previous_output": f"Nov 26 05:33:20 web1 sshd[4242]: Invalid user admin from {ip} port 52113",
        "full_log": f"Nov 26 05:33:21 web1 sshd[4243]: Invalid user admin from {ip} port 52114",
        "predecoder": {"program_name": "sshd", "timestamp": "Nov 26 05:33:21", "hostname": "web1"},
        "decoder": {"parent": "sshd", "name": "sshd"},
        "data": {"srcip": ip, "srcport": "52114", "srcuser": "admin"},
        "location": "/var/log/auth.log",
    }


def address(n: int) -> str:
    return f"{100 + n // 65536 % 100}.{n // 256 % 256}.{n % 256}.{7 + n // 6_553_600}"


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def engine_for(work: Path, executor: CountingExecutor) -> ResponseEngine:
    return ResponseEngine(
        config=config_with(BODY, white_list=("127.0.0.1", "10.0.0.0/8", "^localhost.localdomain$")),
        settings=ResponseSettings(),
        inventory=inventory_of({"web": ["web1", "web2"]}),
        executor=executor,
        paths=EnginePaths(work / "queue" / "state.db", work / "logs"),
        protection=SelfProtection(enabled=True),
    )


async def settle(engine: ResponseEngine, executor: CountingExecutor, adds: int) -> None:
    """Until every add has been executed and recorded, and the state is on disk."""
    while not await engine.dispatcher.wait_idle(60.0):
        pass
    adding = sum(1 for e in engine.state.active.values() if e.phase == "adding")
    if executor.items["add"] < adds or adding:
        done = executor.items["add"]
        raise RuntimeError(f"idle with {done} of {adds} adds executed and {adding} not recorded")
    engine.state.flush()
    engine.audit.flush()


async def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    # Alerts are built one by one inside the timed loop (100k prebuilt dicts would weigh ~300 MB and
    # hide the engine's own memory); the cost of building them is measured apart and reported.
    picks = [rng.randrange(args.addresses) for _ in range(args.alerts)]
    distinct = len(set(picks))
    b0 = time.process_time()
    for n in range(min(args.alerts, 20_000)):
        make_alert(n, address(picks[n]))
    build_cpu = (time.process_time() - b0) * args.alerts / min(args.alerts, 20_000)
    executor = CountingExecutor()
    engine = engine_for(work, executor)
    await engine.start()
    base_rss = rss_mb()

    t0, c0 = time.perf_counter(), time.process_time()
    outcomes: dict[str, int] = {}
    for n, pick in enumerate(picks):
        for d in await engine.handle_alert(make_alert(n, address(pick))):
            outcomes[d.outcome] = outcomes.get(d.outcome, 0) + 1
    handled, handled_cpu = time.perf_counter() - t0, time.process_time() - c0
    await settle(engine, executor, distinct)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    decisions = sum(outcomes.values())

    h0 = time.perf_counter()
    for n in range(args.hold):
        await engine.handle_alert(make_alert(args.alerts + n, address(args.addresses + n)))
    await settle(engine, executor, distinct + args.hold)
    hold_wall = time.perf_counter() - h0
    held = len(engine.state.active)
    peak = rss_mb()
    await engine.stop()

    r0 = time.perf_counter()
    again = engine_for(work, CountingExecutor())
    await again.start()
    reload_s = time.perf_counter() - r0
    reloaded = len(again.state.active)
    await again.stop()
    return {
        "alerts": args.alerts,
        "addresses": distinct,
        "decisions": decisions,
        "outcomes": outcomes,
        "wall_s": round(wall, 3),
        "handle_s": round(handled, 3),
        "handle_cpu_s": round(handled_cpu, 3),
        "cpu_s": round(cpu, 3),
        "decisions_per_s": round(decisions / wall),
        "decisions_per_cpu_s": round(decisions / cpu) if cpu else None,
        "alert_building_cpu_s": round(build_cpu, 3),
        "batches": executor.batches,
        "executed": executor.items,
        "hold_alerts": args.hold,
        "hold_wall_s": round(hold_wall, 3),
        "active_held": held,
        "rss_before_mb": round(base_rss, 1),
        "peak_rss_mb": round(peak, 1),
        "restart_load_s": round(reload_s, 3),
        "restart_active": reloaded,
        "state_file_mb": round((work / "queue" / "state.db").stat().st_size / 2**20, 1),
        "goal_rate_met": decisions / wall >= GOAL_RATE,
        "goal_rss_met": peak < GOAL_RSS_MB and held >= 100_000,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--alerts", type=int, default=100_000)
    p.add_argument("--addresses", type=int, default=10_000)
    p.add_argument("--hold", type=int, default=100_000, help="new addresses added in phase 2")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--workdir", type=Path, default=None, help="where the state and logs go (default: a temp dir)"
    )
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="tld-bench-ar-") as tmp:
        work = args.workdir or Path(tmp)
        result = asyncio.run(bench(args, work))
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(
        f"phase 1: {result['alerts']:,} alerts from {result['addresses']:,} addresses -> "
        f"{result['decisions']:,} decisions"
    )
    print(f"  {result['outcomes']}")
    print(
        f"  wall {result['wall_s']} s, cpu {result['cpu_s']} s (of which the handle_alert calls: "
        f"{result['handle_s']} s wall, {result['handle_cpu_s']} s cpu): "
        f"{result['decisions_per_s']:,} decisions/s ({result['decisions_per_cpu_s']:,} per cpu second)"
    )
    print(
        f"  of the cpu time, about {result['alert_building_cpu_s']} s built the alert dicts (not engine work)"
    )
    print(f"  executed {result['executed']} in {result['batches']} batches")
    print(
        f"phase 2: {result['hold_alerts']:,} more addresses in {result['hold_wall_s']} s; holding "
        f"{result['active_held']:,} active responses; peak RSS {result['peak_rss_mb']} MB "
        f"(after start {result['rss_before_mb']} MB); state file {result['state_file_mb']} MB"
    )
    print(
        f"restart: {result['restart_active']:,} active responses loaded and rescheduled in "
        f"{result['restart_load_s']} s"
    )
    print(f"goal: >= {GOAL_RATE:,} decisions/s: {'MET' if result['goal_rate_met'] else 'NOT MET'}")
    print(
        f"goal: < {GOAL_RSS_MB} MB RSS holding >= 100,000: {'MET' if result['goal_rss_met'] else 'NOT MET'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
