"""Private data directories of ansible-runner runs: one fresh directory per run, the newest N kept.

A directory is never reused: ansible-runner passes an existing ``env/extravars`` again, so variables of an
earlier batch (its alerts, its addresses) would leak into the next run. Kept directories are the
forensic record of what ran (command line, extra vars, stdout, job events, status, rc).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# <UTC time to the microsecond>-<batch id>-<random>: the name sorts by creation time.
RUN_NAME = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-[A-Za-z0-9_.-]{0,40}-[0-9a-f]{8}$")
UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass
class RunDirectories:
    root: Path
    keep: int
    active: set[Path] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.keep < 1:
            raise ValueError(f"keep_runs must be at least 1, got {self.keep}")

    def create(self, batch_id: str) -> Path:
        """A new, empty, private (0700) directory for one run."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        now = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1_000_000):06d}Z"
        label = UNSAFE_NAME_CHARS.sub("_", batch_id)[:40]
        path = self.root / f"{stamp}-{label}-{secrets.token_hex(4)}"
        path.mkdir(mode=0o700)
        self.active.add(path)
        return path

    def finish(self, path: Path) -> None:
        self.active.discard(path)

    def existing(self) -> list[Path]:
        """Run directories in the root, oldest first (other files are ignored)."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if p.is_dir() and RUN_NAME.match(p.name))

    def prune(self) -> list[Path]:
        """Remove the oldest finished runs beyond ``keep``; returns what was removed."""
        runs = self.existing()
        removed = []
        for path in runs[: max(0, len(runs) - self.keep)]:
            if path in self.active:
                continue
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(path)
            removed.append(path)
        return removed


def short_private_dir(anchor: Path, kind: str) -> Path:
    """A short directory for Unix sockets that belong to ``anchor`` (whose own path is too long for them):
    /run/threatlockdown/ as root, else the temporary directory, named after a hash of ``anchor``."""
    digest = hashlib.sha256(str(anchor).encode()).hexdigest()[:12]
    base = Path("/run/threatlockdown") if os.geteuid() == 0 else Path(tempfile.gettempdir())
    return base / f"tld-{kind}-{digest}"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (0700) if needed and check it is a real directory of ours that nobody else can use:
    SSH control sockets and the warm server's socket run commands as us."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise PermissionError(
            f"{path} must be a directory owned by uid {os.geteuid()} with mode 0700 "
            f"(found uid {info.st_uid}, mode {stat.filemode(info.st_mode)})"
        )
    return path
