"""``tld logtest``: test log lines against the ruleset, like wazuh-logtest.

All lines of one invocation share a session, so frequency rules work across lines.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from ..analysis.alert import describe, rule_object
from ..analysis.session import AnalysisSession, ProcessResult
from .common import add_ruleset_options, load_for_cli, new_session


def register(sub: Any) -> None:
    p = sub.add_parser(
        "logtest",
        help="test log lines (stdin, one per line) against the ruleset",
        description="Read events from stdin, one per line, and show pre-decoding, decoding and the "
        "matching rule. Lines share one session, so frequency rules fire across lines.",
    )
    add_ruleset_options(p)
    p.add_argument(
        "--json",
        action="store_true",
        help='print one alerts.json-shaped object per line, plus "alert": true|false',
    )
    p.add_argument(
        "-U",
        "--ut",
        metavar="RULE:LEVEL:DECODER",
        help="exit 0 only if the last event produced exactly this rule id, level and decoder",
    )
    p.add_argument("-l", "--location", default="stdin", help="location reported for the events (stdin)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing; useful with -U")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    loaded = load_for_cli(args)
    if loaded is None:
        return 1
    session = new_session(*loaded)
    interactive = sys.stdin.isatty() and not args.json and not args.quiet
    if interactive:
        print("ThreatLockDown logtest. Type one log line per line; Ctrl-D to quit.\n")
    last: ProcessResult | None = None
    for raw in _lines(sys.stdin, interactive):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        last = session.process(line, args.location)
        if args.quiet:
            continue
        if args.json:
            out = last.output()
            out["alert"] = last.alert
            print(json.dumps(out, ensure_ascii=False), flush=True)
        else:
            _print_human(last, session, sys.stdout)
    if args.ut:
        return _check_expected(args.ut, last)
    return 0


def _lines(stream: TextIO, interactive: bool) -> Any:
    if not interactive:
        # Bytes, decoded here: invalid UTF-8 in a log line is replaced (as tld analyze does) instead of
        # ending the run with a UnicodeDecodeError or echoing lone surrogates into the JSON output.
        buffer = getattr(stream, "buffer", None)
        if buffer is None:
            yield from stream
            return
        for raw in buffer:
            yield raw.decode("utf-8", "replace")
        return
    while True:
        try:
            yield input("> ")
        except EOFError:
            print()
            return


def _check_expected(expected: str, result: ProcessResult | None) -> int:
    parts = expected.split(":")
    if len(parts) != 3:
        print(f"error: -U wants RULE:LEVEL:DECODER, got {expected!r}", file=sys.stderr)
        return 2
    if result is None or result.rule is None:
        return 1
    got = (result.rule.id, str(result.rule.level), result.event.decoder_name)
    return 0 if got == tuple(parts) else 1


def _print_human(result: ProcessResult, session: AnalysisSession, out: TextIO) -> None:
    ev = result.event
    w = out.write
    w("**Phase 1: Completed pre-decoding.\n")
    w(f"\tfull event: '{ev.full_log}'\n")
    for name in ("timestamp", "hostname", "program_name"):
        value = getattr(ev, name)
        if value:
            w(f"\t{name}: '{value}'\n")
    w("\n**Phase 2: Completed decoding.\n")
    if not ev.decoder_name:
        w("\tNo decoder matched.\n")
    else:
        w(f"\tname: '{ev.decoder_name}'\n")
        if ev.decoder_parent:
            w(f"\tparent: '{ev.decoder_parent}'\n")
        for key in sorted(ev.fields):
            w(f"\t{key}: '{ev.fields[key]}'\n")
    rule = result.rule
    if rule is not None:
        w("\n**Phase 3: Completed filtering (rules).\n")
        obj = rule_object(rule, result.match, ev)
        w(f"\tid: '{rule.id}'\n\tlevel: '{rule.level}'\n\tdescription: '{describe(rule, ev)}'\n")
        w(f"\tgroups: {obj.get('groups', [])}\n")
        if "firedtimes" in obj:
            w(f"\tfiredtimes: '{obj['firedtimes']}'\n")
        rest = {
            k: v for k, v in obj.items() if k not in ("id", "level", "description", "groups", "firedtimes")
        }
        for key, value in sorted(_flat(rest)):
            w(f"\t{key}: {value}\n")
        if result.alert:
            w("**Alert to be generated.\n")
    w("\n")
    out.flush()


def _flat(obj: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    items: list[tuple[str, str]] = []
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            items.extend(_flat(value, f"{name}."))
        elif isinstance(value, bool):
            items.append((name, f"'{str(value).lower()}'"))
        else:
            items.append((name, repr(value) if isinstance(value, list) else f"'{value}'"))
    return items
