"""Persistent state: active responses, offender counts and history, in SQLite (WAL) under queue/.

The engine keeps the active responses and offender counts in memory and writes changes behind, in one
transaction per flush. Before an add or a delete runs, its row is committed (``flush_keys``), so after
a crash every response that may have been applied is in the file and gets reverted: at least once, and
exactly once unless the crash falls between running a delete and recording it. The triggering alert of
each response is in its own table, written once with the new row: the active rows, updated at every
refresh and result, stay small.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

Phase = Literal["adding", "active", "reverting"]
# 2: the triggering alerts in a table of their own (1 kept them in the active rows, so every update of
# a row, each refresh or result, rewrote its alert too). Version 1 files are converted when opened.
SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS active (
    key TEXT PRIMARY KEY,
    command TEXT NOT NULL,
    executable TEXT NOT NULL,
    host TEXT NOT NULL,
    srcip TEXT,
    user TEXT,
    started REAL NOT NULL,
    expires REAL,
    timeout INTEGER NOT NULL,
    offences INTEGER NOT NULL,
    phase TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    applied INTEGER NOT NULL,
    last_result TEXT,
    last_message TEXT,
    last_attempt REAL,
    origin TEXT NOT NULL,
    ar_name TEXT NOT NULL,
    rule_id TEXT,
    alert_id TEXT,
    extra_args TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (key TEXT PRIMARY KEY, alert TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS offenders (key TEXT PRIMARY KEY, count INTEGER NOT NULL, last REAL NOT NULL);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    event TEXT NOT NULL,
    key TEXT,
    command TEXT,
    host TEXT,
    subject TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_time ON history (time);
"""

_COLUMNS = (
    "key",
    "command",
    "executable",
    "host",
    "srcip",
    "user",
    "started",
    "expires",
    "timeout",
    "offences",
    "phase",
    "attempts",
    "applied",
    "last_result",
    "last_message",
    "last_attempt",
    "origin",
    "ar_name",
    "rule_id",
    "alert_id",
    "extra_args",
)


# The columns an Entry changes after its row is inserted (refreshes, results, a re-add); the others are
# fixed when the response is created (put with its alert).
_CHANGING = (
    "started",
    "expires",
    "timeout",
    "offences",
    "phase",
    "attempts",
    "applied",
    "last_result",
    "last_message",
    "last_attempt",
)
# Columns that may be NULL. Entry.row() and changing_row() pass their None as "" and the statements
# turn "" back into NULL: Python's sqlite3 binds None only after a failed adapter lookup that raises
# and clears an exception, several times the cost of binding a value. (None of them is ever "".)
_NULLABLE = frozenset(
    ("srcip", "user", "expires", "last_result", "last_message", "last_attempt", "rule_id", "alert_id")
)


def _value(column: str) -> str:
    return "NULLIF(?, '')" if column in _NULLABLE else "?"


_UPDATE_CHANGING = f"UPDATE active SET {', '.join(f'{c} = {_value(c)}' for c in _CHANGING)} WHERE key = ?"
# Every column but the alert, inserting the row when it is gone.
_UPSERT = (
    f"INSERT INTO active ({', '.join(_COLUMNS)}) VALUES ({', '.join(_value(c) for c in _COLUMNS)}) "
    f"ON CONFLICT(key) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in _COLUMNS[1:])}"
)
# A new row (its alert goes to the alerts table).
_INSERT = (
    f"INSERT OR REPLACE INTO active ({', '.join(_COLUMNS)}) VALUES ({', '.join(_value(c) for c in _COLUMNS)})"
)


class StateError(Exception):
    pass


def alert_json(alert: Any) -> str:
    """An alert as compact JSON text, as it is stored and queued."""
    return orjson.dumps(alert, default=str).decode()


