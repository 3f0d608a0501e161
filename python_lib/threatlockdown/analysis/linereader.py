"""The lines of a log stream as text, decoded a block at a time.

Each line is what ``raw.decode("utf-8", "replace").rstrip("\\r\\n")`` makes of it when the stream is
read line by line, and empty lines are left out. Blocks end at a newline, and a newline byte is never
part of a UTF-8 sequence, so decoding a block gives the same text (the same U+FFFD replacements) as
decoding its lines one by one. Splitting, stripping and dropping empty lines run in C over the block:
per line, the Python code of a replay then does only the analysis.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from itertools import chain, repeat
from typing import BinaryIO

BLOCK_BYTES = 1 << 20


class LineReader:
    """Iterates the non-empty lines of ``stream``; ``count`` is how many it has given so far.

    ``on_read`` is told the size of each block read (for a progress bar); a block is at most
    ``block_bytes`` long, unless a line is longer.
    """

    def __init__(
        self,
        stream: BinaryIO | io.BufferedIOBase,
        on_read: Callable[[int], None] | None = None,
        block_bytes: int = BLOCK_BYTES,
    ) -> None:
        self._stream = stream
        self._on_read = on_read
        self._block_bytes = block_bytes
        self.count = 0

    def __iter__(self) -> Iterator[str]:
        return chain.from_iterable(self._blocks())

    def _blocks(self) -> Iterator[list[str]]:
        stream = self._stream
        # read1: what a pipe has so far, so that a live stream is analysed as it comes.
        read = stream.read1 if isinstance(stream, io.BufferedIOBase) else stream.read
        size = self._block_bytes
        pending: list[bytes] = []  # what was read after the last newline
        while True:
            data = read(size)
            if not data:
                break
            if self._on_read is not None:
                self._on_read(len(data))
            end = data.rfind(b"\n") + 1
            if end == 0:
                pending.append(data)
                continue
            block, rest = (data, b"") if end == len(data) else (data[:end], data[end:])
            if pending:
                pending.append(block)
                block = b"".join(pending)
                pending = []
            if rest:
                pending.append(rest)
            yield self._lines(block)
        if pending:
            yield self._lines(b"".join(pending))

    def _lines(self, block: bytes) -> list[str]:
        text = block.decode("utf-8", "replace")
        lines = list(filter(None, map(str.rstrip, text.split("\n"), repeat("\r\n"))))
        self.count += len(lines)
        return lines
