"""Running as a daemon: the locked pidfile, detaching from the terminal, stopping by pid."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path


class AlreadyRunning(Exception):
    def __init__(self, pid: int | None, pidfile: Path) -> None:
        self.pid = pid
        super().__init__(f"already running (pid {pid}, {pidfile})" if pid else f"already running ({pidfile})")


class PidFile:
    """var/run/tld-<role>.pid, locked with flock for the daemon's lifetime.

    The lock, not the file's existence, says whether the daemon runs: a file left by a killed daemon
    is not locked and is simply taken over."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunning(running_pid(self.path), self.path) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd < 0:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = -1


def running_pid(pidfile: Path) -> int | None:
    """The pid of the daemon holding ``pidfile``'s lock, None when none does."""
    try:
        fd = os.open(pidfile, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else -1
        return None  # nobody holds it: a leftover
    finally:
        os.close(fd)


def stop_pid(pid: int, pidfile: Path, timeout: float) -> bool:
    """SIGTERM ``pid`` and wait until it released ``pidfile``; False if it is still running."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running_pid(pidfile) is None:
            return True
        time.sleep(0.05)
    return False


def wait_released(pidfile: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running_pid(pidfile) is None:
            return True
        time.sleep(0.05)
    return False


Notify = Callable[[str | None], None]


def daemonize(run: Callable[[Notify], int], log_path: Path) -> int:
    """Run ``run`` in a detached grandchild; return 0 once it reported it is ready, 1 if it failed.

    ``run`` receives ``notify(None)`` to call when it serves, or ``notify("why")`` when it cannot
    start. Its stdout and stderr go to ``log_path`` so that a crash leaves a trace."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked processes
        os.close(read_end)
        os.setsid()
        if os.fork() > 0:
            os._exit(0)
        rc = 1
        try:
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            out = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.chdir("/")
            told = False

            def notify(error: str | None) -> None:
                nonlocal told
                if told:
                    return
                told = True
                with contextlib.suppress(OSError):
                    os.write(
                        write_end, (("ERR " + error) if error else "OK").encode("utf-8", "replace") + b"\n"
                    )
                    os.close(write_end)

            rc = run(notify)
            notify(f"exited with status {rc} before it was ready")
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(rc)
    os.close(write_end)
    os.waitpid(child, 0)
    chunks = []
    while chunk := os.read(read_end, 4096):
        chunks.append(chunk)
    os.close(read_end)
    answer = b"".join(chunks).decode("utf-8", "replace").strip()
    if answer == "OK":
        return 0
    for line in (answer.removeprefix("ERR ") or "the daemon exited before it was ready").splitlines():
        print(f"error: {line}", file=sys.stderr)
    return 1
