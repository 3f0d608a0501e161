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


class AuditLog:
    """Both files, appended to and flushed at the engine's flush points."""

    def __init__(self, logs_dir: Path, *, node_name: str) -> None:
        logs_dir.mkdir(parents=True, exist_ok=True)
        self.ar_log_path = logs_dir / "active-responses.log"
        self.json_path = logs_dir / "active-responses.json"
        self.node_name = node_name
        self._ar: IO[bytes] = open(self.ar_log_path, "ab")  # noqa: SIM115 - kept open for the engine's life
        self._json: IO[bytes] = open(self.json_path, "ab")  # noqa: SIM115
        self._second = -1  # the second _prefix was formatted for: strftime once per second, not per line
        self._prefix = ""
        self._zone = ""

    def executed(
        self,
        *,
        action: str,
        executable: str,
        extra_args: Sequence[str],
        alert: Mapping[str, Any],
        target: str,
        when: float | None = None,
    ) -> None:
        message = ar_message(
            node_name=self.node_name,
            action=action,
            executable=executable,
            extra_args=extra_args,
            alert=alert,
            target=target,
        )
        stamp = wazuh_stamp(time.time() if when is None else when)
        self._ar.write(f"{stamp} {ar_program(executable)}: ".encode() + orjson.dumps(message) + b"\n")

    def failed(
        self, *, action: str, executable: str, target: str, subject: str, status: str, message: str
    ) -> None:
        stamp = wazuh_stamp(time.time())
        what = f"{action} {subject} on {target} {status}: {_one_line(message)}"
        text = f"{stamp} {ar_program(executable)}: {what}\n"
        self._ar.write(text.encode("utf-8", errors="replace"))

    def decision(self, event: str, **fields: Any) -> None:
        self.write({k: v for k, v in fields.items() if v is not None}, event)

    def write(self, fields: dict[str, Any], event: str) -> None:
        """Append one record: ``fields`` (no None values) after the timestamp and event."""
        now = time.time()
        second = int(now)
        if second != self._second:
            lt = time.localtime(second)
            self._second, self._prefix, self._zone = (
                second,
                time.strftime("%Y-%m-%dT%H:%M:%S", lt),
                time.strftime("%z", lt),
            )
        stamp = f"{self._prefix}.{int((now - second) * 1000):03d}{self._zone}"
        record: dict[str, Any] = {"timestamp": stamp, "event": event, **fields}
        self._json.write(orjson.dumps(record, default=str) + b"\n")

    def flush(self) -> None:
        self._ar.flush()
        self._json.flush()

    def close(self) -> None:
        self.flush()
        self._ar.close()
        self._json.close()
