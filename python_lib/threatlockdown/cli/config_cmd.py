"""Placeholder until the engine lands (replaced in this session)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("config", help="(not ready yet)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    return 2
