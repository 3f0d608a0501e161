"""The alert batch journal and the batch marks in the collectors' state files."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from threatlockdown.collect.durable import committed_batch
from threatlockdown.collect.positions import FilePosition, PositionStore
from threatlockdown.manager.journal import BatchJournal


def _alerts(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "alerts.json"
    path.write_bytes(content)
    return path


def test_interrupted_batch_is_cut_off(tmp_path: Path) -> None:
    alerts = _alerts(tmp_path, b'{"old": 1}\n')
    journal = BatchJournal(tmp_path / "batch.journal")
    journal.open()
    journal.begin(7, {str(alerts): alerts.stat().st_size}, [str(tmp_path / "positions.json")])
    journal.close()
    with open(alerts, "ab") as f:
        f.write(b'{"new": 1}\n{"new": 2')  # written, maybe torn, never committed
    recovery = BatchJournal(tmp_path / "batch.journal").recover(lambda _p: None)
    assert recovery is not None and not recovery.committed
    assert alerts.read_bytes() == b'{"old": 1}\n'
    assert recovery.truncated == {str(alerts): len(b'{"new": 1}\n{"new": 2')}
    assert (tmp_path / "batch.journal").read_bytes() == b""


def test_committed_batch_keeps_its_alerts(tmp_path: Path) -> None:
    alerts = _alerts(tmp_path, b"a\n")
    store = PositionStore(tmp_path, logging.getLogger("test"))
    store.put("/var/log/x.log", [FilePosition(1, 2, 30, None)])
    journal = BatchJournal(tmp_path / "batch.journal")
    journal.open()
    journal.begin(42, {str(alerts): 2}, [str(store.path)])
    with open(alerts, "ab") as f:
        f.write(b"b\n")
    assert store.save(42)  # the positions after the batch, marked: the batch is complete
    journal.close()
    assert committed_batch(store.path) == 42
    recovery = BatchJournal(tmp_path / "batch.journal").recover(committed_batch)
    assert recovery is not None and recovery.committed
    assert alerts.read_bytes() == b"a\nb\n"


def test_batch_without_state_files_is_never_taken_as_committed(tmp_path: Path) -> None:
    # Agent and syslog batches: only the cleared journal says they are done.
    alerts = _alerts(tmp_path, b"")
    journal = BatchJournal(tmp_path / "batch.journal")
    journal.open()
    journal.begin(1, {str(alerts): 0}, [])
    alerts.write_bytes(b"x\n")
    recovery = journal.recover(lambda _p: 1)
    assert recovery is not None and not recovery.committed and alerts.read_bytes() == b""


def test_cleared_or_torn_journal_changes_nothing(tmp_path: Path) -> None:
    alerts = _alerts(tmp_path, b"keep\n")
    journal = BatchJournal(tmp_path / "batch.journal")
    journal.open()
    journal.begin(3, {str(alerts): 0}, [])
    journal.end(durable=True)
    assert journal.recover(lambda _p: None) is None
    (tmp_path / "batch.journal").write_text('{"format": "threatlockdown-alert-batch", "bat')
    assert BatchJournal(tmp_path / "batch.journal").recover(lambda _p: None) is None
    assert alerts.read_bytes() == b"keep\n"


def test_position_store_keeps_its_mark_across_saves_and_loads(tmp_path: Path) -> None:
    log = logging.getLogger("test")
    store = PositionStore(tmp_path, log)
    store.put("/a", [FilePosition(1, 2, 3, None)])
    assert store.save(5)
    store.put("/a", [FilePosition(1, 2, 9, None)])
    assert store.save()  # a periodic save keeps the last mark
    data = json.loads(store.path.read_text())
    assert data["commit"] == 5 and data["files"]["/a"][0]["offset"] == 9
    assert PositionStore(tmp_path, log).commit == 5
    assert committed_batch(tmp_path / "missing.json") is None
