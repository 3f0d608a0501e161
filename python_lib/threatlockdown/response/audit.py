"""The two audit trails of the engine.

``logs/active-responses.log``: Wazuh 4.x's line format, one line per executed add or delete::

    2024/05/01 12:00:00 active-response/bin/firewall-drop: {"version":1,"origin":{...},"command":"add",...}

The manager tails this file (shipped ossec.conf), and decoders ``ar_log_json`` and rules 650-657 turn each
line into a "Host Blocked/Unblocked" alert. A failed execution is a plain text line (rule 650, no alert).

``logs/active-responses.json``: one JSON object per decision, with the reason: triggered, refreshed,
skipped, refused, executed, failed, retry, reverted, ... Wazuh has no such record (it skips silently).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

MODULE = "threatlockdown"


def ar_program(executable: str) -> str:
    return f"active-response/bin/{executable}"


def ar_message(
    *,
    node_name: str,
    action: str,
    executable: str,
    extra_args: Sequence[str],
    alert: Mapping[str, Any],
    target: str | None = None,
) -> dict[str, Any]:
    """The message Wazuh's execd hands a script, with our module name and the target host added."""
    parameters: dict[str, Any] = {
        "extra_args": list(extra_args),
        "alert": alert,
        "program": ar_program(executable),
    }
    if target is not None:
        parameters["target"] = target
    return {
        "version": 1,
        "origin": {"name": node_name, "module": MODULE},
        "command": action,
        "parameters": parameters,
    }


def wazuh_stamp(epoch: float) -> str:
    """``YYYY/MM/DD HH:MM:SS`` in local time, as Wazuh's w_get_timestamp."""
    return time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(epoch))


def iso_stamp(epoch: float) -> str:
    """Wazuh's alert timestamp form: ``2024-05-01T12:00:00.123+0000``."""
    lt = time.localtime(epoch)
    ms = round((epoch - int(epoch)) * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", lt) + f".{ms:03d}" + time.strftime("%z", lt)


def _one_line(text: str, limit: int = 500) -> str:
    cleaned = "".join(c if c.isprintable() else " " for c in text)
    return cleaned[:limit]


# Records wait in memory and go to the file in one write of at least this many bytes, and at every flush
# point (the engine's flush interval, after each execution's results, at stop): one write call per
# record would cost about as much as serialising it. The size of a default file buffer, so a SIGKILL
# loses no more than it did with one.
WRITE_CHUNK = 8 * 1024


class _Lines:
    """One append-only file written in chunks."""

    def __init__(self, path: Path) -> None:
        self.file: IO[bytes] = open(path, "ab", buffering=0)  # noqa: SIM115 - kept open for the engine's life
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, line: bytes) -> None:
        self.parts.append(line)
        self.size += len(line)
        if self.size >= WRITE_CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.parts:
            data = b"".join(self.parts)
            self.parts.clear()
            self.size = 0
            view = memoryview(data)
            while view:  # an unbuffered write may be partial
                view = view[self.file.write(view) or 0 :]

    def close(self) -> None:
        self.flush()
        self.file.close()


_MILLIS = tuple(b"%03d" % n for n in range(1000))  # ".123" parts, looked up instead of formatted


