# Copyright: ThreatLockDown contributors
# SPDX-License-Identifier: Apache-2.0
"""Replace a file atomically: readers see either the old or the new content, never half of it."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile


def read_text(path: str) -> str | None:
    """Content of ``path``, or None when it does not exist."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def write_atomically(path: str, text: str, new_file_mode: int = 0o644) -> None:
    """Write ``text`` to a temporary file in the same directory, then rename it over ``path``.

    The same directory keeps the rename on one filesystem (atomic); an existing file's mode and owner
    are copied so the replacement is indistinguishable apart from its content.
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        current = os.stat(path)
    except FileNotFoundError:
        current = None
    fd, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write(text)
            handle.flush()
            if current is not None:
                os.fchmod(handle.fileno(), stat.S_IMODE(current.st_mode))
                os.fchown(handle.fileno(), current.st_uid, current.st_gid)
            else:
                os.fchmod(handle.fileno(), new_file_mode)
            os.fsync(handle.fileno())
        os.rename(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    # Make the rename itself durable.
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
