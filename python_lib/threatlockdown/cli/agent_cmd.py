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
from .common import add_home_option
from .daemon_actions import DaemonActions, add_daemon_actions


def register(sub: Any) -> None:
    p = sub.add_parser("agent", help="run the agent daemon", description="Run and control the agent daemon.")
    asub = p.add_subparsers(dest="action", metavar="ACTION")
    asub.required = True
    add_daemon_actions(asub, ACTIONS)

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


def _manager_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--manager", metavar="HOST[:PORT]", help="manager address (default: <client><server> in ossec.conf)"
    )


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


def _status_text(status: dict[str, Any]) -> str:
    # Imported here: the agent package loads the whole daemon, which other `tld` commands do not need.
    from ..agent.status import agent_status_text

    return agent_status_text(status)


ACTIONS = DaemonActions(
    role="agent",
    start_help="start the agent (in the background unless --foreground)",
    stop_help="stop the agent (unsent events stay in its spool)",
    status_help="connection, spool and sources (exit 3: not running)",
    stop_timeout=30.0,
    add_serve_options=_manager_option,
    serve=_serve,
    status_text=_status_text,
)


def _enroll(args: argparse.Namespace) -> int:
    from ..transport import TransportError, enroll

    home = ACTIONS.home(args)
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

    home = ACTIONS.home(args)
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
