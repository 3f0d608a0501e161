"""Benchmark: ``tld analyze`` against ``fail2ban-regex`` on the same sshd corpus, one core, one run.

Both tools read the same file on the same machine within one invocation, each pinned to the same core with
``taskset``, so the ratio between them is the figure that carries over to other machines. Wall time
includes interpreter start-up for both (both are Python programs). Peak RSS is the child's own maximum
resident set size as returned by ``os.wait4``.

The primary comparison is ``tld analyze CORPUS`` (every line fully analysed, alerts counted per rule)
against ``fail2ban-regex``, which also counts matches and writes nothing per line. A second tld run with
``--alerts /dev/null`` adds serialising every alert as an alerts.json line; it is reported beside the
primary figures, with a goal line of its own (``--no-alerts-run`` skips it).

Usage: bench_analyze.py [--corpus PATH | --lines N --seed S] [--repeat N] [--json] [--no-alerts-run]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GOAL_RATIO = 3.0
TLD_PRIMARY = "ThreatLockDown"
TLD_WITH_ALERTS = "ThreatLockDown --alerts"
FAIL2BAN = "fail2ban-regex"
BENCH_DIR = Path(__file__).resolve().parent
GENERATOR = BENCH_DIR / "gen_sshd_corpus.py"
DEFAULT_FILTER = Path("/etc/fail2ban/filter.d/sshd.conf")

# "analyzed 250000 lines, 61234 alerts in 2.31 s (108225 lines/s)"
_TLD_SUMMARY = re.compile(r"analyzed\s+(\d+)\s+lines?,\s+(\d+)\s+alerts?\s+in\s+([0-9.]+)\s*s\b")
# "Lines: 250000 lines, 49652 ignored, 35389 matched, 164959 missed" ... "[processed in 14.97 sec]"
_F2B_LINES = re.compile(r"Lines:\s+(\d+)\s+lines,\s+(\d+)\s+ignored,\s+(\d+)\s+matched,\s+(\d+)\s+missed")
_F2B_PROCESSED = re.compile(r"\[processed in ([0-9.]+) sec\]")


@dataclass(frozen=True)
class ChildRun:
    """One finished child process: what it printed and what it cost."""

    returncode: int
    wall_seconds: float
    cpu_seconds: float  # user + system time of the child itself
    peak_rss_kib: int
    output: str  # stdout, then stderr
    timed_out: bool = False


@dataclass(frozen=True)
class Summary:
    """What a tool says about its own run."""

    lines: int
    detections: int
    seconds: float


@dataclass(frozen=True)
class ToolSpec:
    name: str
    command: list[str]
    parse: Callable[[str], Summary | None]
    detections_label: str


@dataclass
class ToolResult:
    """Best-of-N figures for one tool, or the reason it could not be measured."""

    tool: str
    command: list[str]
    lines: int
    detections_label: str
    runs_seconds: list[float] = field(default_factory=list)
    best_seconds: float | None = None
    lines_per_second: float | None = None
    # Least CPU time of any run: unlike wall time it hardly moves when other processes share the core.
    cpu_seconds: float | None = None
    detections: int | None = None
    peak_rss_kib: int | None = None
    self_reported_seconds: float | None = None
    tool_reported_lines: int | None = None
    error: str | None = None


def run_child(command: Sequence[str], timeout: float) -> ChildRun:
    """Runs ``command`` to completion, timing it and taking its peak RSS from ``os.wait4``."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(command), stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        # A timer rather than Popen.wait(timeout): Popen.wait would reap the child and lose its rusage.
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text = out.read().decode("utf-8", "replace") + "\n" + err.read().decode("utf-8", "replace")
        # ru_maxrss is in kibibytes on Linux.
        cpu = usage.ru_utime + usage.ru_stime
        timed_out = proc.returncode == -signal.SIGKILL and wall >= timeout
        return ChildRun(proc.returncode, wall, cpu, int(usage.ru_maxrss), text, timed_out)


