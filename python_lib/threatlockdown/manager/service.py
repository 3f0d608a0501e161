"""start/stop/restart/status/reload of a daemon (manager or agent), shared by both CLIs."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

from .control import ControlError, control_request
from .home import Home
from .process import Notify, daemonize, running_pid, stop_pid, wait_released

# LSB exit status of "status" for a daemon that is not running.
NOT_RUNNING = 3

Serve = Callable[[Notify, bool], int]  # (notify, foreground) -> exit status


def start(home: Home, serve: Serve, *, foreground: bool) -> int:
    pid = running_pid(home.pidfile)
    if pid is not None:
        print(f"error: tld {home.role} already running (pid {pid}, home {home.root})", file=sys.stderr)
        return 1
    if foreground:
        return serve(lambda _error: None, True)
    home.logs.mkdir(parents=True, exist_ok=True)
    rc = daemonize(lambda notify: serve(notify, False), home.internal_log)
    if rc == 0:
        print(f"tld {home.role} started (pid {running_pid(home.pidfile)}, home {home.root})")
    return rc


def stop(home: Home, *, timeout: float) -> int:
    pid = running_pid(home.pidfile)
    if pid is None:
        print(f"tld {home.role} is not running (home {home.root})")
        return 0
    try:
        control_request(home.control_socket, "stop", timeout=5.0)
        stopped = wait_released(home.pidfile, timeout)
    except ControlError:
        stopped = pid > 0 and stop_pid(pid, home.pidfile, timeout)
    if not stopped:
        print(f"error: tld {home.role} (pid {pid}) did not stop within {timeout:.0f} s", file=sys.stderr)
        return 1
    print(f"tld {home.role} stopped (pid {pid})")
    return 0


def restart(home: Home, serve: Serve, *, timeout: float) -> int:
    rc = stop(home, timeout=timeout)
    if rc != 0:
        return rc
    return start(home, serve, foreground=False)


def reload(home: Home) -> int:
    try:
        reply = control_request(home.control_socket, "reload", timeout=120.0)
    except ControlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if reply.get("ok"):
        print(f"tld {home.role} reloaded ({', '.join(reply.get('changed', []))})")
        return 0
    for err in reply.get("errors", []) or [reply.get("error", "reload failed")]:
        print(f"error: {err}", file=sys.stderr)
    print("the running configuration was kept", file=sys.stderr)
    return 1


def status(home: Home, *, as_json: bool, show: Callable[[dict[str, Any]], str]) -> int:
    if running_pid(home.pidfile) is None:
        if as_json:
            print(json.dumps({"running": False, "home": str(home.root)}))
        else:
            print(f"tld {home.role} is not running (home {home.root})")
        return NOT_RUNNING
    try:
        reply = control_request(home.control_socket, "status", timeout=10.0)
    except ControlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    reply.pop("ok", None)
    if as_json:
        print(json.dumps({"running": True, **reply}, indent=1, sort_keys=True))
    else:
        print(show(reply), end="")
    return 0


def duration(seconds: float) -> str:
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    text = f"{hours}h {minutes:02d}m {s:02d}s" if hours or days else f"{minutes}m {s:02d}s"
    return f"{days}d {text}" if days else text


def when(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))