class _SecondStamp:
    """Timestamps formatted once per second (strftime per record would cost more than the record)."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.second = -1
        self.text = b""
        self.zone = b""

    def at(self, second: int) -> tuple[bytes, bytes]:
        if second != self.second:
            lt = time.localtime(second)
            self.second = second
            self.text = time.strftime(self.pattern, lt).encode()
            self.zone = time.strftime("%z", lt).encode()
        return self.text, self.zone


class AuditLog:
    """Both files, appended to and flushed at the engine's flush points."""

    def __init__(self, logs_dir: Path, *, node_name: str) -> None:
        logs_dir.mkdir(parents=True, exist_ok=True)
        self.ar_log_path = logs_dir / "active-responses.log"
        self.json_path = logs_dir / "active-responses.json"
        self.node_name = node_name
        self._ar = _Lines(self.ar_log_path)
        self._json = _Lines(self.json_path)
        self._iso = _SecondStamp("%Y-%m-%dT%H:%M:%S")
        self._wazuh = _SecondStamp("%Y/%m/%d %H:%M:%S")
        self._millisecond = -1  # the last stamp, reused within its millisecond (a burst shares it)
        self._stamp = b""
        self._parts: dict[tuple[str, str, str, tuple[str, ...], str], tuple[bytes, bytes]] = {}

    def executed(
        self,
        *,
        action: str,
        executable: str,
        extra_args: Sequence[str],
        alert: Mapping[str, Any] | None = None,
        target: str,
        when: float | None = None,
        alert_text: str | None = None,
    ) -> None:
        """The Wazuh line of an executed add or delete. ``alert_text``: the alert as compact JSON (as
        queued and stored), put into the line as it is instead of serialising ``alert`` again."""
        stamp, _ = self._wazuh.at(int(time.time() if when is None else when))
        if alert_text is None:
            message = ar_message(
                node_name=self.node_name,
                action=action,
                executable=executable,
                extra_args=extra_args,
                alert=alert if alert is not None else {},
                target=target,
            )
            line = b"%s %s: %s\n" % (stamp, ar_program(executable).encode(), orjson.dumps(message))
        else:
            before, after = self._line_parts(action, executable, tuple(extra_args), target)
            alert_bytes = alert_text.encode() if alert_text else b"{}"
            line = b"".join((stamp, before, alert_bytes, after))
        self._ar.add(line)

    def _line_parts(
        self, action: str, executable: str, extra_args: tuple[str, ...], target: str
    ) -> tuple[bytes, bytes]:
        """What goes before and after the alert in the line of an execution: the same bytes as
        orjson.dumps(ar_message(...)), with "alert" between extra_args and program. Kept per
        (node, action, executable, extra_args, target): a few per command and host."""
        key = (self.node_name, action, executable, extra_args, target)
        parts = self._parts.get(key)
        if parts is None:
            program = ar_program(executable)
            head = orjson.dumps(
                {
                    "version": 1,
                    "origin": {"name": self.node_name, "module": MODULE},
                    "command": action,
                    "parameters": {"extra_args": list(extra_args)},
                }
            )
            rest = orjson.dumps({"program": program, "target": target})
            before = b"".join((b" ", program.encode(), b": ", head[:-2], b',"alert":'))
            parts = (before, b"".join((b",", rest[1:], b"}\n")))
            if len(self._parts) >= 1024:  # bounded: hosts and commands come from the configuration
                self._parts.clear()
            self._parts[key] = parts
        return parts

    def failed(
        self, *, action: str, executable: str, target: str, subject: str, status: str, message: str
    ) -> None:
        stamp, _ = self._wazuh.at(int(time.time()))
        what = f"{action} {subject} on {target} {status}: {_one_line(message)}"
        text = f" {ar_program(executable)}: {what}\n"
        self._ar.add(stamp + text.encode("utf-8", errors="replace"))

    def decision(self, event: str, **fields: Any) -> None:
        self.write({k: v for k, v in fields.items() if v is not None}, event)

    def stamp(self) -> bytes:
        """Now, as the ``timestamp`` of a JSON record: ``2024-05-01T12:00:00.123+0000``."""
        millisecond = int(time.time() * 1000)
        if millisecond != self._millisecond:
            return self._new_stamp(millisecond)
        return self._stamp

    def _new_stamp(self, millisecond: int) -> bytes:
        second, part = divmod(millisecond, 1000)
        text, zone = self._iso.at(second)
        self._millisecond = millisecond
        self._stamp = b"".join((text, b".", _MILLIS[part], zone))
        return self._stamp

    def write(self, fields: dict[str, Any], event: str) -> None:
        """Append one record: ``fields`` (no None values) after the timestamp and event."""
        body = orjson.dumps(fields, default=str)
        head = b'{"timestamp":"%s","event":%s' % (self.stamp(), orjson.dumps(event))
        self._json.add(b"".join((head, b"," if len(body) > 2 else b"", body[1:], b"\n")))

    def write_serialised(self, head: bytes, middle: bytes, tail: bytes) -> None:
        """Append one record from serialised pieces: the record is ``{"timestamp":"...`` then ``head``
        (from the closing quote of the timestamp: ``","event":"...",`` and members), ``middle`` and
        ``tail`` (the last members, ``}`` and the newline). See ``record_pieces``."""
        # stamp() and _Lines.add() written out: this runs for every refresh.
        millisecond = int(time.time() * 1000)
        stamp = self._stamp if millisecond == self._millisecond else self._new_stamp(millisecond)
        line = b"".join((b'{"timestamp":"', stamp, head, middle, tail))
        out = self._json
        out.parts.append(line)
        out.size += len(line)
        if out.size >= WRITE_CHUNK:
            out.flush()

    def flush(self) -> None:
        self._ar.flush()
        self._json.flush()

    def close(self) -> None:
        self._ar.close()
        self._json.close()


def record_pieces(event: str, before: dict[str, Any], after: dict[str, Any]) -> tuple[bytes, bytes]:
    """The ``head`` and ``tail`` of ``AuditLog.write_serialised`` for records with these members before
    and after the middle ones (which must not be empty)."""
    head = b'","event":%s,%s,' % (orjson.dumps(event), orjson.dumps(before)[1:-1])
    return head, b",%s}\n" % orjson.dumps(after)[1:-1]
