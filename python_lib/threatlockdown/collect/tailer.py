"""Following log files: inotify or polling, wildcards, rotation, truncation and acked positions."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import hashlib
import logging
import os
import stat
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from .acks import AckTracker
from .event import MAX_EVENT_BYTES, RawEvent
from .formats import FileFormat, Shaped, Shaper
from .inotify import DIR_MASK, IN_IGNORED, IN_ONLYDIR, IN_Q_OVERFLOW, STRUCTURE_CHANGES, Inotify
from .lines import LineSplitter
from .positions import FilePosition, PositionStore
from .ratelimit import LogLimiter

READ_CHUNK = 256 * 1024
_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY

Identity = tuple[int, int]  # (st_dev, st_ino)


class FileClaims:
    """Which tailer reads which path, so two overlapping <localfile> patterns do not read a file twice."""

    def __init__(self) -> None:
        self._owners: dict[str, str] = {}

    def claim(self, path: str, owner: str) -> str:
        """Claim ``path``; return its owner (``owner`` when the claim succeeded)."""
        return self._owners.setdefault(path, owner)

    def release(self, path: str, owner: str) -> None:
        if self._owners.get(path) == owner:
            del self._owners[path]


@dataclass(eq=False)
class TailedFile:
    """One open file: how far it was read and how far its events were acked."""

    path: str  # the path it was opened under; events carry it as their location
    fd: int
    device: int
    inode: int
    read_offset: int  # next byte to read
    splitter: LineSplitter
    shaper: Shaper
    acks: AckTracker[int]
    head_sha256: str | None = None  # hash of the first line: tells a file apart from its replacement
    head_len: int = 0
    seen_size: int = 0
    rotated: bool = False  # no longer at ``path``: read by descriptor until it stops growing
    last_growth: float = field(default_factory=time.monotonic)

    @property
    def identity(self) -> Identity:
        return (self.device, self.inode)

    def position(self) -> FilePosition:
        return FilePosition(self.device, self.inode, self.acks.committed, self.head_sha256)


def read_head(fd: int) -> tuple[str, int] | None:
    """SHA-256 and length of the file's first line (newline included), None while it is incomplete."""
    data = os.pread(fd, MAX_EVENT_BYTES + 1, 0)
    nl = data.find(b"\n")
    if nl >= 0:
        head = data[: nl + 1]
    elif len(data) > MAX_EVENT_BYTES:
        head = data[:MAX_EVENT_BYTES]  # an endless first line: its start identifies the file
    else:
        return None
    return hashlib.sha256(head).hexdigest(), len(head)


def end_of_complete_lines(fd: int, size: int) -> int:
    """Where "only future events" starts: after the last newline, so a line being written is kept whole."""
    if size == 0:
        return 0
    span = min(size, MAX_EVENT_BYTES)
    tail = os.pread(fd, span, size - span)
    nl = tail.rfind(b"\n")
    if nl >= 0:
        return size - span + nl + 1
    return 0 if size <= MAX_EVENT_BYTES else size


def path_matches(pattern: str, path: str) -> bool:
    """glob semantics for a path that may not exist: each component matched on its own."""
    if not glob.has_magic(pattern):
        return pattern == path
    parts, names = pattern.split("/"), path.split("/")
    return len(parts) == len(names) and all(fnmatchcase(n, p) for p, n in zip(parts, names, strict=True))


