"""logs/alerts/alerts.json and alerts.log: appending batches durably, and the daily rotation.

Rotation follows Wazuh's layout: at the first batch of a new day (and at least once a minute) the
previous day's files are compressed into ``logs/alerts/YYYY/Mon/ossec-alerts-DD.json.gz`` and
``.log.gz`` and the live files start empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gzip
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC


@dataclass(frozen=True)
class OutputSettings:
    json: bool = True  # <global><jsonout_output>
    text: bool = True  # <global><alerts_log>


def archive_path(alerts_dir: Path, day: dt.date, suffix: str, n: int = 0) -> Path:
    """logs/alerts/2026/Nov/ossec-alerts-26.json.gz for ``suffix`` "json"; ``-N`` before the suffix
    when a day is rotated more than once (the clock was set back, or the manager ran on another day)."""
    extra = f"-{n}" if n else ""
    name = f"ossec-alerts-{day.day:02d}{extra}.{suffix}.gz"
    return alerts_dir / f"{day.year}" / _MONTHS[day.month - 1] / name


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _AlertFile:
    def __init__(self, path: Path, suffix: str) -> None:
        self.path = path
        self.suffix = suffix
        self.fd = -1

    def open(self) -> None:
        if self.fd < 0:
            self.fd = os.open(self.path, _OPEN_FLAGS, 0o640)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]


class AlertFiles:
    """The two alert outputs of one manager. Only the analysis task writes them."""

    def __init__(
        self,
        alerts_dir: Path,
        settings: OutputSettings,
        logger: logging.Logger,
        *,
        today: Callable[[], dt.date] = dt.date.today,
    ) -> None:
        self.alerts_dir = alerts_dir
        self.settings = settings
        self._logger = logger
        self._today = today
        self._json = _AlertFile(alerts_dir / "alerts.json", "json")
        self._text = _AlertFile(alerts_dir / "alerts.log", "log")
        self._day = today()
        self.rotations = 0

    @property
    def paths(self) -> list[Path]:
        return [self._json.path, self._text.path]

    def open(self) -> None:
        self.alerts_dir.mkdir(parents=True, exist_ok=True)
        for f in (self._json, self._text):
            f.open()
        # Files left from an earlier run belong to the day they were last written.
        stamps = [os.fstat(f.fd) for f in (self._json, self._text)]
        written = [st.st_mtime for st in stamps if st.st_size > 0]
        if written:
            self._day = dt.date.fromtimestamp(max(written))

    def close(self) -> None:
        for f in (self._json, self._text):
            f.close()

    def sizes(self) -> dict[str, int]:
        return {str(f.path): f.size() for f in (self._json, self._text)}

    def write(self, json_lines: list[str], text_entries: list[str]) -> None:
        """Append one batch (not yet durable: call ``sync``)."""
        if json_lines and self.settings.json:
            self._json.write("".join(json_lines).encode("utf-8", "surrogateescape"))
        if text_entries and self.settings.text:
            self._text.write("".join(text_entries).encode("utf-8", "surrogateescape"))

    async def sync(self) -> None:
        """fdatasync both files, side by side in threads (each fsync is a few milliseconds)."""
        await asyncio.gather(*(asyncio.to_thread(os.fdatasync, f.fd) for f in (self._json, self._text)))

    def rotation_due(self) -> bool:
        return self._today() != self._day

    async def rotate(self) -> None:
        """Compress the previous day's files into the dated archive and start empty ones."""
        day, self._day = self._day, self._today()
        for f in (self._json, self._text):
            if f.size() == 0:
                continue
            target = await asyncio.to_thread(_compress_into, f.path, self.alerts_dir, day, f.suffix)
            os.ftruncate(f.fd, 0)
            os.fsync(f.fd)
            self._logger.info("rotated %s to %s", f.path, target)
        self.rotations += 1


def _compress_into(source: Path, alerts_dir: Path, day: dt.date, suffix: str) -> Path:
    """gzip ``source`` into the day's archive, durably, before the caller empties it."""
    n = 0
    while (final := archive_path(alerts_dir, day, suffix, n)).exists():
        n += 1
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp")
    try:
        with open(source, "rb") as src, open(tmp, "wb") as raw:
            with gzip.GzipFile(filename=source.name, mode="wb", fileobj=raw) as gz:
                shutil.copyfileobj(src, gz, 1 << 20)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, final)
        _fsync_dir(final.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return final
