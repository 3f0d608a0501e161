"""``tld analyze``: replay log files through the engine (forensics, rule tuning, benchmarks)."""

from __future__ import annotations

import argparse
import gc
import io
import json
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any

from ..analysis.eventtime import ReplayClock
from ..analysis.linereader import LineReader
from ..analysis.session import AnalysisSession, ProcessResult
from ..ruleset.rules import Rule
from .common import add_ruleset_options, load_for_cli, new_session

PROGRESS_EVERY = 0.25  # seconds between progress-bar redraws
# Buffer of an --alerts file: about 1,000 alerts a write(2) instead of 8; on a VM each system call costs
# microseconds, a tenth of the alerts' cost on the 250,000-line benchmark with the default 8 KiB.
ALERTS_BUFFER_BYTES = 1 << 20


def register(sub: Any) -> None:
    p = sub.add_parser(
        "analyze",
        help="replay log files through the ruleset and write alerts.json lines",
        description="Replay log files (or - for stdin) through the engine. Frequency rules use the time "
        "written in each line's header, so old logs correlate as they did when written.",
    )
    add_ruleset_options(p)
    p.add_argument("files", nargs="+", metavar="FILE", help="log files; - reads stdin")
    p.add_argument("--alerts", metavar="OUT", help="write alerts.json lines to OUT (- for stdout)")
    p.add_argument(
        "--format",
        choices=("syslog", "journald"),
        default="syslog",
        help="input format: syslog lines, or `journalctl -o json` records",
    )
    p.add_argument("--location", help="location to report (default: the file's path)")
    p.add_argument(
        "--live-clock",
        action="store_true",
        help="correlate by analysis time like the live daemon, not by the lines' timestamps",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    loaded = load_for_cli(args)
    if loaded is None:
        return 1
    session = new_session(*loaded)
    with _batch_gc():
        return _analyze(args, session)


@contextmanager
def _batch_gc() -> Iterator[None]:
    """Cyclic garbage collection tuned for one long replay, restored afterwards.

    The engine makes no reference cycles per line, yet with default thresholds the collector runs
    every 700 allocations and keeps re-scanning the ruleset and correlation memory: about 6 % of a
    250,000-line replay. The objects that exist before the replay (ruleset, session) are frozen out
    of collection and the young generation is collected every 50,000 allocations instead.
    """
    thresholds = gc.get_threshold()
    gc.freeze()  # no collect() first: what start-up left as garbage is small, a full pass is not
    gc.set_threshold(50_000, 50, 50)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def _analyze(args: argparse.Namespace, session: AnalysisSession) -> int:
    if not args.live_clock:
        session.clock = ReplayClock()
    total_bytes = sum(_size(f) for f in args.files)
    progress = _Progress(total_bytes) if sys.stderr.isatty() and not args.no_progress else None
    per_rule: dict[Rule, int] = {}  # by rule object: no id string built per alert
    lines = unreadable = 0
    started = time.perf_counter()
    with ExitStack() as stack:
        out: IO[bytes] | None = None
        if args.alerts == "-":
            out = sys.stdout.buffer
        elif args.alerts:
            out = stack.enter_context(open(args.alerts, "wb", buffering=ALERTS_BUFFER_BYTES))
        for path in args.files:
            location = args.location or ("stdin" if path == "-" else path)
            if path != "-" and not _readable(path):
                unreadable += 1
                continue
            if args.format == "syslog":
                with _line_reader(path, progress) as reader:
                    if out is None:
                        _count_alerts(session, reader, location, per_rule)
                    else:
                        _write_alerts(session, reader, location, per_rule, out)
                lines += reader.count
                continue
            # journald: one `journalctl -o json` record per line
            for number, text in enumerate(_read(path, progress), 1):
                line = text.rstrip("\r\n")
                if not line:
                    continue
                lines += 1
                result: ProcessResult
                try:
                    record = json.loads(line)
                    if not isinstance(record, dict):
                        raise ValueError(f"a JSON {type(record).__name__}, not an object")
                    result = session.process_journald(record, location)
                except (ValueError, TypeError) as exc:
                    print(f"warning: {path}:{number}: not a journal record: {exc}", file=sys.stderr)
                    continue
                if not result.alert:
                    continue
                rule = result.match.rule
                assert rule is not None
                per_rule[rule] = per_rule.get(rule, 0) + 1
                if out is not None and result.logged:
                    out.write(result.output_line() + b"\n")
    elapsed = max(time.perf_counter() - started, 1e-9)
    if progress is not None:
        progress.finish()
    report = sys.stderr if args.alerts == "-" else sys.stdout
    alerts = sum(per_rule.values())
    if args.alerts != "-":
        # Most alerts first; ties in the order the rules first alerted (as Counter.most_common).
        for rule, count in sorted(per_rule.items(), key=lambda item: -item[1])[:20]:
            print(f"{count:>9}  rule {rule.id:>6}  {rule.description}", file=report)
    print(
        f"analyzed {lines} lines, {alerts} alerts in {elapsed:.2f} s ({lines / elapsed:.0f} lines/s)",
        file=report,
    )
    # The other files were analysed, but a script must see that its input was incomplete.
    return 1 if unreadable else 0


def _count_alerts(
    session: AnalysisSession, lines: Iterable[str], location: str, per_rule: dict[Rule, int]
) -> None:
    """Analyse syslog lines, counting alerts per rule (no alerts.json).

    The loop of a plain ``tld analyze FILE``: per alert only its count here.
    """
    for rule in session.alert_rules(lines, location):
        per_rule[rule] = per_rule.get(rule, 0) + 1


def _write_alerts(
    session: AnalysisSession, lines: Iterable[str], location: str, per_rule: dict[Rule, int], out: IO[bytes]
) -> None:
    """_count_alerts that also writes each alert's alerts.json line to ``out``."""
    write = out.write
    for rule, text in session.alert_lines(lines, location):
        per_rule[rule] = per_rule.get(rule, 0) + 1
        if text is not None:
            write(text)


@contextmanager
def _line_reader(path: str, progress: _Progress | None) -> Iterator[LineReader]:
    """The non-empty lines of ``path`` (- for stdin) as text; an unreadable file gives none."""
    advance = progress.advance if progress is not None else None
    if path == "-":
        yield LineReader(sys.stdin.buffer, advance)
        return
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        print(f"error: {path}: {exc.strerror}", file=sys.stderr)
        yield LineReader(io.BytesIO())
        return
    with fh:
        yield LineReader(fh, advance)


def _size(path: str) -> int:
    if path == "-":
        return 0
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0


def _readable(path: str) -> bool:
    """Whether ``path`` can be opened; prints why not (a directory, missing, no permission)."""
    try:
        with open(path, "rb"):
            return True
    except OSError as exc:
        print(f"error: {path}: {exc.strerror}", file=sys.stderr)
        return False


def _read(path: str, progress: _Progress | None) -> Iterator[str]:
    """Lines as text; invalid UTF-8 is replaced, never fatal."""
    if path == "-":
        stream = sys.stdin.buffer
        for raw in stream:
            yield raw.decode("utf-8", "replace")
        return
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below, generator-managed
    except OSError as exc:
        print(f"error: {path}: {exc.strerror}", file=sys.stderr)
        return
    with fh:
        for raw in fh:
            if progress is not None:
                progress.advance(len(raw))
            yield raw.decode("utf-8", "replace")


class _Progress:
    def __init__(self, total: int) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.next_draw = 0.0

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now >= self.next_draw:
            self.next_draw = now + PROGRESS_EVERY
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 40)
            sys.stderr.write(f"\r[{bar:<40}] {frac * 100:5.1f}%")
            sys.stderr.flush()

    def finish(self) -> None:
        sys.stderr.write("\r" + " " * 50 + "\r")
        sys.stderr.flush()
