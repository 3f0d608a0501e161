"""Manager side of client.keys: adding agents safely and looking keys up while the file may change."""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import SourceErrors
from .keys import (
    AgentKey,
    KeyFile,
    ip_problem,
    name_problem,
    new_agent_key,
    read_client_keys,
    write_client_keys,
)
from .paths import HomeLayout

log = logging.getLogger("threatlockdown.transport")


class DuplicateAgentError(ValueError):
    """An active agent already has this name."""


@contextmanager
def locked_client_keys(home: Path) -> Iterator[Path]:
    """Hold an exclusive lock for a read-modify-write of client.keys (the CLI and the enrollment
    server may both add agents at the same time)."""
    layout = HomeLayout(home)
    layout.etc.mkdir(parents=True, exist_ok=True)
    fd = os.open(layout.client_keys_lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield layout.client_keys
    finally:
        os.close(fd)  # closing releases the lock


def register_agent(home: Path, name: str, ip: str = "any", *, replace: bool = False) -> AgentKey:
    """Give ``name`` a new ID and key and save it in the manager's client.keys.

    With ``replace``, an existing agent of that name is marked removed first (its events keep their
    old ID); otherwise a duplicate name raises DuplicateAgentError.
    """
    problem = name_problem(name) or ip_problem(ip)
    if problem:
        raise ValueError(problem)
    with locked_client_keys(home) as path:
        keys = read_client_keys(path, missing_ok=True)
        existing = keys.by_name(name)
        if existing is not None:
            if not replace:
                raise DuplicateAgentError(f"an agent named {name!r} already exists (ID {existing.id})")
            keys = keys.without_agent(existing.id)
        agent = AgentKey(id=keys.next_id(), name=name, ip=ip, key=new_agent_key())
        write_client_keys(path, keys.with_agent(agent))
    return agent


def add_agent(home: Path, name: str, ip: str = "any") -> str:
    """Pre-shared-key path: register an agent on the manager and return its ``ID NAME IP KEY`` line,
    to be written as the agent's own etc/client.keys."""
    return register_agent(home, name, ip).line()


@dataclass(frozen=True)
class _FileStamp:
    mtime_ns: int
    size: int
    inode: int


def _stamp(path: Path) -> _FileStamp | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return _FileStamp(st.st_mtime_ns, st.st_size, st.st_ino)


class KeyStore:
    """The manager's view of client.keys, re-read whenever the file changes on disk.

    A change that does not parse is logged and ignored, keeping the last good keys, so that a typo
    made while the manager runs does not disconnect every agent.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._keys = KeyFile()
        self._stamp: _FileStamp | None = None

    def load(self) -> None:
        """Read the file now; errors are raised (used at start, where refusing to run is right)."""
        stamp = _stamp(self._path)
        self._keys = read_client_keys(self._path, missing_ok=True)
        self._stamp = stamp

    def _refresh(self) -> None:
        stamp = _stamp(self._path)
        if stamp == self._stamp:
            return
        try:
            keys = read_client_keys(self._path, missing_ok=True)
        except SourceErrors as exc:
            log.error("client.keys changed but cannot be used; keeping the previous keys:\n%s", exc)
            self._stamp = stamp  # report once per change, not on every connection
            return
        self._keys = keys
        self._stamp = stamp
        log.info("reloaded %s (%d agents)", self._path, len(keys.agents))

    def lookup(self, agent_id: str) -> AgentKey | None:
        self._refresh()
        return self._keys.by_id(agent_id)

    def agents(self) -> tuple[AgentKey, ...]:
        self._refresh()
        return self._keys.agents
