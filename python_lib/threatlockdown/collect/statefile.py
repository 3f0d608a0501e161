"""Small JSON state files written atomically, so a crash leaves the old or the new version, never half."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from ..errors import SourceError


def write_json_atomic(path: Path, data: Any) -> None:
    """Replace ``path`` with ``data`` as JSON: temporary file, fsync, rename, fsync of the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True, ensure_ascii=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class StateFileError(Exception):
    def __init__(self, problem: SourceError) -> None:
        self.problem = problem
        super().__init__(str(problem))


def read_json_state(path: Path, element: str) -> Any | None:
    """The JSON in ``path``, or None when there is no file; StateFileError when it is unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise StateFileError(SourceError(str(path), None, element, f"cannot read: {exc}")) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise StateFileError(SourceError(str(path), exc.lineno, element, f"invalid JSON: {exc.msg}")) from exc


def set_aside(path: Path, problem: SourceError, logger: logging.Logger) -> None:
    """Keep an unusable state file for inspection and carry on without it."""
    aside = path.with_name(f"{path.name}.bad-{int(time.time())}")
    with contextlib.suppress(OSError):
        os.replace(path, aside)
    logger.error("%s; moved to %s, starting without it", problem, aside)
