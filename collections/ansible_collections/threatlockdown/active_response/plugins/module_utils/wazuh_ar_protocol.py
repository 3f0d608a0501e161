# Copyright: ThreatLockDown contributors
# SPDX-License-Identifier: Apache-2.0
"""Talking to a Wazuh 4.x active-response executable the way wazuh-execd does.

execd writes one JSON line on the script's stdin; a stateful script answers with one ``check_keys`` line;
execd replies ``continue`` (or ``abort`` when the keys are already being handled) with the same message.
A ``delete`` is written without any handshake. Scripts block on these reads, so every read and the final
wait have deadlines here and a script that overstays is killed with its process group.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from ansible_collections.threatlockdown.active_response.plugins.module_utils.validation import (
    check_alert_user,
    parse_address,
)

PROGRAM_DIR = "active-response/bin"
# Where each stock script looks for its inputs (see Wazuh's active_responses.c); checked when present.
ADDRESS_FIELDS = (
    ("data", "win", "eventdata", "ipAddress"),
    ("data", "win", "eventdata", "destinationIp"),
    ("data", "srcip"),
)
USER_FIELDS = (("data", "dstuser"),)


def build_message(
    executable: str, command: str, origin_name: str, alert: dict[str, Any], extra_args: Sequence[str]
) -> dict[str, Any]:
    """The message execd writes to the script, already rewritten by execd (module, program)."""
    return {
        "version": 1,
        "origin": {"name": origin_name, "module": "wazuh-execd"},
        "command": command,
        "parameters": {
            "extra_args": list(extra_args),
            # Pass-through data: serialised as JSON, never templated or interpreted.
            "alert": copy.deepcopy(alert),
            "program": f"{PROGRAM_DIR}/{os.path.basename(executable)}",
        },
    }


def encode_line(message: dict[str, Any]) -> bytes:
    """One compact JSON line; newlines inside strings are escaped by JSON, so it stays one line."""
    return (json.dumps(message, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")


def composed_key(executable: str, keys: Sequence[str]) -> str:
    """execd's key for its timeout list: ``<basename>-<key1>-<key2>...`` (e.g. ``firewall-drop-1.2.3.4``)."""
    return os.path.basename(executable) + "".join("-" + k for k in keys)


def parse_check_keys(line: bytes) -> list[str] | None:
    """Keys from a ``check_keys`` line, or None when the line is anything else."""
    try:
        data = json.loads(line.decode("utf-8", "replace"))
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("command") != "check_keys":
        return None
    parameters = data.get("parameters")
    keys = parameters.get("keys") if isinstance(parameters, dict) else None
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        return None
    return list(keys)


def _field(alert: Any, path: Sequence[str]) -> Any:
    value = alert
    for name in path:
        if not isinstance(value, dict) or name not in value:
            return None
        value = value[name]
    return value


def alert_problems(alert: Any) -> list[str]:
    """Reasons an alert must not be handed to a stock script (fields the scripts turn into arguments)."""
    if not isinstance(alert, dict):
        return ["alert is not a mapping"]
    problems = []
    for path in ADDRESS_FIELDS:
        value = _field(alert, path)
        if value is None:
            continue
        try:
            parse_address(value)
        except ValueError as exc:
            problems.append("{} {}: {}".format(".".join(path), ascii(value)[:80], exc))
    for path in USER_FIELDS:
        value = _field(alert, path)
        if value is None:
            continue
        reason = check_alert_user(value)
        if reason:
            problems.append("{} {}: {}".format(".".join(path), ascii(value)[:80], reason))
    return problems


@dataclass
class BoundedBuffer:
    """Keeps the first ``limit`` bytes of a stream and counts the rest."""

    limit: int
    data: bytearray = field(default_factory=bytearray)
    dropped: int = 0

    def feed(self, chunk: bytes) -> None:
        room = max(0, self.limit - len(self.data))
        self.data += chunk[:room]
        self.dropped += max(0, len(chunk) - room)

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


@dataclass
class Exchange:
    """What happened with one script run."""

    rc: int | None = None
    keys: list[str] | None = None
    key: str | None = None
    reply: str | None = None
    timed_out: bool = False
    stdout: str = ""
    stderr: str = ""
    stdout_dropped: int = 0
    stderr_dropped: int = 0


