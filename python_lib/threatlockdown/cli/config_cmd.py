"""``tld config check|show``: validate an ossec.conf, or print what ThreatLockDown reads from it.

``check`` is meant for Ansible's ``validate: tld config check %s``: it works on any file name,
prints one summary line when the file is valid (exit 0), and every error on stderr otherwise (exit 1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..config import OssecConfig, read_config, to_jsonable
from ..errors import SourceError

DEFAULT_HOME = "/var/ossec"


def register(sub: Any) -> None:
    parser = sub.add_parser("config", help="check or show an ossec.conf")
    actions = parser.add_subparsers(dest="config_command", metavar="ACTION")
    actions.required = True

    check = actions.add_parser("check", help="validate an ossec.conf; exit 1 and list every error if invalid")
    _add_path_options(check)
    check.set_defaults(func=run_check)

    show = actions.add_parser("show", help="print the configuration as ThreatLockDown reads it")
    _add_path_options(show)
    show.add_argument("--json", action="store_true", help="print the parsed model as JSON")
    show.set_defaults(func=run_show)


def _add_path_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", metavar="PATH", help="file to read (default: HOME/etc/ossec.conf)")
    parser.add_argument(
        "--home",
        metavar="DIR",
        help=f"install directory (default: $TLD_HOME, else {DEFAULT_HOME})",
    )


def config_path(path: str | None, home: str | None) -> Path:
    """PATH if given, else ossec.conf under --home, $TLD_HOME or /var/ossec (first one set)."""
    if path:
        return Path(path)
    base = home or os.environ.get("TLD_HOME") or DEFAULT_HOME
    return Path(base) / "etc" / "ossec.conf"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def summary(config: OssecConfig) -> str:
    """E.g. ``7 commands, 2 active responses, 3 localfiles, 1 remote``."""
    responses = _plural(len(config.active_responses), "active response")
    disabled = sum(1 for ar in config.active_responses if ar.disabled)
    if disabled:
        responses += f" ({disabled} disabled)"
    return ", ".join(
        (
            _plural(len(config.commands), "command"),
            responses,
            _plural(len(config.localfiles), "localfile"),
            _plural(len(config.remotes), "remote"),
        )
    )


def _read(args: argparse.Namespace) -> tuple[Path, OssecConfig | None]:
    path = config_path(args.path, args.home)
    config, errors = read_config(path)
    if config is None:
        _print_errors(errors)
    else:
        for info in config.infos:
            print(f"note: {info}", file=sys.stderr)
    return path, config


def _print_errors(errors: list[SourceError]) -> None:
    for error in errors:
        print(error, file=sys.stderr)
    print(_plural(len(errors), "error"), file=sys.stderr)


def run_check(args: argparse.Namespace) -> int:
    path, config = _read(args)
    if config is None:
        return 1
    print(f"{path}: OK ({summary(config)})")
    return 0


def run_show(args: argparse.Namespace) -> int:
    _, config = _read(args)
    if config is None:
        return 1
    if args.json:
        print(json.dumps(to_jsonable(config), indent=2))
    else:
        print(_describe(config))
    return 0


def _describe(config: OssecConfig) -> str:
    """A short human listing of what matters for detection and response."""
    lines = [f"{config.path}: {summary(config)}"]
    if config.global_.white_list:
        lines.append("white list: " + ", ".join(e.value for e in config.global_.white_list))
    for cmd in config.commands.values():
        timeout = "timeout allowed" if cmd.timeout_allowed else "no timeout"
        lines.append(f"command {cmd.name}: runs {cmd.executable} ({timeout})")
    for ar in config.active_responses:
        # Wazuh binds a rule when (level and group both match, or the one given matches) or its ID is listed.
        match = [f"level >= {ar.level}"] if ar.level else []
        if ar.rules_group:
            match.append(f"group {ar.rules_group}")
        when = [" and ".join(match)] if match else []
        if ar.rules_id:
            when.append("rules " + ",".join(map(str, ar.rules_id)))
        where = ",".join(sorted(ar.locations)) or "-"
        state = " [disabled]" if ar.disabled else ""
        lines.append(
            f"active response {ar.command or '-'} on {where} when {' or '.join(when) or 'never'}, "
            f"timeout {ar.timeout}s{state} (line {ar.line})"
        )
    for lf in config.localfiles:
        lines.append(f"localfile {lf.log_format}: {lf.location or lf.command}")
    for remote in config.remotes:
        lines.append(f"remote {remote.connection} on {remote.port}/{','.join(remote.protocol)}")
    return "\n".join(lines)
