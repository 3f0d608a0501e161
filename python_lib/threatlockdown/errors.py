"""Errors that point at the file, line and element a user has to fix."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceError:
    """One problem in an input file, printed as ``path:line: <element>: message``."""

    path: str
    line: int | None
    element: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        what = f" <{self.element}>:" if self.element else ""
        return f"{where}:{what} {self.message}"


class SourceErrors(Exception):
    """Raised when a file cannot be used; carries every problem found, not just the first."""

    def __init__(self, errors: list[SourceError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))
