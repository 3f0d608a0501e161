"""Crash test: a real process running the engine with 1,000 active responses is killed with SIGKILL;
restarted after some of them expired, it reverts each expired one exactly once, right away, and the
others on time. The executor records every action it is given to a file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from threatlockdown.response.state import read_active

CHILD = r"""
import asyncio, os, sys, time
from pathlib import Path
from threatlockdown.response.engine import EnginePaths, ResponseEngine
from threatlockdown.response.executor import ItemResult
from threatlockdown.response.selfprotect import SelfProtection
from threatlockdown.response.settings import ResponseSettings
from threatlockdown.response.testkit import alert, config_with, inventory_of

home, record, mode, count = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
SHORT, LONG = float(sys.argv[5]), float(sys.argv[6])


class Recorder:
    def __init__(self):
        self.fd = os.open(record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    async def execute(self, batch):
        now = time.time()
        lines = "".join(f"{batch.action} {i.key} {now:.3f}\n" for i in batch.items)
        os.write(self.fd, lines.encode())  # one write per batch: a kill cannot tear a line
        return [ItemResult(i.key, i.host, "ok", changed=True) for i in batch.items]

    async def close(self):
        os.close(self.fd)


BODY = f'''
<active-response><command>firewall-drop</command><location>local</location>
  <rules_id>5710</rules_id><timeout>{int(SHORT)}</timeout></active-response>
<active-response><command>firewall-drop</command><location>local</location>
  <rules_id>5712</rules_id><timeout>{int(LONG)}</timeout></active-response>
'''


async def main():
    engine = ResponseEngine(
        config=config_with(BODY),
        settings=ResponseSettings(),
        inventory=inventory_of({"web": ["web1"]}),
        executor=Recorder(),
        paths=EnginePaths(home / "queue" / "active-response" / "state.db", home / "logs"),
        protection=SelfProtection(enabled=False),
    )
    await engine.start()
    if mode == "fill":
        for n in range(count):
            ip = f"10.{n // 65536}.{n // 256 % 256}.{n % 256}"
            await engine.handle_alert(alert(rule_id=5710 if n % 2 == 0 else 5712, srcip=ip))
        while sum(1 for e in engine.state.active.values() if e.phase == "active") < count:
            await asyncio.sleep(0.02)
        engine.state.flush()
        print("READY", flush=True)
    else:
        print("RESUMED", flush=True)
    await asyncio.Event().wait()  # until killed


asyncio.run(main())
"""

COUNT = 1000
SHORT = 3.0
LONG = 7.0


def spawn(home: Path, record: Path, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(home), str(record), mode, str(COUNT), str(SHORT), str(LONG)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_line(proc: subprocess.Popen[str], expected: str, timeout: float) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.strip() == expected:
            return
        if not line and proc.poll() is not None:
            raise AssertionError(
                f"child exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}"
            )
    raise AssertionError(f"no {expected} within {timeout} s")


def records(path: Path) -> list[tuple[str, str, float]]:
    out = []
    for line in path.read_text().splitlines():
        action, key, stamp = line.split(" ")
        out.append((action, key, float(stamp)))
    return out


@pytest.mark.slow
def test_kill_9_with_1000_active_responses_then_restart(tmp_path: Path) -> None:
    home, record = tmp_path / "home", tmp_path / "actions.log"
    first = spawn(home, record, "fill")
    try:
        wait_line(first, "READY", 60)
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    assert first.returncode == -signal.SIGKILL
    adds = [r for r in records(record) if r[0] == "add"]
    assert len(adds) == COUNT and len({k for _, k, _ in adds}) == COUNT
    assert not [r for r in records(record) if r[0] == "delete"], "nothing expired before the kill"

    state = {e.key: e for e in read_active(home / "queue" / "active-response" / "state.db")}
    assert len(state) == COUNT, "every applied response survived the kill in the state file"
    expiry: dict[str, float] = {k: e.expires for k, e in state.items() if e.expires is not None}
    assert len(expiry) == COUNT
    short = {k for k, e in state.items() if e.timeout == int(SHORT)}
    assert len(short) == COUNT // 2

    # Restart once every short response has expired and before any long one does.
    wait_until = max(expiry[k] for k in short) + 0.3
    time.sleep(max(0.0, wait_until - time.time()))
    assert min(v for k, v in expiry.items() if k not in short) > time.time() + 1
    restarted_at = time.time()
    second = spawn(home, record, "resume")
    try:
        wait_line(second, "RESUMED", 60)
        deadline = time.monotonic() + LONG + 15
        while time.monotonic() < deadline:
            if sum(1 for r in records(record) if r[0] == "delete") >= COUNT:
                break
            time.sleep(0.1)
        time.sleep(1.0)  # anything extra (a second revert) would show up now
    finally:
        second.send_signal(signal.SIGTERM)
        second.kill()
        second.wait(10)

    deletes = [r for r in records(record) if r[0] == "delete"]
    per_key = Counter(k for _, k, _ in deletes)
    assert set(per_key) == set(state), "every response was reverted"
    assert max(per_key.values()) == 1, f"reverted twice: {[k for k, n in per_key.items() if n > 1][:5]}"
    assert len([r for r in records(record) if r[0] == "add"]) == COUNT, "no add ran again"
    when = {k: t for _, k, t in deletes}
    late_expired = max(when[k] - restarted_at for k in short)
    assert late_expired < 5.0, f"expired responses reverted {late_expired:.2f} s after the restart began"
    lateness = [when[k] - expiry[k] for k in state if k not in short]
    print(f"expired: reverted within {late_expired:.2f} s of the restart")
    print(f"live: reverted {min(lateness):.3f} to {max(lateness):.3f} s after expiry")
    assert min(lateness) >= 0, "a live response was reverted before its expiry"
    assert max(lateness) < 1.0, f"a live response was reverted {max(lateness):.2f} s after its expiry"
