"""Starting host daemons and finding/stopping every process that lives in a lab's namespaces."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from .commands import HOST_ENV

# A namespace is identified by the device and inode of its nsfs file.
NsId = tuple[int, int]
_NS_KINDS = ("net", "mnt", "uts")


def start_daemon(prefix: Sequence[str], argv: Sequence[str], console: Path) -> subprocess.Popen[bytes]:
    """Start a long-running program inside a host, in its own session so terminal signals do not reach it."""
    console.parent.mkdir(parents=True, exist_ok=True)
    with console.open("ab") as out:
        return subprocess.Popen(
            [*prefix, *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(HOST_ENV),
            start_new_session=True,
        )


def namespace_id(path: Path) -> NsId | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def pids_in_namespaces(ns_ids: set[NsId]) -> set[int]:
    """Every live process that is in any of the given namespaces (whatever started it)."""
    found: set[int] = set()
    if not ns_ids:
        return found
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid in (1, me):
            continue
        for kind in _NS_KINDS:
            try:
                st = os.stat(f"/proc/{pid}/ns/{kind}")
            except OSError:
                # Gone, a zombie, or a kernel thread: nothing to stop.
                break
            if (st.st_dev, st.st_ino) in ns_ids:
                found.add(pid)
                break
    return found


def is_alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    # A zombie has exited; only its parent can remove it.
    return bool(fields) and fields[0] not in ("Z", "X")


def _reap(pids: Iterable[int], children: Mapping[int, subprocess.Popen[bytes]]) -> None:
    for pid in pids:
        proc = children.get(pid)
        if proc is not None:
            proc.poll()
            continue
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


def _signal(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def stop_processes(
    find: Callable[[], set[int]],
    children: Mapping[int, subprocess.Popen[bytes]],
    grace: float = 2.0,
    rounds: int = 5,
) -> set[int]:
    """SIGTERM what ``find`` returns, SIGKILL what survives ``grace`` seconds; repeat while new ones appear
    (an sshd session can fork while we work). Returns the pids still alive at the end (normally none)."""
    stopped: set[int] = set()
    for _ in range(rounds):
        pids = {p for p in find() if is_alive(p)}
        if not pids:
            break
        stopped |= pids
        _signal(pids, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            _reap(pids, children)
            if not any(is_alive(p) for p in pids):
                break
            time.sleep(0.02)
        survivors = {p for p in pids if is_alive(p)}
        _signal(survivors, signal.SIGKILL)
        deadline = time.monotonic() + grace
        while survivors and time.monotonic() < deadline:
            _reap(survivors, children)
            survivors = {p for p in survivors if is_alive(p)}
            time.sleep(0.02)
    _reap(stopped, children)
    return {p for p in find() if is_alive(p)}
