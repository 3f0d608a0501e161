"""Alert files: appending, and the daily rotation into Wazuh's dated, compressed layout."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import logging
from pathlib import Path

from threatlockdown.manager.outputs import AlertFiles, OutputSettings, archive_path


class Clock:
    def __init__(self, day: dt.date) -> None:
        self.day = day

    def __call__(self) -> dt.date:
        return self.day


def test_archive_layout(tmp_path: Path) -> None:
    day = dt.date(2026, 11, 5)
    assert archive_path(tmp_path, day, "json") == tmp_path / "2026" / "Nov" / "ossec-alerts-05.json.gz"
    assert archive_path(tmp_path, day, "log", 2) == tmp_path / "2026" / "Nov" / "ossec-alerts-05-2.log.gz"


def test_daily_rotation(tmp_path: Path) -> None:
    clock = Clock(dt.date(2026, 11, 25))
    files = AlertFiles(tmp_path, OutputSettings(), logging.getLogger("test"), today=clock)
    files.open()
    files.write(['{"a": 1}\n'], ["** Alert 1.1: - x,\n...\n\n"])
    asyncio.run(files.sync())
    assert not files.rotation_due()
    clock.day = dt.date(2026, 11, 26)
    assert files.rotation_due()
    asyncio.run(files.rotate())
    json_gz = tmp_path / "2026" / "Nov" / "ossec-alerts-25.json.gz"
    log_gz = tmp_path / "2026" / "Nov" / "ossec-alerts-25.log.gz"
    assert gzip.decompress(json_gz.read_bytes()) == b'{"a": 1}\n'
    assert gzip.decompress(log_gz.read_bytes()).startswith(b"** Alert 1.1")
    assert (tmp_path / "alerts.json").read_bytes() == b""
    # New alerts go to the emptied live files, at the start (O_APPEND after the truncation).
    files.write(['{"b": 2}\n'], [])
    asyncio.run(files.sync())
    assert (tmp_path / "alerts.json").read_bytes() == b'{"b": 2}\n'
    assert not files.rotation_due()
    files.close()


def test_disabled_outputs_are_not_written(tmp_path: Path) -> None:
    files = AlertFiles(tmp_path, OutputSettings(json=True, text=False), logging.getLogger("test"))
    files.open()
    files.write(['{"a": 1}\n'], ["text\n\n"])
    assert (tmp_path / "alerts.json").stat().st_size > 0
    assert (tmp_path / "alerts.log").stat().st_size == 0
    files.close()


def test_files_from_an_earlier_day_rotate_at_start(tmp_path: Path) -> None:
    import os

    (tmp_path / "alerts.json").write_text('{"old": 1}\n')
    old = dt.datetime(2026, 11, 20, 12).timestamp()
    os.utime(tmp_path / "alerts.json", (old, old))
    files = AlertFiles(
        tmp_path, OutputSettings(), logging.getLogger("test"), today=Clock(dt.date(2026, 11, 26))
    )
    files.open()
    assert files.rotation_due()
    asyncio.run(files.rotate())
    assert (tmp_path / "2026" / "Nov" / "ossec-alerts-20.json.gz").exists()
    files.close()
