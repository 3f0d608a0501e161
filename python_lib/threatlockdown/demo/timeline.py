"""A readable timeline of the reference case: each step with the seconds since the start."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class Timeline:
    """Prints steps as they happen; ``failures`` counts the steps that did not hold."""

    out: TextIO = sys.stdout
    clock: Callable[[], float] = time.monotonic
    start: float = field(default=0.0)
    failures: int = 0

    def __post_init__(self) -> None:
        if not self.start:
            self.start = self.clock()

    def _stamp(self) -> str:
        return f"[+{self.clock() - self.start:6.1f} s]"

    def step(self, title: str, details: Iterable[str] = ()) -> None:
        self._print(f"{self._stamp()} {title}", details)

    def fail(self, title: str, details: Iterable[str] = ()) -> None:
        self.failures += 1
        self._print(f"{self._stamp()} FAILED: {title}", details)

    def note(self, text: str) -> None:
        self._print(f"{' ' * 12}{text}", ())

    def _print(self, head: str, details: Iterable[str]) -> None:
        lines = [head, *(f"{' ' * 14}{line}" for line in details)]
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
