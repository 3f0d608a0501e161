"""The SQLite state file, and the settings file etc/response.xml."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from threatlockdown.errors import SourceErrors
from threatlockdown.response.settings import ResponseSettings, parse_duration, read_settings
from threatlockdown.response.state import (
    Entry,
    StateError,
    StateStore,
    read_active,
    read_history,
    read_meta,
    read_offenders,
)


def entry(key: str = "firewall-drop/web1/192.0.2.1", **kw: object) -> Entry:
    values: dict[str, object] = dict(
        key=key,
        command="firewall-drop",
        executable="firewall-drop",
        host="web1",
        srcip="192.0.2.1",
        user=None,
        started=100.0,
        expires=160.0,
        timeout=60,
        offences=1,
        phase="adding",
        extra_args=("-x",),
    )
    values.update(kw)
    return Entry(**values)  # type: ignore[arg-type]


def test_nothing_is_written_before_flush_and_everything_after(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = StateStore(path)
    e = entry()
    store.put(e, {"id": "1.1", "data": {"srcip": "192.0.2.1"}})
    store.set_offender(e.key, 1, 100.0)
    store.record("triggered", e.key, e.command, e.host, e.subject, rule_id="5712")
    assert read_active(path) == [] and read_history(path) == []
    store.flush()
    (row,) = read_active(path)
    assert (row.key, row.phase, row.expires, row.extra_args) == (e.key, "adding", 160.0, ("-x",))
    assert read_offenders(path)[e.key].count == 1
    (h,) = read_history(path)
    assert (h.event, h.key, h.detail) == ("triggered", e.key, {"rule_id": "5712"})
    # A change keeps the stored alert; the alert is read from the file, not kept in memory.
    e.phase = "active"
    store.touch(e)
    store.flush()
    assert store.alert_of(e.key) == {"id": "1.1", "data": {"srcip": "192.0.2.1"}}
    store.remove(e.key)
    store.flush()
    assert read_active(path) == []
    store.close()


def test_a_new_store_loads_what_the_old_one_wrote(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    a = StateStore(path)
    a.put(entry(), {"id": "x"})
    a.put(entry("firewall-drop/web2/192.0.2.2", host="web2", expires=None, phase="active"), {"id": "y"})
    a.set_offender("firewall-drop/web1/192.0.2.1", 3, 150.0)
    a.set_meta("mode", "runner")
    a.close()
    b = StateStore(path)
    b.load()
    assert sorted(b.active) == ["firewall-drop/web1/192.0.2.1", "firewall-drop/web2/192.0.2.2"]
    assert b.active["firewall-drop/web2/192.0.2.2"].expires is None
    assert b.offenders["firewall-drop/web1/192.0.2.1"].count == 3
    assert read_meta(path, "mode") == "runner"
    b.close()


def test_history_since_and_limit(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = StateStore(path)
    for i in range(5):
        store.record(f"e{i}", None, None, None, None)
    store.flush()
    store.conn.execute("UPDATE history SET time = id * 10")
    assert [h.event for h in read_history(path, since=30)] == ["e2", "e3", "e4"]
    assert [h.event for h in read_history(path, limit=2)] == ["e3", "e4"]
    store.purge(history_before=25, offenders_before=None)
    assert [h.event for h in read_history(path)] == ["e2", "e3", "e4"]
    store.close()


def test_reading_a_missing_state_file_is_empty(tmp_path: Path) -> None:
    assert read_active(tmp_path / "none.db") == []
    assert read_history(tmp_path / "none.db") == []
    assert not (tmp_path / "none.db").exists()


def test_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    StateStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value='99' WHERE name='schema'")
    with pytest.raises(StateError, match="schema version 99"):
        StateStore(path)


V1_ACTIVE = """CREATE TABLE active (key TEXT PRIMARY KEY, command TEXT NOT NULL, executable TEXT NOT NULL,
    host TEXT NOT NULL, srcip TEXT, user TEXT, started REAL NOT NULL, expires REAL, timeout INTEGER NOT NULL,
    offences INTEGER NOT NULL, phase TEXT NOT NULL, attempts INTEGER NOT NULL, applied INTEGER NOT NULL,
    last_result TEXT, last_message TEXT, last_attempt REAL, origin TEXT NOT NULL, ar_name TEXT NOT NULL,
    rule_id TEXT, alert_id TEXT, extra_args TEXT NOT NULL, alert TEXT)"""


def test_a_version_1_file_is_converted_and_keeps_its_alerts(tmp_path: Path) -> None:
    """Version 1 kept the alert in the active row; version 2 keeps it in the alerts table."""
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO meta VALUES ('schema', '1')")
        conn.execute(V1_ACTIVE)
        conn.execute(
            "INSERT INTO active VALUES ('firewall-drop/web1/192.0.2.1', 'firewall-drop', 'firewall-drop', "
            "'web1', '192.0.2.1', NULL, 100.0, 160.0, 60, 1, 'active', 1, 1, 'ok', NULL, 101.0, 'alert', "
            "'firewall-drop60', '5712', '1.1', '[\"-x\"]', '{\"id\":\"1.1\"}')"
        )
    store = StateStore(path)
    store.load()
    (e,) = store.active.values()
    assert (e.phase, e.expires, e.extra_args, e.user) == ("active", 160.0, ("-x",), None)
    assert store.alert_of(e.key) == {"id": "1.1"}
    e.offences = 2
    store.touch(e)
    store.close()
    assert read_meta(path, "schema") == "2"
    assert read_active(path)[0].offences == 2
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT alert FROM active").fetchall() == [(None,)], "moved, not copied"
    again = StateStore(path)
    assert again.alert_of(e.key) == {"id": "1.1"}
    again.remove(e.key)
    again.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM alerts").fetchone() == (0,), "removed with its row"


def test_state_file_is_wal(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


# -- settings ----------------------------------------------------------------------------------------


def test_settings_defaults_when_the_file_is_absent(tmp_path: Path) -> None:
    assert read_settings(tmp_path / "response.xml") == ResponseSettings()
    assert ResponseSettings().batch_window == 0.2


def test_settings_file(tmp_path: Path) -> None:
    path = tmp_path / "response.xml"
    path.write_text(
        "<response_engine>\n"
        "  <batch_window>50ms</batch_window>\n"
        "  <offender_reset>12h</offender_reset>\n"
        "  <max_concurrency>8</max_concurrency>\n"
        "  <revert_on_stop>yes</revert_on_stop>\n"
        "  <manager_host>mgr01</manager_host>\n"
        "</response_engine>\n"
    )
    s = read_settings(path)
    assert (s.batch_window, s.offender_reset, s.max_concurrency, s.revert_on_stop, s.manager_host) == (
        0.05,
        43200.0,
        8,
        True,
        "mgr01",
    )


def test_bad_settings_name_file_line_and_element(tmp_path: Path) -> None:
    path = tmp_path / "response.xml"
    path.write_text(
        "<response_engine>\n"
        "  <batch_window>soon</batch_window>\n"
        "  <max_concurency>8</max_concurency>\n"
        "  <self_protection>off</self_protection>\n"
        "</response_engine>\n"
    )
    with pytest.raises(SourceErrors) as caught:
        read_settings(path)
    got = [(e.line, e.element) for e in caught.value.errors]
    assert got == [(2, "batch_window"), (3, "max_concurency"), (4, "self_protection")]
    assert "did you mean <max_concurrency>?" in caught.value.errors[1].message
    assert str(caught.value.errors[0]).startswith(f"{path}:2: <batch_window>: invalid duration 'soon'")


@pytest.mark.parametrize(
    ("text", "seconds"), [("200ms", 0.2), ("1.5", 1.5), ("5m", 300), ("1d", 86400), ("2 h", 7200)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "-1", "1w", "5 minutes", "1e3"])
def test_bad_durations(text: str) -> None:
    assert parse_duration(text) is None
