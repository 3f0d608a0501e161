"""The internal log, logs/threatlockdown.log: the analogue of Wazuh's ossec.log."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

# The package logger: the daemon, the collectors and the transport all log below it.
PACKAGE_LOGGER = "threatlockdown"


class _Format(logging.Formatter):
    def __init__(self, program: str) -> None:
        super().__init__(f"%(asctime)s {program}: %(levelname)s: %(message)s", "%Y/%m/%d %H:%M:%S")


def setup_logging(path: Path, program: str, *, also_stderr: bool, debug: bool = False) -> logging.Logger:
    """Send the package's log records to ``path`` (and stderr); return the package logger.

    WatchedFileHandler reopens the file after logrotate moves it away."""
    path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger(PACKAGE_LOGGER)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    logger.propagate = False
    file_handler = logging.handlers.WatchedFileHandler(path, encoding="utf-8")
    file_handler.setFormatter(_Format(program))
    logger.addHandler(file_handler)
    if also_stderr:
        err = logging.StreamHandler(sys.stderr)
        err.setFormatter(_Format(program))
        logger.addHandler(err)
    return logger
