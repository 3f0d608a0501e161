"""From the <localfile> and <remote> blocks of ossec.conf to the collectors the daemon runs."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from ..config.model import LocalFile, Remote
from ..errors import SourceError, SourceErrors
from .access import SenderPolicy
from .event import Collector
from .formats import file_format
from .journald import JournaldCollector, filter_groups
from .positions import PositionStore
from .syslog_receiver import SyslogReceiver
from .tailer import FileClaims, FileTailer

JOURNALD = "journald"


def build_collectors(
    localfiles: Iterable[LocalFile],
    remotes: Iterable[Remote],
    *,
    state_dir: Path,
    logger: logging.Logger,
) -> list[Collector]:
    """One collector per file location, one for the journal, one per syslog <remote>.

    Raises SourceErrors naming file, line and element for blocks that cannot be collected as written;
    blocks for sources the manager does not collect (commands, agents, ...) are logged and skipped.
    """
    problems: list[SourceError] = []
    collectors: list[Collector] = []
    state_dir.mkdir(parents=True, exist_ok=True)
    store = PositionStore(state_dir, logger)
    claims = FileClaims()
    seen_locations: dict[str, LocalFile] = {}
    journal_blocks: list[LocalFile] = []

    for lf in localfiles:
        if lf.log_format == JOURNALD:
            journal_blocks.append(lf)
            continue
        fmt = file_format(lf.log_format, lf.multiline_lines)
        if fmt is None:
            logger.warning(
                "%s: <log_format>: %r is not collected by the manager; <localfile> ignored",
                _where(lf.path, lf.line),
                lf.log_format,
            )
            continue
        location = lf.location
        if location is None or not location.strip():
            problems.append(SourceError(lf.path, lf.line, "location", "missing: the file to read"))
            continue
        if not os.path.isabs(location):
            problems.append(
                SourceError(lf.path, lf.line, "location", f"{location!r} is not an absolute path")
            )
            continue
        first = seen_locations.setdefault(location, lf)
        if first is not lf:
            logger.warning(
                "%s: <location>: %s is already read by the <localfile> at line %s; duplicate ignored",
                _where(lf.path, lf.line),
                location,
                first.line,
            )
            continue
        collectors.append(
            FileTailer(
                location=location,
                fmt=fmt,
                store=store,
                logger=logger,
                claims=claims,
                read_existing=lf.other.get("only-future-events", "yes") == "no",
                # Repeated <exclude> elements arrive joined with ','.
                exclude=[p for p in lf.other.get("exclude", "").split(",") if p],
            )
        )

    if journal_blocks:
        try:
            groups = filter_groups(journal_blocks)
        except SourceErrors as exc:
            problems.extend(exc.errors)
        else:
            collectors.append(
                JournaldCollector(
                    groups=groups,
                    state_dir=state_dir,
                    logger=logger,
                    read_existing=any(lf.other.get("only-future-events") == "no" for lf in journal_blocks),
                )
            )

    listeners: dict[tuple[int, str], Remote] = {}
    for remote in remotes:
        if remote.connection != "syslog":
            logger.warning(
                "%s: <connection>: %r (agent connections) is not handled by the collectors; <remote> ignored",
                _where(remote.path, remote.line),
                remote.connection,
            )
            continue
        clash = [(remote.port, p) for p in remote.protocol if (remote.port, p) in listeners]
        if clash:
            other = listeners[clash[0]]
            problems.append(
                SourceError(
                    remote.path,
                    remote.line,
                    "port",
                    f"{remote.port}/{clash[0][1]} is already used by the <remote> at line {other.line}",
                )
            )
            continue
        try:
            policy = SenderPolicy.from_config(
                remote.allowed_ips, remote.denied_ips, path=remote.path, line=remote.line
            )
        except SourceErrors as exc:
            problems.extend(exc.errors)
            continue
        listeners.update(((remote.port, p), remote) for p in remote.protocol)
        collectors.append(
            SyslogReceiver(
                port=remote.port,
                protocols=remote.protocol,
                policy=policy,
                logger=logger,
                local_ip=remote.local_ip,
                origin=_where(remote.path, remote.line),
            )
        )

    if problems:
        raise SourceErrors(problems)
    return collectors


def _where(path: str, line: int | None) -> str:
    return f"{path}:{line}" if line else path
