"""``start``, ``restart``, ``stop`` and ``status``: the actions ``tld manager`` and ``tld agent`` share."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..manager import service
from ..manager.home import Home
from .common import add_home_option, home_from


@dataclass(frozen=True)
class DaemonActions:
    role: str  # the home's role: "manager" or "agent"
    start_help: str
    stop_help: str
    status_help: str
    stop_timeout: float  # default seconds that stop (and the stop of restart) waits
    add_serve_options: Callable[[argparse.ArgumentParser], None]  # the daemon's own start options
    # How to run the daemon with the parsed options; None when they are wrong (already reported).
    serve: Callable[[Home, argparse.Namespace], service.Serve | None]
    status_text: Callable[[dict[str, Any]], str]

    def home(self, args: argparse.Namespace) -> Home:
        return Home(home_from(args).resolve(), self.role)


def add_daemon_actions(sub: Any, actions: DaemonActions) -> None:
    """Add the four actions to the daemon command's sub-parsers ``sub``."""
    start = sub.add_parser("start", help=actions.start_help)
    _serve_options(start, actions)
    start.set_defaults(func=lambda args: _start(actions, args))
    restart = sub.add_parser("restart", help="stop, then start in the background")
    _serve_options(restart, actions)
    restart.set_defaults(func=lambda args: _restart(actions, args))
    stop = sub.add_parser("stop", help=actions.stop_help)
    add_home_option(stop)
    stop.add_argument(
        "--timeout",
        type=float,
        default=actions.stop_timeout,
        help=f"seconds to wait (default {actions.stop_timeout:g})",
    )
    stop.set_defaults(func=lambda args: service.stop(actions.home(args), timeout=args.timeout))
    status = sub.add_parser("status", help=actions.status_help)
    add_home_option(status)
    status.add_argument("--json", action="store_true", help="one JSON object")
    status.set_defaults(
        func=lambda args: service.status(actions.home(args), as_json=args.json, show=actions.status_text)
    )


def _serve_options(p: argparse.ArgumentParser, actions: DaemonActions) -> None:
    add_home_option(p)
    p.add_argument("--foreground", action="store_true", help="stay in the foreground (systemd, tests)")
    actions.add_serve_options(p)
    # restart stops first; start accepts it too so both take the same options.
    p.add_argument("--timeout", type=float, default=actions.stop_timeout, help=argparse.SUPPRESS)


def _start(actions: DaemonActions, args: argparse.Namespace) -> int:
    home = actions.home(args)
    serve = actions.serve(home, args)
    return 2 if serve is None else service.start(home, serve, foreground=args.foreground)


def _restart(actions: DaemonActions, args: argparse.Namespace) -> int:
    home = actions.home(args)
    serve = actions.serve(home, args)
    return 2 if serve is None else service.restart(home, serve, timeout=args.timeout)
