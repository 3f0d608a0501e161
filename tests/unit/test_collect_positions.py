"""Saved file positions: format, atomic replacement, and clear errors for a damaged file."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from threatlockdown.collect.positions import POSITIONS_FILE, FilePosition, PositionStore
from threatlockdown.collect.statefile import write_json_atomic

LOG = logging.getLogger("test.collect.positions")
HASH = "ab" * 32


def test_round_trip_and_documented_format(tmp_path: Path) -> None:
    store = PositionStore(tmp_path, LOG)
    store.put("/var/log/auth.log", [FilePosition(2049, 11, 100, HASH), FilePosition(2049, 12, 5, None)])
    store.save()
    data = json.loads((tmp_path / POSITIONS_FILE).read_text())
    assert data == {
        "format": "threatlockdown-file-positions",
        "version": 1,
        "files": {
            "/var/log/auth.log": [
                {"device": 2049, "inode": 11, "offset": 100, "first_line_sha256": HASH},
                {"device": 2049, "inode": 12, "offset": 5, "first_line_sha256": None},
            ]
        },
    }
    again = PositionStore(tmp_path, LOG)
    assert again.get("/var/log/auth.log") == (
        FilePosition(2049, 11, 100, HASH),
        FilePosition(2049, 12, 5, None),
    )
    again.put("/var/log/auth.log", [])
    again.save()
    assert json.loads((tmp_path / POSITIONS_FILE).read_text())["files"] == {}


def test_unchanged_positions_are_not_rewritten(tmp_path: Path) -> None:
    store = PositionStore(tmp_path, LOG)
    store.put("/a", [FilePosition(1, 2, 3, None)])
    store.save()
    before = (tmp_path / POSITIONS_FILE).stat().st_mtime_ns
    (tmp_path / POSITIONS_FILE).write_text((tmp_path / POSITIONS_FILE).read_text())  # touch
    touched = (tmp_path / POSITIONS_FILE).stat().st_mtime_ns
    store.put("/a", [FilePosition(1, 2, 3, None)])
    store.save()
    assert (tmp_path / POSITIONS_FILE).stat().st_mtime_ns == touched >= before


def test_atomic_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "state.json"
    write_json_atomic(target, {"a": 1})
    write_json_atomic(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in target.parent.iterdir()] == ["state.json"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"format": "other"}', "<format>: not a threatlockdown-file-positions file"),
        (
            '{"format": "threatlockdown-file-positions", "version": 9, "files": {}}',
            "<version>: unsupported version 9",
        ),
        (
            '{"format": "threatlockdown-file-positions", "version": 1, "files": {"/a": [{"device": 1, '
            '"inode": -2, "offset": 0, "first_line_sha256": null}]}}',
            "<files//a[0]/inode>: expected a non-negative integer, got -2",
        ),
        (
            '{"format": "threatlockdown-file-positions", "version": 1, "files": {"/a": [{"device": 1, '
            '"inode": 2, "offset": 0, "first_line_sha256": "short"}]}}',
            "<files//a[0]/first_line_sha256>: expected 64 hex digits or null",
        ),
    ],
)
def test_damaged_file_is_reported_and_set_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str, expected: str
) -> None:
    (tmp_path / POSITIONS_FILE).write_text(content)
    with caplog.at_level(logging.ERROR):
        store = PositionStore(tmp_path, LOG)
    assert store.paths() == []
    assert f"{tmp_path / POSITIONS_FILE}: {expected}" in caplog.text
    assert len(list(tmp_path.glob(f"{POSITIONS_FILE}.bad-*"))) == 1
