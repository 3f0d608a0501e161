# Copyright: ThreatLockDown contributors
# SPDX-License-Identifier: Apache-2.0
"""Running external programs: always an argv list, never a shell.

Backends talk to a ``Runner`` so unit tests can replace the real one with a recorder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

# Firewall tools live in sbin directories that a non-login PATH often lacks.
SBIN_DIRS = ["/usr/sbin", "/sbin", "/usr/local/sbin"]

# Output kept in results and error messages, so a noisy tool cannot flood the controller.
OUTPUT_LIMIT = 4000


def clip(text: str, limit: int = OUTPUT_LIMIT) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...[{len(text) - limit} more characters]"


@dataclass(frozen=True)
class CommandResult:
    argv: list[str]
    rc: int
    stdout: str
    stderr: str


class CommandError(Exception):
    """A command that had to succeed failed; the message names it, its status and its stderr."""

    def __init__(self, what: str, result: CommandResult) -> None:
        self.what = what
        self.result = result
        detail = clip(result.stderr.strip() or result.stdout.strip()) or "no output"
        super().__init__(f"{what} failed: {' '.join(result.argv)} exited {result.rc}: {detail}")


class Runner(Protocol):
    def run(self, argv: Sequence[str], data: str | None = None) -> CommandResult: ...

    def find(self, name: str) -> str | None: ...


class ModuleRunner:
    """Runs commands through ``AnsibleModule.run_command`` with an argv list and the C locale."""

    def __init__(self, module: Any) -> None:
        self._module = module

    def run(self, argv: Sequence[str], data: str | None = None) -> CommandResult:
        args = [str(a) for a in argv]
        rc, out, err = self._module.run_command(
            args,
            data=data,
            binary_data=data is not None,
            check_rc=False,
            use_unsafe_shell=False,
            # Without this run_command expands '~' and '$VAR' inside arguments.
            expand_user_and_vars=False,
            environ_update={"LC_ALL": "C", "LANG": "C"},
        )
        return CommandResult(argv=args, rc=int(rc), stdout=str(out), stderr=str(err))

    def find(self, name: str) -> str | None:
        found = self._module.get_bin_path(name, required=False, opt_dirs=SBIN_DIRS)
        return str(found) if found else None


def run_checked(runner: Runner, what: str, argv: Sequence[str], data: str | None = None) -> CommandResult:
    """Run ``argv`` and raise CommandError unless it exits 0."""
    result = runner.run(argv, data)
    if result.rc != 0:
        raise CommandError(what, result)
    return result