class FileTailer:
    """Reads one <localfile> location (a path or a wildcard pattern) as a Collector."""

    def __init__(
        self,
        *,
        location: str,
        fmt: FileFormat,
        store: PositionStore,
        logger: logging.Logger,
        claims: FileClaims | None = None,
        read_existing: bool = False,
        exclude: Sequence[str] = (),
        use_inotify: bool = True,
        poll_interval: float = 0.25,
        flush_interval: float = 1.0,
        rescan_interval: float = 1.0,
        rotated_grace: float = 2.0,
        max_unacked: int = 100_000,
    ) -> None:
        self.name = f"file:{location}"
        self.location = location
        self._fmt = fmt
        self._store = store
        self._logger = logger
        self._claims = claims if claims is not None else FileClaims()
        self._read_existing = read_existing
        self._exclude = tuple(exclude)
        self._use_inotify = use_inotify
        self._poll = poll_interval
        self._flush_every = flush_interval
        self._rescan_every = rescan_interval
        self._grace = rotated_grace
        self._max_unacked = max_unacked
        self._limiter = LogLimiter(logger)
        self._live: dict[str, TailedFile] = {}
        self._draining: list[TailedFile] = []  # rotated or deleted, still read by descriptor
        self._retired: list[TailedFile] = []  # closed, kept until their last events are acked
        self._saved_paths: set[str] = set()
        # After run() ends: the files whose acks may still arrive, so stage_positions() can save them.
        self._stopped: list[TailedFile] | None = None
        self._noted: set[str] = set()
        self._inotify: Inotify | None = None
        self._wd_by_dir: dict[str, int] = {}
        self._dir_by_wd: dict[int, str] = {}
        self._wake = asyncio.Event()
        self._rescan = False
        self._paused = False
        self._counts = dict.fromkeys(
            ("received", "dropped", "errors", "skipped", "rotations", "truncations", "rotated_missing"), 0
        )
        self._counts["lost_bytes"] = 0

    @property
    def inotify_active(self) -> bool:
        return self._inotify is not None

    def stats(self) -> dict[str, int]:
        files = [*self._live.values(), *self._draining, *self._retired]
        return {
            **self._counts,
            "files": len(self._live),
            "draining": len(self._draining),
            "unacked": sum(f.acks.outstanding for f in files),
        }

    @property
    def store(self) -> PositionStore:
        return self._store

    def stage_positions(self) -> None:
        """Put the acked positions into the store without writing it (the caller saves the store).

        Works during run() and after it returned: the manager acks the events still queued at a stop
        and then saves their positions."""
        if self._stopped is None:
            self._stage()
            return
        by_path: dict[str, list[FilePosition]] = {}
        for f in self._stopped:
            by_path.setdefault(f.path, []).append(f.position())
        for path, positions in by_path.items():
            self._store.put(path, positions)

    async def run(self, out: asyncio.Queue[RawEvent]) -> None:
        self._stopped = None
        loop = asyncio.get_running_loop()
        self._start_inotify(loop)
        try:
            self._scan(startup=True)
            next_flush = next_scan = loop.time()
            while True:
                self._wake.clear()
                await self._pump_all(out)
                now = loop.time()
                if now >= next_flush:
                    self._save()
                    next_flush = now + self._flush_every
                quiet = self._inotify is not None and not self._draining and not self._paused
                timeout = min(self._flush_every, self._rescan_every) if quiet else self._poll
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                now = loop.time()
                if self._rescan or self._inotify is None or now >= next_scan:
                    self._rescan = False
                    self._scan(startup=False)
                    next_scan = now + self._rescan_every
        finally:
            self._save()
            self._shutdown(loop)

    # -- finding files -------------------------------------------------------------------------------

    def _expand(self) -> list[str]:
        paths = sorted(glob.glob(self.location)) if glob.has_magic(self.location) else [self.location]
        return [p for p in paths if not self._excluded(p)]

    def _excluded(self, path: str) -> bool:
        return any(path_matches(pattern, path) for pattern in self._exclude)

    def _scan(self, *, startup: bool) -> None:
        self._update_watches()
        for path, f in list(self._live.items()):
            try:
                st = os.stat(path)
            except FileNotFoundError:
                st = None
            except OSError:
                continue
            if st is None or (st.st_dev, st.st_ino) != f.identity:
                del self._live[path]
                f.rotated = True
                f.last_growth = time.monotonic()
                self._draining.append(f)
                self._counts["rotations"] += 1
                self._logger.info("%s: rotated or removed; reading the old file to its end", path)
        reading = {f.identity for f in (*self._live.values(), *self._draining)}
        found = self._expand()
        for path in found:
            if path not in self._live:
                self._open(path, startup=startup, reading=reading)
        if startup:
            self._recover_vanished(set(found), reading)

    def _open(self, path: str, *, startup: bool, reading: set[Identity]) -> None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            self._error(path, f"cannot read: {exc.strerror}")
            return
        if not stat.S_ISREG(st.st_mode):
            self._note_once(path, f"{path}: not a regular file; not read")
            return
        if (st.st_dev, st.st_ino) in reading:
            return  # a rotated file renamed to a name the wildcard also matches: already being read
        owner = self._claims.claim(path, self.name)
        if owner != self.name:
            self._note_once(path, f"{path}: already read for {owner}; not read twice")
            return
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except OSError as exc:
            self._claims.release(path, self.name)
            self._error(path, f"cannot open: {exc.strerror}")
            return
        try:
            st = os.fstat(fd)
            head = read_head(fd)
        except OSError as exc:
            os.close(fd)
            self._claims.release(path, self.name)
            self._error(path, f"cannot read: {exc.strerror}")
            return
        saved = self._store.get(path) if startup else ()
        matched = next((p for p in saved if _same_file(p, st, head)), None)
        if matched is not None:
            start = matched.offset
        elif startup and not saved and not self._read_existing:
            start = end_of_complete_lines(fd, st.st_size)
        else:
            start = 0  # new since we started, or another file now lives where the saved one was
        f = self._tailed(path, fd, st, start, head)
        self._live[path] = f
        reading.add(f.identity)
        if startup:
            self._recover_rotated(path, [p for p in saved if p is not matched], reading)
        how = "resuming at" if matched else "starting at"
        self._logger.info("%s: reading (%s offset %d)", path, how, start)

    def _tailed(
        self, path: str, fd: int, st: os.stat_result, start: int, head: tuple[str, int] | None
    ) -> TailedFile:
        f = TailedFile(
            path=path,
            fd=fd,
            device=st.st_dev,
            inode=st.st_ino,
            read_offset=start,
            splitter=LineSplitter(start),
            shaper=self._fmt.shaper(),
            acks=AckTracker(start),
            seen_size=st.st_size,
        )
        if head is not None:
            f.head_sha256, f.head_len = head
        return f

    def _recover_rotated(self, path: str, saved: Iterable[FilePosition], reading: set[Identity]) -> None:
        """After a restart: finish the files rotated away from ``path`` while we were stopped."""
        for pos in saved:
            if (pos.device, pos.inode) in reading:
                continue
            found = _find_rotated(os.path.dirname(path) or ".", pos)
            if found is None:
                self._counts["rotated_missing"] += 1
                self._logger.warning(
                    "%s: the file read before (inode %d, acked up to offset %d) is gone from %s; "
                    "lines written to it after that offset may be lost",
                    path,
                    pos.inode,
                    pos.offset,
                    os.path.dirname(path),
                )
                continue
            fd, st, head = found
            f = self._tailed(path, fd, st, pos.offset, head)
            f.rotated = True
            self._draining.append(f)
            reading.add(f.identity)
            self._logger.info(
                "%s: finishing its rotated file (inode %d) from offset %d", path, pos.inode, pos.offset
            )

    def _recover_vanished(self, found: set[str], reading: set[Identity]) -> None:
        """Saved paths of ours that no longer exist: their last file may still be in the directory."""
        for path in self._store.paths():
            if path in found or not path_matches(self.location, path):
                continue
            if self._excluded(path):
                continue
            if self._claims.claim(path, self.name) != self.name:
                continue
            self._saved_paths.add(path)  # forgotten at the next save unless a rotated file is found
            self._recover_rotated(path, self._store.get(path), reading)

    # -- watching ----------------------------------------------------------------------------------

    def _start_inotify(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._use_inotify:
            return
        try:
            self._inotify = Inotify()
        except OSError as exc:
            self._logger.warning(
                "%s: inotify unavailable (%s); polling every %.2f s", self.name, exc, self._poll
            )
            return
        loop.add_reader(self._inotify.fileno(), self._on_inotify)

    def _update_watches(self) -> None:
        if self._inotify is None:
            return
        parent = os.path.dirname(self.location) or "."
        dirs = glob.glob(parent) if glob.has_magic(parent) else [parent]
        for d in dirs:
            if d in self._wd_by_dir:
                continue
            try:
                wd = self._inotify.add_watch(d, DIR_MASK | IN_ONLYDIR)
            except OSError:
                continue  # not there yet; the periodic rescan tries again
            self._wd_by_dir[d] = wd
            self._dir_by_wd[wd] = d

    def _on_inotify(self) -> None:
        assert self._inotify is not None
        try:
            events = self._inotify.read_events()
        except OSError as exc:
            self._error(self.name, f"inotify read failed: {exc}")
            return
        base = os.path.basename(self.location)
        wake = False
        for ev in events:
            if ev.mask & IN_Q_OVERFLOW:
                self._rescan = wake = True
            elif ev.mask & IN_IGNORED:
                d = self._dir_by_wd.pop(ev.wd, None)
                if d is not None:
                    self._wd_by_dir.pop(d, None)
                self._rescan = wake = True
            elif fnmatchcase(ev.name, base):
                wake = True
                if ev.mask & STRUCTURE_CHANGES:
                    self._rescan = True
        if wake:
            self._wake.set()

    # -- reading -----------------------------------------------------------------------------------

    async def _pump_all(self, out: asyncio.Queue[RawEvent]) -> None:
        self._paused = False
        now = time.monotonic()
        for f in list(self._draining):
            if await self._pump(f, out):
                f.last_growth = now
            elif now - f.last_growth >= self._grace and self._read_to_end(f):
                await self._finish_rotated(f, out)
        for f in list(self._live.values()):
            await self._pump(f, out)

    async def _pump(self, f: TailedFile, out: asyncio.Queue[RawEvent]) -> bool:
        """Read what ``f`` has now; True when anything was read."""
        try:
            size = os.fstat(f.fd).st_size
            if not f.rotated and self._was_truncated(f, size):
                await self._restart_from_zero(f, out)
            if f.head_sha256 is None:
                head = read_head(f.fd)
                if head is not None:
                    f.head_sha256, f.head_len = head
            f.seen_size = size
            grew = False
            while True:
                if f.acks.outstanding >= self._max_unacked:
                    self._paused = True
                    self._limiter.warning(
                        f"unacked:{f.path}",
                        "%s: %d events not acked yet; reading paused until analysis acks them",
                        f.path,
                        f.acks.outstanding,
                    )
                    return grew
                chunk = os.pread(f.fd, READ_CHUNK, f.read_offset)
                if not chunk:
                    return grew
                grew = True
                f.read_offset += len(chunk)
                for line in f.splitter.feed(chunk):
                    await self._deliver(f, f.shaper.take(line), out)
                    if f.acks.outstanding >= self._max_unacked:
                        # Stop inside the chunk; the rest is read again once acks arrive.
                        f.read_offset = line.end
                        f.splitter = LineSplitter(line.end, f.splitter.max_bytes)
                        break
                await asyncio.sleep(0)  # a large backlog must not starve the other tasks
        except OSError as exc:
            self._error(f.path, f"read failed: {exc.strerror}")
            return False

    def _read_to_end(self, f: TailedFile) -> bool:
        """Nothing left to read (reading may have been paused waiting for acks, or failed)."""
        try:
            return f.read_offset >= os.fstat(f.fd).st_size and f.acks.outstanding < self._max_unacked
        except OSError:
            return True  # cannot be read any more; close it

    def _was_truncated(self, f: TailedFile, size: int) -> bool:
        if size < f.read_offset:
            return True
        if f.head_len and size != f.seen_size and f.read_offset >= f.head_len:
            # Truncated and written again past our offset between two looks: the first line changed.
            head = os.pread(f.fd, f.head_len, 0)
            return hashlib.sha256(head).hexdigest() != f.head_sha256
        return False

    async def _restart_from_zero(self, f: TailedFile, out: asyncio.Queue[RawEvent]) -> None:
        self._counts["truncations"] += 1
        lost = f.splitter.pending
        self._counts["lost_bytes"] += lost
        await self._deliver(f, f.shaper.flush(), out)
        self._logger.warning(
            "%s: truncated (copytruncate?); reading again from the start%s",
            f.path,
            f"; {lost} bytes of an unfinished line are lost" if lost else "",
        )
        f.read_offset = 0
        f.splitter = LineSplitter(0)
        f.shaper = self._fmt.shaper()
        f.acks = AckTracker(0)  # acks of events from the old content no longer move this position
        f.head_sha256, f.head_len = None, 0

    async def _finish_rotated(self, f: TailedFile, out: asyncio.Queue[RawEvent]) -> None:
        tail = f.splitter.flush_partial()  # the file will not grow: its last line has no newline
        if tail is not None:
            await self._deliver(f, f.shaper.take(tail), out)
        await self._deliver(f, f.shaper.flush(), out)
        self._draining.remove(f)
        os.close(f.fd)
        if f.acks.outstanding:
            self._retired.append(f)
        self._logger.info(
            "%s: finished the rotated file (inode %d) at offset %d", f.path, f.inode, f.read_offset
        )

    async def _deliver(self, f: TailedFile, shaped: Shaped | None, out: asyncio.Queue[RawEvent]) -> None:
        if shaped is None:
            return  # held for a multi-line event
        if shaped.text is None:
            f.acks.skip(shaped.end)
            self._counts["skipped"] += 1
            return
        ack = f.acks.issue(shaped.end)
        await out.put(RawEvent(f.path, shaped.text, self._fmt.event_format, ack=ack, source=self.name))
        self._counts["received"] += 1

    # -- saving and closing ------------------------------------------------------------------------

    def _save(self) -> None:
        self._stage()
        self._store.save()

    def _stage(self) -> None:
        self._retired = [f for f in self._retired if f.acks.outstanding]
        by_path: dict[str, list[FilePosition]] = {}
        for f in (*self._retired, *self._draining, *self._live.values()):
            by_path.setdefault(f.path, []).append(f.position())
        for path in self._saved_paths - by_path.keys():
            self._store.put(path, [])
            self._claims.release(path, self.name)
        for path, positions in by_path.items():
            self._store.put(path, positions)
        self._saved_paths = set(by_path)

    def _shutdown(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._inotify is not None:
            loop.remove_reader(self._inotify.fileno())
            self._inotify.close()
            self._inotify = None
        for f in (*self._live.values(), *self._draining):
            with contextlib.suppress(OSError):
                os.close(f.fd)
        self._stopped = [*self._retired, *self._draining, *self._live.values()]
        for path in {f.path for f in self._stopped}:
            self._claims.release(path, self.name)
        self._live.clear()
        self._draining.clear()
        self._wd_by_dir.clear()
        self._dir_by_wd.clear()

    def _note_once(self, path: str, message: str) -> None:
        # Seen again at every rescan; saying it once is enough.
        if path not in self._noted:
            self._noted.add(path)
            self._logger.warning("%s", message)

    def _error(self, key: str, message: str) -> None:
        self._counts["errors"] += 1
        self._limiter.warning(f"error:{key}:{message}", "%s: %s", key, message)


def _same_file(pos: FilePosition, st: os.stat_result, head: tuple[str, int] | None) -> bool:
    if (pos.device, pos.inode) != (st.st_dev, st.st_ino) or pos.offset > st.st_size:
        return False
    if pos.first_line_sha256 is None:
        return True  # no complete first line was known; the offset cannot be past it
    return head is not None and head[0] == pos.first_line_sha256


def _find_rotated(
    directory: str, pos: FilePosition
) -> tuple[int, os.stat_result, tuple[str, int] | None] | None:
    """Open the file of ``pos`` if it is still in ``directory`` under another name (e.g. auth.log.1)."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return None
    for entry in entries:
        try:
            if entry.inode() != pos.inode or not entry.is_file(follow_symlinks=False):
                continue
            fd = os.open(entry.path, _OPEN_FLAGS)
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            head = read_head(fd)
        except OSError:
            os.close(fd)
            continue
        if _same_file(pos, st, head):
            return fd, st, head
        os.close(fd)
    return None
