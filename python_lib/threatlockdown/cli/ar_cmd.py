"""``tld ar list|history|block|unblock|simulate``: the active responses of a manager or runner home.

``list`` and ``history`` read the state file (queue/active-response/state.db); ``block`` and ``unblock``
go through the running engine's control socket, or, when none runs, are recorded in the state file and
carried out when the engine starts; ``simulate`` decides for alerts from a file and executes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import SourceErrors
from .common import add_home_option, home_from


def register(sub: Any) -> None:
    p = sub.add_parser(
        "ar",
        help="active responses: list, history, block, unblock, simulate",
        description="Inspect and steer the active-response engine of a manager (or tld runner) home.",
    )
    asub = p.add_subparsers(dest="ar_action", metavar="ACTION")
    asub.required = True

    lst = asub.add_parser("list", help="active responses: target, expiry, remaining time, offences")
    _common(lst)
    lst.set_defaults(func=_list)

    hist = asub.add_parser("history", help="what happened to responses (oldest first)")
    _common(hist)
    hist.add_argument("--since", metavar="WHEN", help="e.g. 1h, 30m, 2d, 2024-05-01, 2024-05-01T12:00")
    hist.add_argument("--limit", type=int, default=None, metavar="N", help="only the last N records")
    hist.set_defaults(func=_history)

    block = asub.add_parser(
        "block", help="apply a response by hand (validated and whitelisted like an alert's)"
    )
    _common(block)
    block.add_argument("--command", required=True, metavar="C", help="a <command> name of ossec.conf")
    block.add_argument("--target", required=True, metavar="HOST", help="inventory host")
    who = block.add_mutually_exclusive_group(required=True)
    who.add_argument("--srcip", metavar="IP")
    who.add_argument("--user", metavar="NAME")
    block.add_argument(
        "--timeout", type=int, default=None, metavar="S", help="seconds (default: until unblocked)"
    )
    block.set_defaults(func=_block)

    unblock = asub.add_parser("unblock", help="revert active responses by key or address")
    _common(unblock)
    unblock.add_argument("key", nargs="?", metavar="KEY", help="as shown by `tld ar list`")
    unblock.add_argument("--srcip", metavar="IP", help="every response on this address")
    unblock.add_argument("--target", metavar="HOST", help="with --srcip: only on this host")
    unblock.add_argument(
        "--forget",
        action="store_true",
        help="drop from the state without reverting (e.g. a host that is gone)",
    )
    unblock.set_defaults(func=_unblock)

    sim = asub.add_parser(
        "simulate", help="which responses alerts would trigger, where and why; runs nothing"
    )
    _common(sim)
    sim.add_argument(
        "alerts", metavar="ALERT_JSON_FILE", help="one alert object, a JSON array, or alerts.json lines"
    )
    sim.set_defaults(func=_simulate)


def _common(p: argparse.ArgumentParser) -> None:
    add_home_option(p)
    p.add_argument("--config", metavar="OSSEC_CONF", help="ossec.conf (default: HOME/etc/ossec.conf)")
    p.add_argument(
        "--inventory",
        metavar="INV",
        help="Ansible inventory (default: HOME/etc/inventory.yml, or <inventory>)",
    )
    p.add_argument("--json", action="store_true", help="JSON output")


def _layout(args: argparse.Namespace) -> Any:
    from ..response.build import layout_for

    return layout_for(home_from(args), args.config, args.inventory)


def _errors(exc: SourceErrors) -> int:
    for err in exc.errors:
        print(f"error: {err}", file=sys.stderr)
    return 1


def duration(seconds: float) -> str:
    s = round(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {s:02d}s"


def when(stamp: float | None) -> str:
    return "-" if stamp is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


# -- list ----------------------------------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    from ..response.control import ControlError, request
    from ..response.state import StateError, read_active

    layout = _layout(args)
    now = time.time()
    source = "engine"
    try:
        reply = request(layout.socket, {"command": "list"}, timeout=10.0)
        rows: list[dict[str, Any]] = list(reply.get("active", []))
    except ControlError:
        source = "state file"
        try:
            rows = [e.to_json(now) for e in read_active(layout.state)]
        except StateError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    rows.sort(key=lambda r: (r.get("expires") is None, r.get("expires") or 0, r["key"]))
    if args.json:
        print(json.dumps({"source": source, "active": rows}, indent=1))
        return 0
    if not rows:
        print(f"no active responses ({layout.state})")
        return 0
    header = ("KEY", "TARGET", "PHASE", "EXPIRES", "REMAINING", "OFFENCES", "ATTEMPTS", "LAST RESULT")
    table = [header]
    for r in rows:
        remaining = "until unblocked" if r.get("expires") is None else duration(max(0.0, r["expires"] - now))
        last = r.get("last_result") or "-"
        if r.get("last_message") and last not in ("ok",):
            last += f" ({r['last_message'][:60]})"
        table.append(
            (
                r["key"],
                r["target"],
                r["phase"],
                when(r.get("expires")),
                remaining,
                str(r.get("offences", 0)),
                str(r.get("attempts", 0)),
                last,
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for row in table:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])) + "  " + row[-1])
    print(f"{len(rows)} active response(s), from the {source}")
    return 0


# -- history -------------------------------------------------------------------------------------------


def parse_since(text: str, now: float) -> float:
    """An absolute or relative time ("1h" = an hour ago) as epoch seconds; ValueError if neither."""
    from ..response.settings import parse_duration

    relative = parse_duration(text)
    if relative is not None:
        return now - relative
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"--since {text!r}: expected e.g. 1h, 30m, 2d, 2024-05-01 or 2024-05-01T12:00"
        ) from None
    return parsed.timestamp()


def _history(args: argparse.Namespace) -> int:
    from ..response.state import StateError, read_history

    layout = _layout(args)
    try:
        since = parse_since(args.since, time.time()) if args.since else None
        rows = read_history(layout.state, since=since, limit=args.limit)
    except (ValueError, StateError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        for row in rows:
            print(json.dumps(row.to_json()))
        return 0
    for row in rows:
        detail = " ".join(f"{k}={v}" for k, v in row.detail.items() if v is not None)
        print(f"{when(row.time)}  {row.event:<18} {row.key or '-'}  {detail}".rstrip())
    if not rows:
        print("no history" + (f" since {when(since)}" if since else ""))
    return 0


# -- block / unblock -----------------------------------------------------------------------------------


def _send_or_record(args: argparse.Namespace, message: dict[str, Any]) -> int:
    from ..response.control import ControlError, request

    layout = _layout(args)
    try:
        reply = request(layout.socket, message, timeout=30.0)
        where = "the running engine"
    except ControlError:
        try:
            reply = asyncio.run(_offline(layout, message))
        except SourceErrors as exc:
            return _errors(exc)
        where = (
            f"the state file (no engine is running at {layout.home}); it is carried out when "
            "tld manager or tld runner starts"
        )
    if args.json:
        print(json.dumps({**reply, "via": where}))
        return 0 if reply.get("ok") else 1
    if not reply.get("ok"):
        print(f"error: {reply.get('error', 'refused')}", file=sys.stderr)
        return 1
    if "unblocked" in reply:
        for item in reply["unblocked"]:
            print(f"{item['key']}: {item['outcome']}")
    else:
        expiry = "until unblocked" if reply.get("expires") is None else f"until {when(reply['expires'])}"
        verb = "extended" if reply.get("outcome") == "refresh" else "blocking"
        print(f"{reply['key']}: {verb} {expiry}")
    print(f"(through {where})")
    return 0


async def _offline(layout: Any, message: dict[str, Any]) -> dict[str, Any]:
    from ..response.build import load_parts, offline_engine
    from ..response.engine import EngineError

    parts = await asyncio.to_thread(load_parts, layout)
    engine = await offline_engine(layout, parts)
    try:
        if message["command"] == "block":
            return await engine.block(
                message["command_name"],
                message["target"],
                srcip=message.get("srcip"),
                user=message.get("user"),
                timeout=message.get("timeout"),
            )
        return await engine.unblock(
            key=message.get("key"),
            srcip=message.get("srcip"),
            host=message.get("target"),
            forget=bool(message.get("forget")),
        )
    except EngineError as exc:
        return {"ok": False, "error": str(exc)}
    finally:
        engine.close_offline()


def _block(args: argparse.Namespace) -> int:
    return _send_or_record(
        args,
        {
            "command": "block",
            "command_name": args.command,
            "target": args.target,
            "srcip": args.srcip,
            "user": args.user,
            "timeout": args.timeout,
        },
    )


def _unblock(args: argparse.Namespace) -> int:
    if (args.key is None) == (args.srcip is None):
        print("error: give a KEY or --srcip IP", file=sys.stderr)
        return 2
    if args.target and not args.srcip:
        print("error: --target goes with --srcip", file=sys.stderr)
        return 2
    return _send_or_record(
        args,
        {
            "command": "unblock",
            "key": args.key,
            "srcip": args.srcip,
            "target": args.target,
            "forget": args.forget,
        },
    )


# -- simulate ------------------------------------------------------------------------------------------


def read_alerts(path: Path) -> list[Any]:
    """One JSON object, a JSON array of them, or one object per line (alerts.json)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        whole = json.loads(text)
    except ValueError:
        out = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not JSON ({exc.args[0]})") from None
        return out
    return whole if isinstance(whole, list) else [whole]