@dataclass(slots=True, eq=False)
class Entry:
    """One active response. The triggering alert lives only in the file (``StateStore.alert_of``)."""

    key: str
    command: str
    executable: str
    host: str
    srcip: str | None
    user: str | None
    started: float
    expires: float | None  # None: until reverted
    timeout: int
    offences: int
    phase: Phase
    attempts: int = 0  # attempts of the current phase's action
    applied: bool = False  # an add reported ok or failed (may have changed the host)
    last_result: str | None = None
    last_message: str | None = None
    last_attempt: float | None = None
    origin: str = "alert"  # "alert" or "manual"
    ar_name: str = ""
    rule_id: str | None = None
    alert_id: str | None = None
    extra_args: tuple[str, ...] = ()
    # In memory only: an action for this key is being executed, and what to do once it is done.
    busy: bool = False
    revert_due: bool = False
    readd: bool = False
    # In memory only: when this entry's item in the expiry heap comes up (None: it has none).
    scheduled: float | None = None

    @property
    def subject(self) -> str:
        return self.srcip or self.user or "-"

    def row(self) -> tuple[Any, ...]:
        return (
            self.key,
            self.command,
            self.executable,
            self.host,
            # None goes to SQLite as "" (see _NULLABLE): binding None costs a failed attribute lookup.
            "" if self.srcip is None else self.srcip,
            "" if self.user is None else self.user,
            self.started,
            "" if self.expires is None else self.expires,
            self.timeout,
            self.offences,
            self.phase,
            self.attempts,
            int(self.applied),
            "" if self.last_result is None else self.last_result,
            "" if self.last_message is None else self.last_message,
            "" if self.last_attempt is None else self.last_attempt,
            self.origin,
            self.ar_name,
            "" if self.rule_id is None else self.rule_id,
            "" if self.alert_id is None else self.alert_id,
            orjson.dumps(self.extra_args).decode(),  # a JSON array, as json.loads reads it back
        )

    def changing_row(self) -> tuple[Any, ...]:
        """The values of _CHANGING, then the key (for _UPDATE_CHANGING)."""
        return (
            self.started,
            "" if self.expires is None else self.expires,
            self.timeout,
            self.offences,
            self.phase,
            self.attempts,
            int(self.applied),
            "" if self.last_result is None else self.last_result,
            "" if self.last_message is None else self.last_message,
            "" if self.last_attempt is None else self.last_attempt,
            self.key,
        )

    def to_json(self, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        return {
            "key": self.key,
            "command": self.command,
            "target": self.host,
            "srcip": self.srcip,
            "user": self.user,
            "started": self.started,
            "expires": self.expires,
            "remaining": None if self.expires is None else max(0.0, round(self.expires - now, 3)),
            "timeout": self.timeout,
            "offences": self.offences,
            "phase": self.phase,
            "attempts": self.attempts,
            "last_result": self.last_result,
            "last_message": self.last_message,
            "origin": self.origin,
            "rule_id": self.rule_id,
            "alert_id": self.alert_id,
        }


def _entry(row: sqlite3.Row | tuple[Any, ...], args: dict[str, tuple[str, ...]] | None = None) -> Entry:
    """The Entry of a row of _COLUMNS, in that order. ``args``: decoded extra_args texts, shared while
    loading many rows (they repeat)."""
    (
        key, command, executable, host, srcip, user, started, expires, timeout, offences, phase, attempts,
        applied, last_result, last_message, last_attempt, origin, ar_name, rule_id, alert_id, extra_args,
    ) = row  # fmt: skip
    decoded = args.get(extra_args) if args is not None else None
    if decoded is None:
        decoded = tuple(json.loads(extra_args))
        if args is not None:
            args[extra_args] = decoded
    # Positional (the order of the dataclass): a restart builds one per active response.
    return Entry(
        key, command, executable, host, srcip, user, started, expires, timeout, offences, phase, attempts,
        bool(applied), last_result, last_message, last_attempt, origin, ar_name, rule_id, alert_id, decoded,
    )  # fmt: skip


@dataclass(slots=True)
class Offender:
    count: int
    last: float


@dataclass(frozen=True, slots=True)
class HistoryRow:
    time: float
    event: str
    key: str | None
    command: str | None
    host: str | None
    subject: str | None
    detail: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "event": self.event,
            "key": self.key,
            "command": self.command,
            "target": self.host,
            "subject": self.subject,
            **self.detail,
        }


@dataclass
class _Pending:
    upserts: dict[str, Entry] = field(default_factory=dict)
    alerts: dict[str, str] = field(default_factory=dict)  # key -> alert JSON of new rows
    deletes: set[str] = field(default_factory=set)
    offenders: dict[str, Offender] = field(default_factory=dict)
    history: list[tuple[Any, ...]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.upserts or self.deletes or self.offenders or self.history)


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), timeout=10.0, isolation_level=None)
    conn.row_factory = sqlite3.Row
    if not readonly:
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed add must survive a power cut too, or its block would never be reverted.
        conn.execute("PRAGMA synchronous=FULL")
    return conn


