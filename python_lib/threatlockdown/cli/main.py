"""Entry point of the ``tld`` command."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .. import __version__

# Each module has ``register(subparsers)`` which adds its parser and sets ``func``.
_COMMAND_MODULES = (
    "threatlockdown.cli.config_cmd",
    "threatlockdown.cli.logtest_cmd",
    "threatlockdown.cli.analyze_cmd",
    "threatlockdown.cli.lab_cmd",
    "threatlockdown.cli.manager_cmd",
    "threatlockdown.cli.agent_cmd",
    "threatlockdown.cli.ar_cmd",
    "threatlockdown.cli.runner_cmd",
    "threatlockdown.cli.demo_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tld",
        description="ThreatLockDown: Wazuh-compatible detection and active response through Ansible.",
    )
    parser.add_argument("--version", action="version", version=f"tld {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    return rc


if __name__ == "__main__":
    sys.exit(main())
