"""Benchmark of the manager daemon: sustained events/s from a file being appended, and the latency from a
line written to its alert written (p50, p99).

    .venv/bin/python bench/bench_daemon.py     # 1,000 lines/s for 15 s, then 50,000 lines at full speed
    .venv/bin/python bench/bench_daemon.py --rate 2000 --seconds 10 --burst 100000 --json

The daemon is a real ``tld manager start --foreground`` in a temporary home that tails one file with the
shipped ruleset. Every line is an sshd "Invalid user" line with a unique user name, so every line gives
one alert (5710, or 5712 once a source address repeats), and each alert is matched to its line by that name.
The latency clock starts just before the line is written (and flushed) and stops when the alert line is seen
in alerts.json by a reader that polls the file every millisecond.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TLD = [sys.executable, "-m", "threatlockdown.cli.main"]
# The line's own text: "previous_output" (correlated lines) comes before "full_log" in an alert.
_SEQ = re.compile(rb'"full_log": "[^"]*Invalid user u(\d{8}) from')


def line(seq: int) -> str:
    # 250 source addresses, so correlation rules see repeats as on a real attacked host.
    ip = f"198.51.100.{seq % 250 + 1}"
    pid, port = 1000 + seq % 30000, 40000 + seq % 20000
    return f"Nov 26 05:33:21 bench sshd[{pid}]: Invalid user u{seq:08d} from {ip} port {port}\n"


class AlertWatcher(threading.Thread):
    """Records when each sequence number's alert appears in alerts.json."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.seen: dict[int, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.path.exists() and not self.stop.is_set():
            time.sleep(0.001)
        with open(self.path, "rb") as f:
            pending = b""
            while not self.stop.is_set():
                chunk = f.read()
                if not chunk:
                    time.sleep(0.001)
                    continue
                now = time.time()
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for raw in complete:
                    m = _SEQ.search(raw)
                    if m:
                        self.seen.setdefault(int(m.group(1)), now)


def wait_until(what, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return True
        time.sleep(0.01)
    return False


def start_manager(home: Path, log: Path) -> subprocess.Popen[bytes]:
    (home / "etc").mkdir(parents=True)
    (home / "etc" / "ossec.conf").write_text(
        f"<ossec_config><localfile><log_format>syslog</log_format><location>{log}</location></localfile>"
        "</ossec_config>\n"
    )
    log.touch()
    proc = subprocess.Popen(
        [*TLD, "manager", "start", "--foreground", "--home", str(home)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ready = lambda: (home / "var" / "run" / "tld-manager.sock").exists()  # noqa: E731
    if not wait_until(ready, 60):
        proc.kill()
        raise SystemExit("the manager did not start; see " + str(home / "logs" / "threatlockdown.log"))
    time.sleep(0.5)
    return proc


def paced(log: Path, watcher: AlertWatcher, first: int, rate: float, seconds: float) -> dict[int, float]:
    written: dict[int, float] = {}
    count = int(rate * seconds)
    start = time.monotonic()
    with open(log, "a") as f:
        for i in range(count):
            seq = first + i
            written[seq] = time.time()
            f.write(line(seq))
            f.flush()
            delay = start + (i + 1) / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    wait_until(lambda: all(s in watcher.seen for s in written), 30)
    return written


def burst(log: Path, watcher: AlertWatcher, first: int, count: int) -> tuple[float, int]:
    data = "".join(line(first + i) for i in range(count))
    start = time.time()
    with open(log, "a") as f:
        for i in range(0, len(data), 1 << 20):
            f.write(data[i : i + (1 << 20)])
            f.flush()
    wait_until(lambda: sum(1 for s in range(first, first + count) if s in watcher.seen) >= count, 300)
    done = [watcher.seen[s] for s in range(first, first + count) if s in watcher.seen]
    return (max(done) - start if done else float("inf")), len(done)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=1000.0, help="lines/s for the latency phase (default 1000)")
    ap.add_argument("--seconds", type=float, default=15.0, help="length of the latency phase (default 15)")
    ap.add_argument(
        "--burst", type=int, default=50000, help="lines appended at once for throughput (default 50000)"
    )
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="tld-bench-") as tmp:
        home, log = Path(tmp) / "home", Path(tmp) / "bench.log"
        proc = start_manager(home, log)
        watcher = AlertWatcher(home / "logs" / "alerts" / "alerts.json")
        watcher.start()
        try:
            cpu0 = os.times()
            written = paced(log, watcher, 0, args.rate, args.seconds)
            latencies = [(watcher.seen[s] - t) * 1000 for s, t in written.items() if s in watcher.seen]
            missing = len(written) - len(latencies)
            elapsed, done = burst(log, watcher, len(written), args.burst)
            cpu1 = os.times()
        finally:
            watcher.stop.set()
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    result = {
        "latency_phase": {
            "rate_lines_per_s": args.rate,
            "lines": len(written),
            "alerts_missing": missing,
            "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
            "p99_ms": round(percentile(latencies, 99), 1) if latencies else None,
            "max_ms": round(max(latencies), 1) if latencies else None,
        },
        "throughput_phase": {
            "lines": args.burst,
            "alerts": done,
            "seconds": round(elapsed, 2),
            "events_per_s": round(done / elapsed) if elapsed else None,
        },
        "bench_process_cpu_s": round((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system), 2),
        "load_average": os.getloadavg(),
    }
    goal = (
        result["latency_phase"]["p50_ms"] is not None
        and result["latency_phase"]["p50_ms"] < 50
        and args.rate >= 1000
    )
    if args.json:
        print(json.dumps({**result, "goal_met": goal}, indent=1))
    else:
        lat, thr = result["latency_phase"], result["throughput_phase"]
        print(
            f"latency at {args.rate:.0f} lines/s over {args.seconds:.0f} s ({lat['lines']} lines, "
            f"{lat['alerts_missing']} alerts missing):"
        )
        print(f"  p50 {lat['p50_ms']} ms   p99 {lat['p99_ms']} ms   max {lat['max_ms']} ms")
        print(
            f"throughput: {thr['lines']} lines appended at once -> {thr['alerts']} alerts "
            f"in {thr['seconds']} s = {thr['events_per_s']} events/s"
        )
        print(f"load average {result['load_average'][0]:.2f}")
        print(f"goal: p50 < 50 ms at 1,000 lines/s: {'MET' if goal else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