class ScriptSession:
    """One running script; every write and read is bounded by a deadline.

    stdin, stdout and stderr are serviced together from one selector so that neither side can block the
    other: a script that does not read a large message, or floods stderr, cannot hang the module.
    """

    def __init__(self, argv: list[str], cwd: str, limit: int) -> None:
        self.process = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=True,
            # Own process group so a timeout kills whatever the script started too.
            start_new_session=True,
        )
        stdin, stdout, stderr = self.process.stdin, self.process.stdout, self.process.stderr
        if stdin is None or stdout is None or stderr is None:
            raise OSError(f"could not open pipes to {argv[0]}")
        self.selector = selectors.DefaultSelector()
        self.stdin_fd = stdin.fileno()
        self.stdout_fd = stdout.fileno()
        self.stderr_fd = stderr.fileno()
        self.buffers = {self.stdout_fd: BoundedBuffer(limit), self.stderr_fd: BoundedBuffer(limit)}
        self.pending = bytearray()  # stdout bytes not yet consumed as the handshake line
        self.line_consumed = False
        self.stdout_eof = False
        self.outgoing = bytearray()
        self.stdin_open = True
        self.writing = False
        for fd in (self.stdin_fd, *self.buffers):
            os.set_blocking(fd, False)
        for fd in self.buffers:
            self.selector.register(fd, selectors.EVENT_READ)
        self.readers = len(self.buffers)

    def _track_writes(self) -> None:
        wanted = bool(self.outgoing) and self.stdin_open
        if wanted and not self.writing:
            self.selector.register(self.stdin_fd, selectors.EVENT_WRITE)
        elif self.writing and not wanted:
            self.selector.unregister(self.stdin_fd)
        self.writing = wanted

    def _write(self) -> None:
        try:
            written = os.write(self.stdin_fd, bytes(self.outgoing[:65536]))
        except BlockingIOError:
            return
        except BrokenPipeError:
            # The script closed stdin (or exited) without reading everything; nothing more to send.
            self.stdin_open = False
            self.outgoing.clear()
            return
        del self.outgoing[:written]

    def _read(self, fd: int) -> bool:
        """Read one chunk; False when nothing was there."""
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return False
        if not chunk:
            self.selector.unregister(fd)
            self.readers -= 1
            self.stdout_eof = self.stdout_eof or fd == self.stdout_fd
            return False
        self.buffers[fd].feed(chunk)
        if fd == self.stdout_fd and not self.line_consumed:
            self.pending += chunk
        return True

    def _pump(self, deadline: float) -> bool:
        """Service the pipes once, waiting up to ``deadline``; False when there is nothing to wait on."""
        self._track_writes()
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not self.selector.get_map():
            return False
        for key, _events in self.selector.select(remaining):
            if key.fd == self.stdin_fd:
                self._write()
            else:
                self._read(key.fd)
        self._track_writes()
        return True

    def send(self, payload: bytes, deadline: float) -> bool:
        """Write ``payload`` to stdin; False when the script stopped reading or the deadline passed."""
        if not self.stdin_open:
            return False
        self.outgoing += payload
        while self.outgoing and self.stdin_open and self._pump(deadline):
            pass
        return not self.outgoing and self.stdin_open

    def close_stdin(self) -> None:
        self.outgoing.clear()
        self.stdin_open = False
        self._track_writes()
        if self.process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()

    def read_line(self, deadline: float) -> bytes | None:
        """First stdout line, or None on EOF/deadline (the script did not start a handshake)."""
        while b"\n" not in self.pending and not self.stdout_eof:
            if not self._pump(deadline):
                break
        self.line_consumed = True
        if b"\n" not in self.pending:
            return None
        return bytes(self.pending.split(b"\n", 1)[0])

    def finish(self, deadline: float) -> Exchange:
        """Drain output until the script exits or the deadline passes; kill its group in the latter case."""
        while self.readers and time.monotonic() < deadline:
            if self.process.poll() is not None:
                # Exited; a background child may keep the pipes open, so take what is there and stop.
                for key in list(self.selector.get_map().values()):
                    while self._read(key.fd):
                        pass
                break
            self._pump(min(deadline, time.monotonic() + 0.2))
        result = Exchange()
        try:
            result.rc = self.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            result.timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            result.rc = self.process.wait()
        self.selector.close()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        out, err = self.buffers[self.stdout_fd], self.buffers[self.stderr_fd]
        result.stdout, result.stdout_dropped = out.text(), out.dropped
        result.stderr, result.stderr_dropped = err.text(), err.dropped
        return result


def run_script(
    executable: str,
    message: dict[str, Any],
    cwd: str,
    abort_keys: Sequence[str],
    handshake_timeout: float,
    run_timeout: float,
    output_limit: int,
) -> Exchange:
    """Run the script once with execd's protocol and return what happened."""
    session = ScriptSession([executable], cwd, output_limit)
    started = time.monotonic()
    session.send(encode_line(message), started + handshake_timeout)
    keys: list[str] | None = None
    reply: str | None = None
    key: str | None = None
    if message["command"] == "add":
        line = session.read_line(started + handshake_timeout)
        keys = parse_check_keys(line) if line is not None else None
        if keys is not None:
            key = composed_key(executable, keys)
            # Accept both execd's composed key and the bare keys so callers need not know the script name.
            refused = key in abort_keys or "-".join(keys) in abort_keys
            reply = "abort" if refused else "continue"
            answer = dict(message)
            answer["command"] = reply
            session.send(encode_line(answer), time.monotonic() + handshake_timeout)
    session.close_stdin()
    result = session.finish(time.monotonic() + run_timeout)
    result.keys, result.key, result.reply = keys, key, reply
    return result
