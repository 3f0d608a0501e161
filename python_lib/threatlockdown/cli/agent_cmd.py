"""``tld agent start|stop|restart|status|enroll|import-key``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from ..errors import SourceErrors
from ..manager import service
from ..manager.home import Home
from ..manager.process import Notify
from ..manager.sections import DEFAULT_AGENT_PORT, DEFAULT_ENROLLMENT_PORT, split_host_port
from .common import add_home_option, home_from


def register(sub: Any) -> None:
    p = sub.add_parser("agent", help="run the agent daemon", description="Run and control the agent daemon.")
    asub = p.add_subparsers(dest="action", metavar="ACTION")
    asub.required = True

    start = asub.add_parser("start", help="start the agent (in the background unless --foreground)")
    _daemon_options(start)
    start.set_defaults(func=_start)
    restart = asub.add_parser("restart", help="stop, then start in the background")
    _daemon_options(restart)
    restart.set_defaults(func=_restart)
    stop = asub.add_parser("stop", help="stop the agent (unsent events stay in its spool)")
    add_home_option(stop)
    stop.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (default 30)")
    stop.set_defaults(func=_stop)
    status = asub.add_parser("status", help="connection, spool and sources (exit 3: not running)")
    add_home_option(status)
    status.add_argument("--json", action="store_true", help="one JSON object")
    status.set_defaults(func=_status)

    enroll = asub.add_parser("enroll", help="get an ID and key from the manager's enrollment service")
    add_home_option(enroll)
    enroll.add_argument(
        "--manager", required=True, metavar="HOST[:PORT]", help="enrollment port default 1515"
    )
    enroll.add_argument("--name", required=True, help="agent name (letters, digits, '.', '_', '-')")
    enroll.add_argument("--password", help="enrollment password, if the manager requires one")
    enroll.add_argument(
        "--fingerprint", help="expected SHA-256 of the manager certificate (else trusted on first use)"
    )
    enroll.set_defaults(func=_enroll)

    imp = asub.add_parser("import-key", help="install a key line from 'tld manager agents add'")
    add_home_option(imp)
    imp.add_argument("key_line", metavar="'ID NAME IP KEY'")
    imp.add_argument("--fingerprint", required=True, help="the manager fingerprint printed with the key")
    imp.set_defaults(func=_import_key)


def _daemon_options(p: argparse.ArgumentParser) -> None:
    add_home_option(p)
    p.add_argument("--foreground", action="store_true", help="stay in the foreground (systemd, tests)")
    p.add_argument(
        "--manager", metavar="HOST[:PORT]", help="manager address (default: <client><server> in ossec.conf)"
    )
    p.add_argument("--timeout", type=float, default=30.0, help=argparse.SUPPRESS)


def _home(args: argparse.Namespace) -> Home:
    return Home(home_from(args).resolve(), "agent")


def _serve(home: Home, args: argparse.Namespace) -> service.Serve | None:
    manager = None
    if args.manager:
        try:
            manager = split_host_port(args.manager, DEFAULT_AGENT_PORT)
        except ValueError as exc:
            print(f"error: --manager {exc}", file=sys.stderr)
            return None

    def serve(notify: Notify, foreground: bool) -> int:
        from ..agent.daemon import AgentDaemon
        from ..manager.logfile import setup_logging

        logger = setup_logging(home.internal_log, "tld-agent", also_stderr=foreground)
        daemon = AgentDaemon(home, manager=manager, logger=logger.getChild("agent"))
        return asyncio.run(daemon.run(notify))

    return serve


def _start(args: argparse.Namespace) -> int:
    home = _home(args)
    serve = _serve(home, args)
    return 2 if serve is None else service.start(home, serve, foreground=args.foreground)


def _restart(args: argparse.Namespace) -> int:
    home = _home(args)
    serve = _serve(home, args)
    return 2 if serve is None else service.restart(home, serve, timeout=args.timeout)


def _stop(args: argparse.Namespace) -> int:
    return service.stop(_home(args), timeout=args.timeout)


def _status(args: argparse.Namespace) -> int:
    from ..agent.status import agent_status_text

    return service.status(_home(args), as_json=args.json, show=agent_status_text)


def _enroll(args: argparse.Namespace) -> int:
    from ..transport import TransportError, enroll

    home = _home(args)
    try:
        host, port = split_host_port(args.manager, DEFAULT_ENROLLMENT_PORT)
        result = asyncio.run(enroll(home.root, host, port, args.name, args.password, args.fingerprint))
    except (ValueError, TransportError, OSError, TimeoutError) as exc:
        print(f"error: enrollment with {args.manager} failed: {exc}", file=sys.stderr)
        return 1
    a = result.agent
    print(f"enrolled as agent {a.id} ({a.name}); manager fingerprint {result.fingerprint}")
    print(f"key and fingerprint written to {home.etc}/client.keys and {home.etc}/manager.fingerprint")
    return 0


def _import_key(args: argparse.Namespace) -> int:
    from ..transport import AgentKey, write_agent_files

    home = _home(args)
    fields = args.key_line.split()
    if len(fields) != 4:
        print("error: the key line must be 'ID NAME IP KEY' (four fields)", file=sys.stderr)
        return 2
    try:
        write_agent_files(home.root, AgentKey(*fields), args.fingerprint)
    except (ValueError, SourceErrors, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"agent {fields[0]} ({fields[1]}): key written to {home.etc}/client.keys")
    return 0
