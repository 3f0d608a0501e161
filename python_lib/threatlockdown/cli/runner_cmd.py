"""``tld runner``: ThreatLockDown's responses for a real Wazuh manager.

Follows the manager's alerts.json (resuming from the saved position), decides with the same engine as
``tld manager`` (ossec.conf's <active-response> blocks, whitelist, timeouts, repeated offenders) and
runs the responses through Ansible. Runs in the foreground (systemd, containers); SIGTERM or SIGINT
stops it gracefully, SIGHUP re-reads ossec.conf, etc/response.xml's inventory and client.keys.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import Any

from ..errors import SourceErrors
from .common import add_home_option, home_from


def register(sub: Any) -> None:
    p = sub.add_parser(
        "runner",
        help="apply active responses for a Wazuh manager's alerts.json",
        description=(
            "Tail a Wazuh manager's alerts.json and apply ThreatLockDown's active-response engine to it. "
            "State, audit logs and the control socket live under --home."
        ),
    )
    add_home_option(p)
    p.add_argument(
        "--alerts",
        required=True,
        metavar="PATH",
        help="alerts.json (e.g. /var/ossec/logs/alerts/alerts.json)",
    )
    p.add_argument(
        "--config", metavar="OSSEC_CONF", help="ossec.conf with the responses (default: HOME/etc/ossec.conf)"
    )
    p.add_argument("--inventory", metavar="INV", help="Ansible inventory (default: HOME/etc/inventory.yml)")
    p.add_argument(
        "--from-start",
        action="store_true",
        help="on the very first run read alerts.json from its beginning (default: only new alerts)",
    )
    p.add_argument(
        "--executor",
        choices=("ansible", "none"),
        default="ansible",
        help="how responses run: through ansible-runner (default), or not at all (dry run)",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..manager.logfile import setup_logging
    from ..manager.process import AlreadyRunning, PidFile
    from ..response.build import layout_for

    home = home_from(args).resolve()
    layout = layout_for(home, args.config, args.inventory)
    logger = setup_logging(home / "logs" / "runner.log", "tld-runner", also_stderr=True).getChild("runner")
    pidfile = PidFile(home / "var" / "run" / "tld-runner.pid")
    try:
        pidfile.acquire()
    except (AlreadyRunning, OSError) as exc:
        print(f"error: tld runner {exc}", file=sys.stderr)
        return 1
    try:
        return asyncio.run(_serve(layout, Path(args.alerts), args, logger))
    finally:
        pidfile.release()


async def _serve(layout: Any, alerts: Path, args: argparse.Namespace, logger: Any) -> int:
    from ..response.alerts_follower import AlertsFollower
    from ..response.build import build_engine, executor_for, load_parts, protection_for
    from ..response.control import ResponseControlServer

    try:
        executor = executor_for(args.executor, layout, logger)
        engine = await build_engine(layout, executor, manager_mode=False, logger=logger)
    except SourceErrors as exc:
        for err in exc.errors:
            print(f"error: {err}", file=sys.stderr)
        return 1
    except (OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    await engine.start()
    control = ResponseControlServer(layout.socket, engine, logger)
    try:
        await control.start()
    except OSError as exc:
        logger.error("control socket not available (tld ar block/unblock will use the state file): %s", exc)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def reload() -> None:
        try:
            parts = await asyncio.to_thread(load_parts, layout, settings=engine.settings)
            protection = await asyncio.to_thread(protection_for, parts, logger)
        except SourceErrors as exc:
            for err in exc.errors:
                logger.error("reload refused: %s", err)
            return
        engine.reload(parts.config, parts.inventory, protection, parts.agents)
        logger.info(
            "reloaded: %d blocks bound, %d inventory hosts",
            len(engine.policy.bindings),
            len(parts.inventory.hosts),
        )

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(reload()))
    follower = AlertsFollower(
        alerts, engine, layout.runner_positions, read_existing=args.from_start, logger=logger
    )
    logger.info(
        "following %s: %d blocks bound, %d inventory hosts, executor %s",
        alerts,
        len(engine.policy.bindings),
        len(engine.inventory.hosts),
        args.executor,
    )
    rc = 0
    try:
        await follower.run(stop)
    except Exception as exc:
        logger.error("stopped: %s", exc)
        rc = 1
    finally:
        await control.close()
        await engine.stop()
        logger.info("stopped after %d alerts", follower.stats.alerts)
    return rc