class StateStore:
    """The state file of one engine (``tld ar`` opens it too, through ``open_readonly`` or ``offline``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.conn = connect(path)
            self.conn.executescript(_SCHEMA)
            self._check_version()
        except sqlite3.Error as exc:
            raise StateError(f"{path}: cannot open the state database: {exc}") from None
        self.active: dict[str, Entry] = {}
        self.offenders: dict[str, Offender] = {}
        self._pending = _Pending()

    def _check_version(self) -> None:
        row = self.conn.execute("SELECT value FROM meta WHERE name='schema'").fetchone()
        if row is None:
            self.conn.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif row["value"] == "1":
            self._convert_from_1()
        elif row["value"] != str(SCHEMA_VERSION):
            raise StateError(
                f"{self.path}: schema version {row['value']}, this program knows {SCHEMA_VERSION}"
            )

    def _convert_from_1(self) -> None:
        """Move the alerts of a version 1 file into their table, in one transaction (the emptied
        ``alert`` column of ``active`` stays, unused)."""
        cur = self.conn.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")
            cur.execute("INSERT OR REPLACE INTO alerts SELECT key, alert FROM active WHERE alert IS NOT NULL")
            cur.execute("UPDATE active SET alert = NULL WHERE alert IS NOT NULL")
            cur.execute("UPDATE meta SET value = ? WHERE name = 'schema'", (str(SCHEMA_VERSION),))
            cur.execute("COMMIT")
        except sqlite3.Error:
            if self.conn.in_transaction:
                cur.execute("ROLLBACK")
            raise

    def set_meta(self, name: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))

    def load(self) -> None:
        cur = self.conn.cursor()
        cur.row_factory = None  # plain tuples: a restart may read 100,000 rows
        args: dict[str, tuple[str, ...]] = {}
        rows = cur.execute(f"SELECT {', '.join(_COLUMNS)} FROM active")
        self.active = {row[0]: _entry(row, args) for row in rows}
        self.offenders = {
            row["key"]: Offender(row["count"], row["last"])
            for row in self.conn.execute("SELECT * FROM offenders")
        }

    def close(self) -> None:
        self.flush()
        self.conn.close()

    # -- changes (written at the next flush) ---------------------------------------------------------

    def put(self, entry: Entry, alert: Any = None) -> None:
        """Record ``entry`` (new or changed); ``alert`` (dict or JSON text) is stored with a new row."""
        self.active[entry.key] = entry
        self._pending.upserts[entry.key] = entry
        self._pending.deletes.discard(entry.key)
        if alert is not None:
            self._pending.alerts[entry.key] = alert if isinstance(alert, str) else alert_json(alert)

    def touch(self, entry: Entry) -> None:
        self._pending.upserts[entry.key] = entry

    def remove(self, key: str) -> None:
        self.active.pop(key, None)
        self._pending.upserts.pop(key, None)
        self._pending.alerts.pop(key, None)
        self._pending.deletes.add(key)

    def set_offender(self, key: str, count: int, last: float) -> None:
        off = self.offenders.get(key)
        if off is None:
            off = self.offenders[key] = Offender(count, last)
        else:  # changed in place: every refresh of an attack comes here
            off.count = count
            off.last = last
        self._pending.offenders[key] = off

    def record(
        self,
        event: str,
        key: str | None,
        command: str | None,
        host: str | None,
        subject: str | None,
        **detail: Any,
    ) -> None:
        self.record_detail(event, key, command, host, subject, detail)

    def record_detail(
        self,
        event: str,
        key: str | None,
        command: str | None,
        host: str | None,
        subject: str | None,
        detail: dict[str, Any],
    ) -> None:
        """``record`` with the detail as a dict (no keyword arguments to pack again)."""
        text = orjson.dumps(detail, default=str).decode()
        self._pending.history.append((time.time(), event, key, command, host, subject, text))

    @property
    def dirty(self) -> bool:
        return bool(self._pending)

    def flush(self) -> None:
        """Write every pending change in one transaction."""
        p = self._pending
        if not p:
            return
        self._pending = _Pending()
        self._write(p)

    def flush_keys(self, keys: Iterable[str]) -> None:
        """Write the pending rows of ``keys`` only: what must be on disk before their actions run.
        (A full flush per batch would rewrite every refreshed row several times a second.)"""
        part = _Pending()
        p = self._pending
        for key in keys:
            entry = p.upserts.pop(key, None)
            if entry is not None:
                part.upserts[key] = entry
                alert = p.alerts.pop(key, None)
                if alert is not None:
                    part.alerts[key] = alert
            if key in p.deletes:
                p.deletes.discard(key)
                part.deletes.add(key)
        if part:
            self._write(part)  # on failure it puts ``part`` back under what is pending

    def _write(self, p: _Pending) -> None:
        cur = self.conn.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")
            if p.deletes:
                gone = [(k,) for k in p.deletes]
                cur.executemany("DELETE FROM active WHERE key = ?", gone)
                cur.executemany("DELETE FROM alerts WHERE key = ?", gone)
            if p.upserts:
                fresh = [e for k, e in p.upserts.items() if k in p.alerts]
                known = [e for k, e in p.upserts.items() if k not in p.alerts]
                if fresh:
                    cur.executemany(_INSERT, [e.row() for e in fresh])
                    alerts = [(e.key, p.alerts[e.key]) for e in fresh]
                    cur.executemany("INSERT OR REPLACE INTO alerts VALUES (?, ?)", alerts)
                if known:
                    # Rows already written: only the columns that change (half the parameters to bind,
                    # and no insert attempt). A row that is gone is inserted (without its alert).
                    cur.executemany(_UPDATE_CHANGING, [e.changing_row() for e in known])
                    if cur.rowcount != len(known):
                        cur.executemany(_UPSERT, [e.row() for e in known])
            if p.offenders:
                cur.executemany(
                    "INSERT OR REPLACE INTO offenders VALUES (?, ?, ?)",
                    [(k, o.count, o.last) for k, o in p.offenders.items()],
                )
            if p.history:
                cur.executemany(
                    "INSERT INTO history (time, event, key, command, host, subject, detail) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    p.history,
                )
            cur.execute("COMMIT")
        except sqlite3.Error:
            if self.conn.in_transaction:
                cur.execute("ROLLBACK")
            self._restore(p)  # nothing was written: keep it all for the next attempt
            raise

    def _restore(self, p: _Pending) -> None:
        """Put ``p`` back under what is pending now (newer changes of a key win)."""
        now = self._pending
        p.upserts.update(now.upserts)
        p.alerts.update(now.alerts)
        p.deletes = (p.deletes - set(now.upserts)) | now.deletes
        p.offenders.update(now.offenders)
        p.history.extend(now.history)
        self._pending = p

    # -- reads ---------------------------------------------------------------------------------------

    def alert_text_of(self, key: str) -> str:
        """The stored alert of ``key`` as JSON text ("" when there is none)."""
        pending = self._pending.alerts.get(key)
        if pending is not None:
            return pending
        row = self.conn.execute("SELECT alert FROM alerts WHERE key = ?", (key,)).fetchone()
        return str(row["alert"]) if row is not None else ""

    def alert_of(self, key: str) -> dict[str, Any]:
        text = self.alert_text_of(key)
        value = json.loads(text) if text else {}
        return value if isinstance(value, dict) else {}

    def purge(self, *, history_before: float, offenders_before: float | None) -> None:
        """Forget old history and offenders that can no longer count (outside the reset window)."""
        self.flush()
        self.conn.execute("DELETE FROM history WHERE time < ?", (history_before,))
        if offenders_before is not None:
            stale = [k for k, o in self.offenders.items() if o.last < offenders_before]
            for k in stale:
                del self.offenders[k]
            self.conn.execute("DELETE FROM offenders WHERE last < ?", (offenders_before,))


def read_active(path: Path) -> list[Entry]:
    """The active responses in a state file, read-only (what ``tld ar list`` shows)."""
    with _readonly(path) as conn:
        return [
            _entry(row) for row in conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM active ORDER BY started")
        ]


def read_history(path: Path, since: float | None = None, limit: int | None = None) -> list[HistoryRow]:
    query = "SELECT time, event, key, command, host, subject, detail FROM history"
    args: list[Any] = []
    if since is not None:
        query += " WHERE time >= ?"
        args.append(since)
    query += " ORDER BY id DESC" if limit is not None else " ORDER BY id"
    if limit is not None:
        query += " LIMIT ?"
        args.append(limit)
    with _readonly(path) as conn:
        return [
            HistoryRow(
                r["time"],
                r["event"],
                r["key"],
                r["command"],
                r["host"],
                r["subject"],
                json.loads(r["detail"]),
            )
            for r in conn.execute(query, args)
        ][:: -1 if limit is not None else 1]


class _readonly:
    """A read-only connection as a context manager; a missing file reads as empty."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = None

    def __enter__(self) -> _Rows:
        if not self.path.exists():
            return _Rows(None)
        try:
            self.conn = connect(self.path, readonly=True)
        except sqlite3.Error as exc:
            raise StateError(f"{self.path}: cannot open the state database: {exc}") from None
        return _Rows(self.conn)

    def __exit__(self, *exc: object) -> None:
        if self.conn is not None:
            self.conn.close()


class _Rows:
    def __init__(self, conn: sqlite3.Connection | None) -> None:
        self.conn = conn

    def execute(self, query: str, args: Iterable[Any] = ()) -> Iterator[sqlite3.Row]:
        if self.conn is None:
            return iter(())
        try:
            return iter(self.conn.execute(query, tuple(args)).fetchall())
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return iter(())
            raise StateError(f"cannot read the state database: {exc}") from None


def read_offenders(path: Path) -> dict[str, Offender]:
    with _readonly(path) as conn:
        return {r["key"]: Offender(r["count"], r["last"]) for r in conn.execute("SELECT * FROM offenders")}


def read_meta(path: Path, name: str) -> str | None:
    with _readonly(path) as conn:
        for row in conn.execute("SELECT value FROM meta WHERE name = ?", (name,)):
            return str(row["value"])
    return None