def parse_tld_summary(text: str) -> Summary | None:
    found = _TLD_SUMMARY.findall(text)
    if not found:
        return None
    lines, alerts, seconds = found[-1]
    return Summary(int(lines), int(alerts), float(seconds))


def parse_fail2ban_summary(text: str) -> Summary | None:
    lines = _F2B_LINES.search(text)
    processed = _F2B_PROCESSED.search(text)
    if lines is None or processed is None:
        return None
    # "matched" counts failures only; NOFAIL hits (Accepted, disconnects) are reported as "ignored".
    return Summary(int(lines.group(1)), int(lines.group(3)), float(processed.group(1)))


def count_lines(path: Path) -> int:
    count = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            count += chunk.count(b"\n")
    return count


def fold_runs(spec: ToolSpec, lines: int, runs: Sequence[ChildRun]) -> ToolResult:
    """Turns the runs of one tool into its result; any failed run marks the tool as not measured."""
    result = ToolResult(spec.name, spec.command, lines, spec.detections_label)
    best_wall = float("inf")
    for run in runs:
        summary = spec.parse(run.output)
        if run.returncode != 0 or summary is None:
            if run.timed_out:
                why = f"killed by --timeout after {run.wall_seconds:.1f} s"
            elif run.returncode != 0:
                why = f"exit status {run.returncode}"
            else:
                why = "no summary line in its output"
            tail = "\n".join("    " + s for s in run.output.strip().splitlines()[-8:])
            result.error = f"{spec.name} failed ({why}): {' '.join(spec.command)}"
            if tail:
                result.error += "\n" + tail
            return result
        result.runs_seconds.append(run.wall_seconds)
        if result.cpu_seconds is None or run.cpu_seconds < result.cpu_seconds:
            result.cpu_seconds = run.cpu_seconds
        result.peak_rss_kib = max(result.peak_rss_kib or 0, run.peak_rss_kib)
        result.detections = summary.detections
        result.tool_reported_lines = summary.lines
        if run.wall_seconds < best_wall:
            best_wall = run.wall_seconds
            result.self_reported_seconds = summary.seconds
    if result.runs_seconds:
        result.best_seconds = best_wall
        result.lines_per_second = lines / best_wall
    return result


def speed_ratio(ours: ToolResult, theirs: ToolResult | None) -> float | None:
    """How many times more lines per second (wall time) tld gets through than fail2ban-regex."""
    if theirs is None or ours.lines_per_second is None or theirs.lines_per_second is None:
        return None
    return ours.lines_per_second / theirs.lines_per_second


def cpu_ratio(ours: ToolResult, theirs: ToolResult | None) -> float | None:
    """The same comparison by CPU time, a cross-check when the machine is busy."""
    if theirs is None or not ours.cpu_seconds or theirs.cpu_seconds is None:
        return None
    return theirs.cpu_seconds / ours.cpu_seconds


def _first_line_of(command: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=60, check=False)
    except OSError as exc:
        return f"unknown ({exc})"
    text = (done.stdout or done.stderr).strip()
    if done.returncode != 0 or not text:
        return f"unknown (exit status {done.returncode})"
    return text.splitlines()[0]


def machine_facts(fail2ban: str | None, tld: Path) -> dict[str, str]:
    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        # Other work on the machine skews wall time; the load average before the runs shows it.
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "nproc": str(os.cpu_count()),
        "cpu_model": cpu_model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "tld": _first_line_of([str(tld), "--version"]) if tld.exists() else "not found",
        "fail2ban": _first_line_of([fail2ban, "--version"]) if fail2ban else "not found",
    }


def _pinned(command: list[str], cpu: int, taskset: str | None) -> list[str]:
    return [taskset, "-c", str(cpu), *command] if taskset else command