def _simulate(args: argparse.Namespace) -> int:
    from ..response.alertfacts import AlertShapeError, facts_from_alert
    from ..response.build import load_parts, protection_for
    from ..response.decisions import Decision, simulate_plan
    from ..response.policy import Policy
    from ..response.state import StateError, read_active, read_meta, read_offenders

    layout = _layout(args)
    try:
        alerts = read_alerts(Path(args.alerts))
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        parts = load_parts(layout)
        policy = Policy(
            parts.config,
            manager_host=parts.settings.manager_host,
            manager_mode=read_meta(layout.state, "mode") != "runner",
            agents=parts.agents,
        )
        active = {e.key: e for e in read_active(layout.state)}
        offenders = read_offenders(layout.state)
    except SourceErrors as exc:
        return _errors(exc)
    except StateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for warning in parts.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    protection = protection_for(parts)
    now = time.time()
    results: list[dict[str, Any]] = []
    for index, alert in enumerate(alerts, 1):
        entry: dict[str, Any] = {"index": index}
        if not isinstance(alert, dict):
            entry["error"] = "not a JSON object"
            results.append(entry)
            continue
        entry["alert_id"] = alert.get("id")
        try:
            facts = facts_from_alert(alert)
        except AlertShapeError as exc:
            entry["error"] = str(exc)
            results.append(entry)
            continue
        entry.update(
            rule_id=facts.rule_id, level=facts.level, agent=f"{facts.agent_id} {facts.agent_name}".strip()
        )
        entry["srcip"] = facts.srcip
        plan = policy.plan(facts, parts.inventory, protection)
        decisions = (
            simulate_plan(plan, active, offenders, now, parts.settings)
            if plan.bindings
            else [Decision("skipped", plan.unbound, rule_id=facts.rule_id)]
        )
        entry["decisions"] = [d.to_json() for d in decisions]
        results.append(entry)
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    for entry in results:
        head = f"alert {entry['index']}" + (f" ({entry['alert_id']})" if entry.get("alert_id") else "")
        if "error" in entry:
            print(f"{head}: unusable: {entry['error']}")
            continue
        srcip = f", srcip {entry['srcip']}" if entry.get("srcip") else ""
        print(f"{head}: rule {entry['rule_id']} level {entry['level']}, agent {entry['agent']}{srcip}")
        for d in entry["decisions"]:
            where = f" on {d['target']}" if d.get("target") else ""
            what = f" {d['command']}" if d.get("command") else ""
            print(f"  {d['outcome']:<8}{what}{where}: {d['reason']}")
            if d.get("block"):
                print(f"            <active-response> {d['block']}")
    return 0
