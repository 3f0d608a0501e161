"""Benchmark of response execution: alert to block in place on lab hosts over SSH.

    .venv/bin/python bench/bench_executor.py                  # as root: latency (40 alerts each) + burst
    .venv/bin/python bench/bench_executor.py --samples 20 --no-rulebook --json

(a) Latency, p50/p90/p99: one alert at a time, the same response playbook (playbooks/responses/
firewall-drop.yml) on the same lab host, through
  - ThreatLockDown: a Batch handed to AnsibleRunnerExecutor (warm server on),
  - ThreatLockDown with the warm server off (a new ansible-playbook per run, everything else equal),
  - ansible-rulebook: an event POSTed to its webhook source, a rule whose run_playbook action runs the
    playbook with the same variables.
The contenders take turns (the order rotates every round) in one run of this script. The clock starts
just before the batch is handed over or the POST is sent, and stops when ``nft monitor`` inside the
host prints the address being added to the blocking set: the block is in place.

(b) Burst: 1,000 distinct attacker addresses for 10 hosts (100 each) submitted evenly over 1 s to the
engine's Dispatcher (its default window, batch size and concurrency) with the warm executor: how many
ansible-runner runs, and the time from the first alert until the last address is in its host's set.

Everything runs in a lab of network-namespace hosts with real sshd (threatlockdown.lab), so it needs
root. ansible-rulebook is not a project dependency: it is installed into its own virtualenv
(``--rulebook-venv``, default bench/out/rulebook-venv) the first time, with pip.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from threatlockdown.config.model import Command
from threatlockdown.lab import HostSpec, Lab
from threatlockdown.response.ansible_executor import (
    AnsibleExecutorSettings,
    AnsibleRunnerExecutor,
    alert_json,
)
from threatlockdown.response.dispatch import Dispatcher, Job
from threatlockdown.response.executor import Batch, ItemResult, ResponseItem
from threatlockdown.response.settings import ResponseSettings

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
PLAYBOOK = REPO / "playbooks" / "responses" / "firewall-drop.yml"
LAB_NAME = "tldb"
RULEBOOK_PACKAGES = ["ansible-rulebook==1.3.2", "ansible-core==2.19.14", "ansible-runner==2.4.3"]
ADDED = re.compile(r"^add element inet threatlockdown blocked[46] \{ ([0-9a-fA-F.:]+)")
BLOCK_TIMEOUT = 600  # the response's timeout (the entry's own expiry is this plus the margin)
GOAL_RATIO = 2.0
GOAL_BURST_SECONDS = 10.0
GOAL_BURST_RUNS = 5


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (with 40 samples, p99 is the largest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


# -- watching blocks appear ----------------------------------------------------------------------------


class BlockWatcher:
    """``nft monitor`` in each host; records when each address is first added to a blocking set."""

    def __init__(self, lab: Lab, hosts: Iterable[str]) -> None:
        self.added: dict[str, float] = {}
        self.cond = threading.Condition()
        self.processes = []
        for host in hosts:
            process = subprocess.Popen(
                ["ip", "netns", "exec", f"{lab.name}-{host}", "nft", "monitor"],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                bufsize=1,
            )
            self.processes.append(process)
            threading.Thread(target=self._read, args=(process,), daemon=True).start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            now = time.monotonic()
            match = ADDED.match(line)
            if match:
                with self.cond:
                    self.added.setdefault(match.group(1), now)
                    self.cond.notify_all()

    def wait_for(self, addresses: Sequence[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not all(a in self.added for a in addresses):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.cond.wait(remaining)
        return True

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait()


# -- contenders -------------------------------------------------------------------------------------------


def item(host: str, address: str) -> ResponseItem:
    alert = {
        "rule": {"id": "5710", "level": 5, "description": "sshd: Attempt to login using a non-existent user"},
        "agent": {"id": "000", "name": host},
        "data": {"srcip": address, "srcuser": "admin"},
        "full_log": f"sshd[1234]: Invalid user admin from {address} port 50000",
    }
    return ResponseItem(
        f"firewall-drop:{host}:{address}", host, srcip=address, timeout=BLOCK_TIMEOUT, alert=alert
    )


def batch(host: str, address: str, batch_id: str) -> Batch:
    return Batch(batch_id, "firewall-drop", "firewall-drop", "add", (item(host, address),))


@dataclass
class TldContender:
    name: str
    executor: AnsibleRunnerExecutor
    pending: asyncio.Task[list[ItemResult]] | None = None

    async def fire(self, host: str, address: str, batch_id: str) -> None:
        self.pending = asyncio.create_task(self.executor.execute(batch(host, address, batch_id)))
        await asyncio.sleep(0)  # let the task start before the caller begins to wait

    async def settle(self) -> str:
        assert self.pending is not None
        results = await self.pending
        return results[0].status


@dataclass
class RulebookContender:
    """ansible-rulebook with a webhook source and one rule running the response playbook."""

    venv: Path
    inventory: Path
    workdir: Path
    env: dict[str, str]
    port: int = 5599
    name: str = "ansible-rulebook"
    process: subprocess.Popen[str] | None = None
    recaps: int = 0
    expected: int = 0
    output: list[str] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def rulebook(self) -> Path:
        # The variables are those AnsibleRunnerExecutor passes; the rule builds them from the event.
        text = f"""- name: ThreatLockDown benchmark baseline
  hosts: all
  sources:
    - eda.builtin.webhook:
        host: 127.0.0.1
        port: {self.port}
      filters:
        - eda.builtin.insert_hosts_to_meta:
            host_path: payload.host
  rules:
    - name: Run the response playbook
      condition: event.payload.tld_action is defined
      action:
        run_playbook:
          name: {PLAYBOOK}
          extra_vars:
            tld_action: "{{{{ event.payload.tld_action }}}}"
            tld_command: firewall-drop
            tld_executable: firewall-drop
            tld_batch_id: "{{{{ event.payload.tld_batch_id }}}}"
            tld_extra_args: []
            tld_options: {{}}
            tld_items: "{{{{ event.payload.tld_items }}}}"