def _make_corpus(args: argparse.Namespace) -> Path:
    if args.corpus:
        path = Path(args.corpus).resolve()
        if not path.is_file():
            raise SystemExit(f"bench_analyze: corpus {path} does not exist")
        return path
    path = BENCH_DIR / "out" / f"sshd-{args.lines}-seed{args.seed}.log"
    command = [sys.executable, str(GENERATOR), "--lines", str(args.lines), "--seed", str(args.seed)]
    done = subprocess.run([*command, "--out", str(path)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench_analyze: corpus generation failed:\n{done.stderr.strip()}")
    return path


def _format_table(results: Sequence[ToolResult]) -> str:
    header = (
        "tool",
        "lines",
        "seconds",
        "lines/s",
        "CPU s",
        "alerts/matches",
        "peak RSS MiB",
        "self-reported s",
    )
    rows = [header]
    for r in results:
        if r.error is not None:
            rows.append((r.tool, str(r.lines), "-", "-", "-", "-", "-", "-"))
            continue
        rows.append(
            (
                r.tool,
                str(r.lines),
                f"{r.best_seconds:.2f}",
                f"{r.lines_per_second:,.0f}",
                f"{r.cpu_seconds:.2f}",
                f"{r.detections} {r.detections_label}",
                f"{(r.peak_rss_kib or 0) / 1024:.0f}",
                f"{r.self_reported_seconds:.2f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _times(ratio: float | None) -> str:
    return f"{ratio:.2f}x" if ratio is not None else "n/a"


def _why_no_ratio(ours: ToolResult, theirs: ToolResult | None) -> str:
    if theirs is None:
        return "fail2ban-regex not found"
    failed = [r.tool for r in (ours, theirs) if r.error]
    return f"{' and '.join(failed)} not measured" if failed else ""


def _goal_line(ratio: float | None, why_unknown: str, what: str = "goal") -> str:
    if ratio is None:
        return f"{what}: >= {GOAL_RATIO:.1f}x fail2ban: NOT MET (no ratio: {why_unknown})"
    verdict = "MET" if ratio >= GOAL_RATIO else "NOT MET"
    return f"{what}: >= {GOAL_RATIO:.1f}x fail2ban: {verdict} (measured {ratio:.2f}x)"


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Time `tld analyze` against `fail2ban-regex` on one sshd corpus.")
    p.add_argument("--corpus", help="use this log file instead of generating one")
    p.add_argument("--lines", type=int, default=250_000, help="lines to generate (default %(default)s)")
    p.add_argument("--seed", type=int, default=1, help="generator seed (default %(default)s)")
    p.add_argument("--repeat", type=int, default=1, help="runs per tool, the best one counts (default 1)")
    p.add_argument("--cpu", type=int, default=0, help="core both tools are pinned to (default 0)")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds before a run is killed")
    p.add_argument("--tld", help="tld executable (default: the one next to this Python)")
    p.add_argument("--filter", default=str(DEFAULT_FILTER), help="fail2ban filter (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    p.add_argument(
        "--no-alerts-run",
        action="store_true",
        help="skip the secondary tld run that also writes alerts.json lines to /dev/null",
    )
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error("--repeat must be >= 1")
    if args.lines < 1:
        p.error("--lines must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    # The console script of this very venv, so the benchmark measures the checked-out code.
    tld = Path(args.tld) if args.tld else Path(sys.executable).parent / "tld"
    fail2ban = shutil.which("fail2ban-regex")
    taskset = shutil.which("taskset")
    notes: list[str] = []
    if taskset is None:
        notes.append("taskset not found: runs are NOT pinned to one core")
    if fail2ban is None:
        notes.append(
            "fail2ban-regex not found (Debian package fail2ban, see scripts/setup.sh): reporting tld only"
        )

    # Before the runs, so the load average shows other work rather than ours.
    facts = machine_facts(fail2ban, tld)
    corpus = _make_corpus(args)
    lines = count_lines(corpus)
    specs = [
        ToolSpec(
            TLD_PRIMARY,
            _pinned([str(tld), "analyze", str(corpus)], args.cpu, taskset),
            parse_tld_summary,
            "alerts",
        )
    ]
    if not args.no_alerts_run:
        specs.append(
            ToolSpec(
                TLD_WITH_ALERTS,
                _pinned([str(tld), "analyze", str(corpus), "--alerts", os.devnull], args.cpu, taskset),
                parse_tld_summary,
                "alerts",
            )
        )
    if fail2ban is not None:
        specs.append(
            ToolSpec(
                FAIL2BAN,
                _pinned([fail2ban, str(corpus), args.filter], args.cpu, taskset),
                parse_fail2ban_summary,
                "matches",
            )
        )

    runs: dict[str, list[ChildRun]] = {spec.name: [] for spec in specs}
    for round_no in range(args.repeat):
        # Alternate the tools so slow drift on the machine (thermal, neighbours) hits both alike.
        for spec in specs:
            print(f"bench_analyze: round {round_no + 1}/{args.repeat}: {spec.name}", file=sys.stderr)
            runs[spec.name].append(run_child(spec.command, args.timeout))
    results = [fold_runs(spec, lines, runs[spec.name]) for spec in specs]
    by_name = {r.tool: r for r in results}
    ours = by_name[TLD_PRIMARY]
    with_alerts = by_name.get(TLD_WITH_ALERTS)
    theirs = by_name.get(FAIL2BAN)
    ratio = speed_ratio(ours, theirs)
    by_cpu = cpu_ratio(ours, theirs)
    alerts_ratio = speed_ratio(with_alerts, theirs) if with_alerts is not None else None
    alerts_by_cpu = cpu_ratio(with_alerts, theirs) if with_alerts is not None else None
    goal = _goal_line(ratio, _why_no_ratio(ours, theirs))
    # The same bar for the run that also writes every alert (reported, not the primary figure).
    alerts_goal = (
        _goal_line(alerts_ratio, _why_no_ratio(with_alerts, theirs), "goal with --alerts /dev/null")
        if with_alerts is not None
        else None
    )

    if args.json:
        document: dict[str, Any] = {
            "corpus": {"path": str(corpus), "lines": lines, "seed": None if args.corpus else args.seed},
            "pinned_cpu": args.cpu if taskset else None,
            "repeat": args.repeat,
            "machine": facts,
            "results": [asdict(r) for r in results],
            "ratio": ratio,
            "cpu_time_ratio": by_cpu,
            "with_alerts_ratio": alerts_ratio,
            "with_alerts_cpu_time_ratio": alerts_by_cpu,
            "goal": {"ratio": GOAL_RATIO, "met": ratio is not None and ratio >= GOAL_RATIO, "text": goal},
            "with_alerts_goal": None
            if alerts_goal is None
            else {"met": alerts_ratio is not None and alerts_ratio >= GOAL_RATIO, "text": alerts_goal},
            "notes": notes,
        }
        print(json.dumps(document, indent=2))
    else:
        for note in notes:
            print(f"note: {note}")
        print("machine: " + ", ".join(f"{k}={v}" for k, v in facts.items()))
        pinning = f"pinned to cpu {args.cpu}" if taskset else "not pinned"
        print(f"corpus: {corpus} ({lines} lines), best of {args.repeat}, {pinning}")
        print(_format_table(results))
        for r in results:
            if r.error:
                print(f"error: {r.error}")
        print(f"ratio ThreatLockDown/fail2ban (lines/s): {_times(ratio)} (by CPU time: {_times(by_cpu)})")
        if with_alerts is not None:
            print(
                f"secondary, tld with --alerts /dev/null: {_times(alerts_ratio)} "
                f"(by CPU time: {_times(alerts_by_cpu)})"
            )
        print(goal)
        if alerts_goal is not None:
            print(alerts_goal)
    # Missing the goal is a finding, not a failure; not being able to measure tld at all is.
    return 1 if ours.error or (with_alerts is not None and with_alerts.error) else 0


if __name__ == "__main__":
    sys.exit(main())
