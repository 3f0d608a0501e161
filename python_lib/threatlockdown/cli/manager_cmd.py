"""``tld manager start|stop|restart|status|reload`` and ``tld manager agents add|list``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from ..errors import SourceErrors
from ..manager import service
from ..manager.home import Home
from ..manager.process import Notify
from ..manager.statustext import manager_status_text

# The daemon is imported only by the commands that run it, so other `tld` commands start fast.
from .common import add_home_option
from .daemon_actions import DaemonActions, add_daemon_actions


def register(sub: Any) -> None:
    p = sub.add_parser(
        "manager", help="run the manager daemon", description="Run and control the manager daemon."
    )
    msub = p.add_subparsers(dest="action", metavar="ACTION")
    msub.required = True

    add_daemon_actions(msub, ACTIONS)
    reload = msub.add_parser("reload", help="re-read ossec.conf and the ruleset (same as SIGHUP)")
    add_home_option(reload)
    reload.set_defaults(func=_reload)

    agents = msub.add_parser("agents", help="agent keys (etc/client.keys)")
    asub = agents.add_subparsers(dest="agents_action", metavar="ACTION")
    asub.required = True
    add = asub.add_parser("add", help="add an agent and print its key line and the manager fingerprint")
    add_home_option(add)
    add.add_argument("name")
    add.add_argument("--ip", default="any", help="address or network the agent connects from (default any)")
    add.set_defaults(func=_agents_add)
    lst = asub.add_parser("list", help="list the agents in etc/client.keys")
    add_home_option(lst)
    lst.set_defaults(func=_agents_list)


def _queue_size_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--queue-size",
        type=int,
        default=None,
        metavar="N",
        help="events the analysis queue holds (default 16384)",
    )


def _serve(home: Home, args: argparse.Namespace) -> service.Serve | None:
    def serve(notify: Notify, foreground: bool) -> int:
        from ..manager.daemon import DaemonOptions, ManagerDaemon
        from ..manager.logfile import setup_logging

        logger = setup_logging(home.internal_log, "tld-manager", also_stderr=foreground)
        options = (
            DaemonOptions() if args.queue_size is None else DaemonOptions(queue_size=max(1, args.queue_size))
        )
        from ..response.build import executor_for
        from ..response.sink import ResponseSink

        # The active-response engine runs inside the manager, on every alert (see response/sink.py).
        response_log = logger.getChild("response")
        responses = ResponseSink(home.root, lambda layout: executor_for("ansible", layout, response_log))
        daemon = ManagerDaemon(home, options=options, sinks=[responses], logger=logger.getChild("manager"))
        return asyncio.run(daemon.run(notify))

    return serve


ACTIONS = DaemonActions(
    role="manager",
    start_help="start the daemon (in the background unless --foreground)",
    stop_help="stop gracefully: queued events analysed, positions saved",
    status_help="uptime, events, alerts, queue, agents (exit 3: not running)",
    stop_timeout=60.0,
    add_serve_options=_queue_size_option,
    serve=_serve,
    status_text=manager_status_text,
)


def _reload(args: argparse.Namespace) -> int:
    return service.reload(ACTIONS.home(args))


def _agents_add(args: argparse.Namespace) -> int:
    from ..transport import DuplicateAgentError, add_agent, ensure_manager_identity

    home = ACTIONS.home(args)
    try:
        line = add_agent(home.root, args.name, ip=args.ip)
        fingerprint = ensure_manager_identity(home.root).fingerprint
    except (DuplicateAgentError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except SourceErrors as exc:
        for err in exc.errors:
            print(f"error: {err}", file=sys.stderr)
        return 1
    print(line)
    print(f"manager fingerprint: {fingerprint}")
    print(
        "on the agent: tld agent import-key --home DIR --fingerprint FINGERPRINT 'ID NAME IP KEY'",
        file=sys.stderr,
    )
    return 0


def _agents_list(args: argparse.Namespace) -> int:
    from ..transport import read_client_keys

    home = ACTIONS.home(args)
    path = home.etc / "client.keys"
    try:
        keys = read_client_keys(path, missing_ok=True)
    except SourceErrors as exc:
        for err in exc.errors:
            print(f"error: {err}", file=sys.stderr)
        return 1
    if not keys.agents:
        print(f"no agents in {path}")
        return 0
    print(f"{'ID':<8} {'NAME':<32} IP")
    for a in keys.agents:
        print(f"{a.id:<8} {a.name:<32} {a.ip}")
    return 0