"""
        path = self.workdir / "rulebook.yml"
        path.write_text(text)
        return path

    def start(self, timeout: float = 180.0) -> None:
        env = {**os.environ, **self.env, "PATH": f"{self.venv / 'bin'}:{os.environ.get('PATH', '')}"}
        if "JAVA_HOME" not in env and Path("/usr/lib/jvm/java-17-openjdk-amd64").is_dir():
            env["JAVA_HOME"] = "/usr/lib/jvm/java-17-openjdk-amd64"
        self.process = subprocess.Popen(
            [
                str(self.venv / "bin" / "ansible-rulebook"),
                "--rulebook",
                str(self.rulebook()),
                "-i",
                str(self.inventory),
                "-v",
            ],
            env=env,
            cwd=self.workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("ansible-rulebook exited:\n" + "".join(self.output[-30:]))
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                connection.request("GET", "/")
                connection.getresponse().read()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("ansible-rulebook's webhook did not come up:\n" + "".join(self.output[-30:]))

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            del self.output[:-200]
            if "PLAY RECAP" in line:
                with self.cond:
                    self.recaps += 1
                    self.cond.notify_all()

    async def fire(self, host: str, address: str, batch_id: str) -> None:
        one = item(host, address)
        payload = {
            "host": host,
            "tld_action": "add",
            "tld_batch_id": batch_id,
            # The same variables AnsibleRunnerExecutor passes (plain strings here: ansible-rulebook has no
            # unsafe marking, so the playbook's templating of them is its own business).
            "tld_items": {
                host: [
                    {
                        "key": one.key,
                        "host": host,
                        "srcip": address,
                        "user": None,
                        "timeout": one.timeout,
                        "extra_args": [],
                        "alert_json": alert_json(one.alert),
                    }
                ]
            },
        }
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        connection.request(
            "POST", "/endpoint", body=json.dumps(payload), headers={"Content-Type": "application/json"}
        )
        connection.getresponse().read()
        self.expected += 1

    async def settle(self) -> str:
        def wait() -> bool:
            with self.cond:
                return self.cond.wait_for(lambda: self.recaps >= self.expected, timeout=60)

        if not await asyncio.to_thread(wait):
            return "no recap"
        recap = next((line for line in reversed(self.output) if "changed=" in line and "failed=" in line), "")
        return "ok" if " failed=0" in recap and "unreachable=0" in recap else f"recap: {recap.strip()}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def ensure_rulebook(venv: Path) -> Path:
    program = venv / "bin" / "ansible-rulebook"
    if program.exists():
        return program
    log(f"installing {', '.join(RULEBOOK_PACKAGES)} into {venv} (once)")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *RULEBOOK_PACKAGES], check=True)
    return program


# -- the two measurements ---------------------------------------------------------------------------------


async def measure_latency(
    contenders: Sequence[Any], watcher: BlockWatcher, host: str, samples: int, warmup: int
) -> dict[str, dict[str, Any]]:
    latencies: dict[str, list[float]] = {c.name: [] for c in contenders}
    failures: dict[str, int] = {c.name: 0 for c in contenders}
    for round_no in range(warmup + samples):
        shift = round_no % len(contenders)
        for contender in [*contenders[shift:], *contenders[:shift]]:
            number = contenders.index(contender)
            address = f"198.18.{number * 40 + round_no // 250}.{round_no % 250 + 1}"
            started = time.monotonic()
            await contender.fire(host, address, f"lat-{number}-{round_no}")
            blocked = await asyncio.to_thread(watcher.wait_for, [address], 60.0)
            status = await contender.settle()
            if round_no < warmup:
                continue
            if blocked and status == "ok":
                latencies[contender.name].append(watcher.added[address] - started)
            else:
                failures[contender.name] += 1
                log(f"{contender.name}: {address} not blocked within 60 s (status {status})")
            await asyncio.sleep(0.2)
        if round_no >= warmup:
            line = ", ".join(f"{name} {values[-1]:.3f}" for name, values in latencies.items() if values)
            log(f"round {round_no - warmup + 1}/{samples}: {line}")
    return {
        name: {
            "samples": len(values),
            "failed": failures[name],
            "p50": percentile(values, 50) if values else None,
            "p90": percentile(values, 90) if values else None,
            "p99": percentile(values, 99) if values else None,
            "min": min(values) if values else None,
            "max": max(values) if values else None,
            "all": [round(v, 4) for v in values],
        }
        for name, values in latencies.items()
    }


async def measure_burst(
    executor: AnsibleRunnerExecutor, watcher: BlockWatcher, hosts: Sequence[str], count: int, spread: float
) -> dict[str, Any]:
    engine = ResponseSettings()
    results: list[ItemResult] = []
    batch_sizes: list[int] = []

    async def on_results(batch: Batch, pairs: list[tuple[Job, ItemResult]]) -> None:
        batch_sizes.append(len(batch.items))
        results.extend(r for _, r in pairs)

    dispatcher = Dispatcher(
        executor,
        on_results=on_results,
        window=engine.batch_window,
        max_items=engine.max_batch_items,
        concurrency=engine.max_concurrency,
    )
    command = Command(
        name="firewall-drop", executable="firewall-drop", timeout_allowed=True, path="bench", line=None
    )
    addresses = [f"198.19.{k // 250}.{k % 250 + 1}" for k in range(count)]
    runs_before = executor.runs_started
    running = asyncio.create_task(dispatcher.run())
    started = time.monotonic()
    for k, address in enumerate(addresses):
        delay = started + spread * k / count - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        one = item(hosts[k % len(hosts)], address)
        await dispatcher.submit(
            Job(
                "add",
                command,
                one.key,
                one.host,
                one.srcip,
                one.user,
                one.timeout,
                one.extra_args,
                json.dumps(dict(one.alert)),
            )
        )
    submitted = time.monotonic() - started
    blocked = await asyncio.to_thread(watcher.wait_for, addresses, 120.0)
    deadline = time.monotonic() + 120.0
    while len(results) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    idle = len(results) >= count
    done = time.monotonic() - started
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    seen = [watcher.added[a] for a in addresses if a in watcher.added]
    return {
        "addresses": count,
        "hosts": len(hosts),
        "submitted_within_s": round(submitted, 3),
        "engine": {
            "window_s": engine.batch_window,
            "max_batch_items": engine.max_batch_items,
            "concurrency": engine.max_concurrency,
        },
        "ansible_runner_runs": executor.runs_started - runs_before,
        "batch_sizes": batch_sizes,
        "all_blocked": blocked,
        "blocked": len(seen),
        "time_to_all_blocked_s": round(max(seen) - started, 3) if blocked and seen else None,
        "time_to_all_results_s": round(done, 3) if idle else None,
        "merged_batches": executor._lanes.merged_batches,
        "results_ok": sum(r.status == "ok" for r in results),
    }


# -- setting up -------------------------------------------------------------------------------------------


def build_lab(workdir: Path, hosts: int) -> Lab:
    names = [f"web{i}" for i in range(1, hosts + 1)]
    lab = Lab(
        name=LAB_NAME,
        hosts=[*(HostSpec(n) for n in names), HostSpec("attacker", sshd=False)],
        workdir=workdir / "lab",
    )
    lab.up()
    for name in names:
        # The machine's /root is shared with the hosts, and a ~/.bashrc doing slow work (pyenv init on the
        # development VM: 0.4 s per SSH command, read by Debian's bash for commands sshd runs) would be
        # measured instead of the contenders. Root gets /bin/sh in each host's own /etc/passwd.
        lab.exec(name, ["usermod", "-s", "/bin/sh", "root"], check=True)
    return lab


def ssh_environment(
    control_dir: Path, *, keep_connections: bool = True, pipelining: bool = True
) -> dict[str, str]:
    """What both ThreatLockDown and ansible-rulebook get: the repository's collection, SSH connections kept
    open across runs in a persistent control directory, pipelining, no fact gathering. The two switches
    turn a lever off for the lever measurements."""
    ssh_args = "-o ControlMaster=auto -o ControlPersist=300s" if keep_connections else "-o ControlMaster=no"
    return {
        "ANSIBLE_COLLECTIONS_PATH": str(REPO / "collections"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir),
        "ANSIBLE_SSH_ARGS": f"{ssh_args} -o ServerAliveInterval=15",
        "ANSIBLE_PIPELINING": "True" if pipelining else "False",
        "ANSIBLE_GATHERING": "explicit",
        "ANSIBLE_NOCOLOR": "True",
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "| contender | samples | p50 s | p90 s | p99 s | min s | max s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in report.get("latency", {}).items():
        if row["samples"]:
            lines.append(
                f"| {name} | {row['samples']} | {row['p50']:.3f} | {row['p90']:.3f} | {row['p99']:.3f} "
                f"| {row['min']:.3f} | {row['max']:.3f} |"
            )
        else:
            lines.append(f"| {name} | 0 | - | - | - | - | - |")
    burst = report.get("burst")
    if burst:
        lines += [
            "",
            f"burst: {burst['addresses']} addresses for {burst['hosts']} hosts submitted within "
            f"{burst['submitted_within_s']} s -> {burst['ansible_runner_runs']} ansible-runner runs "
            f"(batch sizes {burst['batch_sizes']}), all blocked after {burst['time_to_all_blocked_s']} s, "
            f"all results after {burst['time_to_all_results_s']} s, {burst['results_ok']} ok",
        ]
    return "\n".join(lines)


def goals(report: dict[str, Any]) -> list[str]:
    out = []
    latency = report.get("latency", {})
    tld, baseline = latency.get("threatlockdown"), latency.get("ansible-rulebook")
    if tld and baseline and tld["p50"] and baseline["p50"]:
        ratio = baseline["p50"] / tld["p50"]
        verdict = "MET" if ratio >= GOAL_RATIO else "NOT MET"
        out.append(f"goal: p50 >= {GOAL_RATIO:.0f}x faster than ansible-rulebook: {ratio:.2f}x {verdict}")
    burst = report.get("burst")
    if burst:
        seconds, runs = burst["time_to_all_blocked_s"], burst["ansible_runner_runs"]
        met = seconds is not None and seconds <= GOAL_BURST_SECONDS and runs <= GOAL_BURST_RUNS
        out.append(
            f"goal: {burst['addresses']} addresses blocked within {GOAL_BURST_SECONDS:.0f} s in at most "
            f"{GOAL_BURST_RUNS} runs: {seconds} s, {runs} runs {'MET' if met else 'NOT MET'}"
        )
    return out


async def main_async(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    report: dict[str, Any] = {
        "load_average_before": os.getloadavg(),
        "cpus": os.cpu_count(),
        "runs_per_command": args.runs_per_command,
    }
    lab = build_lab(workdir, args.hosts)
    hosts = [f"web{i}" for i in range(1, args.hosts + 1)]
    inventory = lab.write_inventory(workdir / "hosts.yml")
    executors: list[AnsibleRunnerExecutor] = []
    rulebook: RulebookContender | None = None
    watcher: BlockWatcher | None = None
    try:

        def executor(name: str, warm: bool, **levers: bool) -> AnsibleRunnerExecutor:
            settings = AnsibleExecutorSettings(
                inventory=(str(inventory),),
                queue_dir=workdir / name,
                warm=warm,
                keep_runs=20,
                runs_per_command=args.runs_per_command,
                envvars=ssh_environment(workdir / name / "ssh-cp", **levers),
            )
            made = AnsibleRunnerExecutor(settings)
            executors.append(made)
            return made

        warm = executor("tw", warm=True)
        contenders: list[Any] = [
            TldContender("threatlockdown", warm),
            TldContender("threatlockdown-cold", executor("tc", warm=False)),
        ]
        if args.levers:
            contenders += [
                TldContender(
                    "threatlockdown-no-ssh-reuse", executor("tn", warm=True, keep_connections=False)
                ),
                TldContender("threatlockdown-no-pipelining", executor("tp", warm=True, pipelining=False)),
            ]
        log("starting the warm servers and opening SSH connections to every host")
        opening = Batch(
            "open", "firewall-drop", "firewall-drop", "add", tuple(item(h, "198.18.255.254") for h in hosts)
        )
        for contender in contenders:
            await asyncio.to_thread(contender.executor.start)
            results = await contender.executor.execute(opening)
            assert all(r.status == "ok" for r in results), results
        watcher = BlockWatcher(lab, hosts)
        if args.rulebook:
            ensure_rulebook(args.rulebook_venv)
            (workdir / "rb").mkdir()
            rulebook = RulebookContender(
                args.rulebook_venv, inventory, workdir / "rb", ssh_environment(workdir / "rb" / "ssh-cp")
            )
            log("starting ansible-rulebook")
            await asyncio.to_thread(rulebook.start)
            contenders.append(rulebook)
        if args.samples:
            log(f"latency: {args.samples} alerts per contender after {args.warmup} warm-up rounds")
            report["latency"] = await measure_latency(contenders, watcher, "web1", args.samples, args.warmup)
        if rulebook is not None:
            rulebook.stop()
        if args.burst:
            log(f"burst: {args.burst} addresses for {len(hosts)} hosts within {args.spread} s")
            report["burst"] = await measure_burst(warm, watcher, hosts, args.burst, args.spread)
    finally:
        if rulebook is not None:
            rulebook.stop()
        if watcher is not None:
            watcher.stop()
        for made in executors:
            await made.close()
        lab.down()
    report["load_average_after"] = os.getloadavg()
    return report


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=40, help="measured alerts per contender (0: skip)")
    parser.add_argument("--warmup", type=int, default=3, help="alerts per contender before measuring")
    parser.add_argument("--burst", type=int, default=1000, help="addresses in the burst (0: skip)")
    parser.add_argument("--spread", type=float, default=1.0, help="seconds over which the burst arrives")
    parser.add_argument("--hosts", type=int, default=10, help="lab hosts with sshd")
    parser.add_argument(
        "--runs-per-command",
        type=int,
        default=AnsibleExecutorSettings.runs_per_command,
        help="the executor's runs at once per command and action",
    )
    parser.add_argument(
        "--levers", action="store_true", help="also measure ThreatLockDown without SSH reuse / pipelining"
    )
    parser.add_argument("--no-rulebook", dest="rulebook", action="store_false", help="skip ansible-rulebook")
    parser.add_argument("--rulebook-venv", type=Path, default=OUT / "rulebook-venv")
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_executor.py needs root (network namespaces for the lab hosts)", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="tldb-", dir="/tmp"))  # short: Unix socket paths live here
    try:
        report = asyncio.run(main_async(args, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    (OUT / "bench_executor.json").write_text(json.dumps(report, indent=2))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(markdown(report))
    for line in goals(report):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
