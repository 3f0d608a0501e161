"""<log_format>journald</log_format>: following the systemd journal through ``journalctl -o json``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config.model import LocalFile
from ..errors import SourceError, SourceErrors
from .acks import AckTracker
from .event import RawEvent, cut_text
from .lines import LineSplitter
from .ratelimit import LogLimiter
from .statefile import StateFileError, read_json_state, set_aside, write_json_atomic

CURSOR_FILE = "journald_cursor.json"
_FORMAT = "threatlockdown-journald-cursor"
_MAX_RECORD_BYTES = 4 * 1024 * 1024  # journalctl --all may print large fields; a record is cut here
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_LITERAL = re.compile(r"\^((?:[^\\.^$*+?{}\[\]|()]|\\[^A-Za-z0-9])*)\$")


@dataclass(frozen=True, slots=True)
class FieldFilter:
    """<filter field="F">regex</filter>: the field's value must match (searched, like Wazuh's PCRE2)."""

    field: str
    pattern: re.Pattern[str]
    ignore_if_missing: bool = False

    def matches(self, record: Mapping[str, Any]) -> bool:
        value = field_text(record.get(self.field))
        if value is None:
            return self.ignore_if_missing
        return self.pattern.search(value) is not None

    def literal(self) -> str | None:
        """The one value an anchored literal pattern (``^sshd\\.service$``) accepts, else None."""
        m = _LITERAL.fullmatch(self.pattern.pattern)
        return None if m is None else re.sub(r"\\(.)", r"\1", m.group(1))


@dataclass(frozen=True, slots=True)
class FilterGroup:
    """The filters of one <localfile>: all must match."""

    filters: tuple[FieldFilter, ...]

    def matches(self, record: Mapping[str, Any]) -> bool:
        return all(f.matches(record) for f in self.filters)


def filter_groups(localfiles: Iterable[LocalFile]) -> tuple[FilterGroup, ...]:
    """One group per journald <localfile>; a record is read when any group matches.

    Wazuh reads the journal once for all journald blocks and sends a record when one block's
    filters all match; a block without filters takes everything (then no group is returned).
    """
    groups: list[FilterGroup] = []
    problems: list[SourceError] = []
    for lf in localfiles:
        if not lf.filters:
            return ()
        missing_ok = set(filter(None, lf.other.get("ignore_if_missing", "").split(",")))
        filters: list[FieldFilter] = []
        for name, pattern in lf.filters:
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                problems.append(SourceError(lf.path, lf.line, "filter", f"invalid regex {pattern!r}: {exc}"))
                continue
            filters.append(FieldFilter(name, compiled, name in missing_ok))
        groups.append(FilterGroup(tuple(filters)))
    if problems:
        raise SourceErrors(problems)
    return tuple(groups)


def journalctl_matches(groups: Sequence[FilterGroup]) -> list[str]:
    """FIELD=VALUE arguments that let journalctl pre-filter: only for one group of anchored literals.

    journalctl ANDs different fields and ORs values of one field, which is not what several
    <localfile> blocks or real regexes mean; those are filtered here only.
    """
    if len(groups) != 1:
        return []
    matches: list[str] = []
    fields: set[str] = set()
    for f in groups[0].filters:
        value = f.literal()
        if value is None or f.ignore_if_missing or f.field in fields:
            return []
        fields.add(f.field)
        matches.append(f"{f.field}={value}")
    return matches


def field_text(value: Any) -> str | None:
    """A journal field as text: journalctl prints binary values as byte lists, repeated ones as lists."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value:
        if all(isinstance(b, int) and 0 <= b < 256 for b in value):
            return bytes(value).decode("utf-8", errors="replace")
        return field_text(value[0])  # a repeated field: the first value, like sd_journal_get_data
    return None


def syslog_line(record: Mapping[str, Any]) -> str | None:
    """Wazuh's text for a journal entry: ``Mon DD HH:MM:SS host ident[pid]: message`` (UTC).

    None when a field it needs is missing (Wazuh skips such entries).
    """
    host = field_text(record.get("_HOSTNAME"))
    ident = field_text(record.get("SYSLOG_IDENTIFIER"))
    message = field_text(record.get("MESSAGE"))
    if host is None or ident is None or message is None:
        return None
    pid = field_text(record.get("SYSLOG_PID")) or field_text(record.get("_PID"))
    usec = field_text(record.get("__REALTIME_TIMESTAMP"))
    seconds = int(usec) // 1_000_000 if usec and usec.isdigit() else int(time.time())
    t = time.gmtime(seconds)
    stamp = f"{_MONTHS[t.tm_mon - 1]} {t.tm_mday:02d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    return f"{stamp} {host} {ident}{f'[{pid}]' if pid else ''}: {message}"


class CursorStore:
    """The acked journal cursor (journald_cursor.json under the state directory)."""

    def __init__(self, state_dir: Path, logger: logging.Logger) -> None:
        self.path = state_dir / CURSOR_FILE
        self._logger = logger
        self._limiter = LogLimiter(logger)
        self._saved: str | None = None
        self._commit: int | None = None

    def load(self) -> str | None:
        try:
            data = read_json_state(self.path, "journald_cursor")
        except StateFileError as exc:
            set_aside(self.path, exc.problem, self._logger)
            return None
        if data is None:
            return None
        cursor = data.get("cursor") if isinstance(data, dict) and data.get("format") == _FORMAT else None
        if not isinstance(cursor, str) or not cursor:
            problem = SourceError(str(self.path), None, "cursor", f"not a {_FORMAT} file with a cursor")
            set_aside(self.path, problem, self._logger)
            return None
        self._saved = cursor
        self._commit = data.get("commit") if type(data.get("commit")) is int else None
        return cursor

    def save(self, cursor: str | None, commit: int | None = None) -> bool:
        """Save ``cursor`` if it moved; ``commit`` as in PositionStore.save. False when the write failed."""
        commit = self._commit if commit is None else commit  # periodic saves keep the last mark
        if cursor is None or (cursor == self._saved and commit == self._commit):
            return True
        data: dict[str, object] = {"format": _FORMAT, "version": 1, "cursor": cursor}
        if commit is not None:
            data["commit"] = commit
        try:
            write_json_atomic(self.path, data)
        except OSError as exc:
            self._limiter.log(logging.ERROR, "save", "%s: cannot save the journal cursor: %s", self.path, exc)
            return False
        self._saved = cursor
        self._commit = commit
        return True


class JournaldCollector:
    """Runs ``journalctl --follow`` and turns its JSON records into events, restarting it if it dies."""

    def __init__(
        self,
        *,
        groups: Sequence[FilterGroup],
        state_dir: Path,
        logger: logging.Logger,
        read_existing: bool = False,
        journalctl: str = "journalctl",
        restart_delay: float = 1.0,
        max_restart_delay: float = 30.0,
        flush_interval: float = 1.0,
    ) -> None:
        self.name = "journald"
        self._groups = tuple(groups)
        self._cursors = CursorStore(state_dir, logger)
        self._logger = logger
        self._read_existing = read_existing
        self._journalctl = journalctl
        self._restart_delay = restart_delay
        self._max_restart_delay = max_restart_delay
        self._flush_every = flush_interval
        self._limiter = LogLimiter(logger)
        self._counts = dict.fromkeys(("received", "dropped", "errors", "skipped", "filtered", "restarts"), 0)
        self._acks: AckTracker[str | None] = AckTracker(None)
        self._last_seen: str | None = None
        self._started_at = 0.0

    def stats(self) -> dict[str, int]:
        return {**self._counts, "unacked": self._acks.outstanding}

    def command(self) -> list[str]:
        """The journalctl command line for the next start."""
        args = [self._journalctl, "-o", "json", "--follow", "--no-pager", "--all"]
        if self._last_seen is not None:
            args += ["--after-cursor", self._last_seen]
        elif self._read_existing:
            pass  # the whole journal
        elif self._started_at:
            args += [f"--since=@{int(self._started_at)}"]  # a restart before any record was seen
        else:
            args += ["--since", "now"]
        return args + journalctl_matches(self._groups)

    async def run(self, out: asyncio.Queue[RawEvent]) -> None:
        saved = self._cursors.load()
        self._acks = AckTracker(saved)
        self._last_seen = saved
        self._started_at = 0.0
        flusher = asyncio.create_task(self._flush_periodically())
        delay = self._restart_delay
        try:
            while True:
                args = self.command()
                self._started_at = self._started_at or time.time()
                records, why = await self._run_once(args, out)
                self._counts["restarts"] += 1
                if records:
                    delay = self._restart_delay
                self._limiter.warning("exit", "%s: %s; starting it again in %.1f s", self.name, why, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_restart_delay)
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            self._cursors.save(self._acks.committed)

    async def _run_once(self, args: list[str], out: asyncio.Queue[RawEvent]) -> tuple[int, str]:
        """Run journalctl until it exits: the number of records read and why it stopped."""
        try:
            proc = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            self._counts["errors"] += 1
            return 0, f"cannot run {args[0]}: {exc}"
        assert proc.stdout is not None and proc.stderr is not None
        stderr: deque[bytes] = deque(maxlen=5)
        stderr_task = asyncio.create_task(_keep_tail(proc.stderr, stderr))
        records = 0
        try:
            splitter = LineSplitter(0, _MAX_RECORD_BYTES)
            while chunk := await proc.stdout.read(64 * 1024):
                for line in splitter.feed(chunk):
                    records += 1
                    await self._record(line.data, out)
            rc = await proc.wait()
            await stderr_task
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 2.0)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
            stderr_task.cancel()
        said = b" | ".join(stderr).decode("utf-8", errors="replace")
        return records, f"journalctl exited with status {rc}{f': {said}' if said else ''}"

    async def _record(self, data: bytes, out: asyncio.Queue[RawEvent]) -> None:
        try:
            record = json.loads(data)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            self._counts["errors"] += 1
            self._limiter.warning(
                "bad-json", "%s: journalctl printed a line that is not a JSON record", self.name
            )
            return
        cursor = record.get("__CURSOR")
        if isinstance(cursor, str):
            self._last_seen = cursor
        position = self._last_seen  # never behind an earlier record, even without a cursor
        if self._groups and not any(g.matches(record) for g in self._groups):
            self._counts["filtered"] += 1
            self._acks.skip(position)
            return
        text = syslog_line(record)
        if text is None:
            self._counts["skipped"] += 1
            self._acks.skip(position)
            return
        ack = self._acks.issue(position)
        await out.put(
            RawEvent("journald", cut_text(text), "journald", record=record, ack=ack, source=self.name)
        )
        self._counts["received"] += 1

    def flush_cursor(self, commit: int | None = None) -> bool:
        """Save the acked cursor now (the manager calls it right after acking a batch)."""
        return self._cursors.save(self._acks.committed, commit)

    @property
    def cursor_path(self) -> Path:
        return self._cursors.path

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._flush_every)
            self._cursors.save(self._acks.committed)


async def _keep_tail(stream: asyncio.StreamReader, tail: deque[bytes]) -> None:
    """Read stderr so journalctl never blocks on it; keep its last lines for the exit message."""
    while chunk := await stream.read(4096):
        tail.extend(line for line in chunk.splitlines() if line.strip())
