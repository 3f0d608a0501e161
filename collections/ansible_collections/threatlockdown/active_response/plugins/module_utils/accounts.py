# Copyright: ThreatLockDown contributors
# SPDX-License-Identifier: Apache-2.0
"""Password locks for regular accounts (``usermod -L``/``-U``, or ``passwd -l``/``-u``).

Only accounts in the login.defs UID_MIN..UID_MAX range can be touched: locking root or a service account
from an alert would turn an attack into a denial of service.
"""

from __future__ import annotations

import pwd
from dataclasses import dataclass
from typing import Callable, Sequence

from ansible_collections.threatlockdown.active_response.plugins.module_utils.commands import (
    CommandError,
    Runner,
    run_checked,
)
from ansible_collections.threatlockdown.active_response.plugins.module_utils.validation import (
    InvalidItems,
    ItemProblem,
    describe_value,
)

# shadow-utils' defaults when login.defs does not set them.
DEFAULT_UID_MIN = 1000
DEFAULT_UID_MAX = 60000

LOCKED = "locked"
USABLE = "usable"
NO_PASSWORD = "no_password"
# `passwd -S` status words: Debian/shadow-utils print L/P/NP, RHEL's passwd prints LK/PS/NP.
STATUS_WORDS = {"L": LOCKED, "LK": LOCKED, "P": USABLE, "PS": USABLE, "NP": NO_PASSWORD}


class AccountError(Exception):
    pass


@dataclass(frozen=True)
class UidRange:
    minimum: int
    maximum: int


def parse_login_defs(path: str, text: str | None) -> UidRange:
    """UID_MIN/UID_MAX from login.defs text (None = file missing, use defaults)."""
    values = {"UID_MIN": DEFAULT_UID_MIN, "UID_MAX": DEFAULT_UID_MAX}
    for number, line in enumerate((text or "").splitlines(), start=1):
        words = line.split()
        if len(words) >= 2 and words[0] in values:
            if not words[1].isdigit():
                raise AccountError(f"{path}:{number}: {words[0]}: {words[1]!a} is not a number")
            values[words[0]] = int(words[1])
    if values["UID_MIN"] < 1 or values["UID_MAX"] < values["UID_MIN"]:
        raise AccountError(
            f"{path}: UID_MIN {values['UID_MIN']} / UID_MAX {values['UID_MAX']} do not form a usable range"
        )
    return UidRange(values["UID_MIN"], values["UID_MAX"])


def parse_status(user: str, output: str) -> str:
    """Lock state from ``passwd -S USER`` output (``USER L 2024-01-01 0 99999 7 -1``)."""
    words = output.split()
    if len(words) < 2 or words[0] != user or words[1] not in STATUS_WORDS:
        raise AccountError(f"unexpected 'passwd -S {user}' output: {output.strip()[:200]!a}")
    return STATUS_WORDS[words[1]]


@dataclass(frozen=True)
class Account:
    name: str
    uid: int | None

    @property
    def exists(self) -> bool:
        return self.uid is not None


def lookup_accounts(
    names: Sequence[str],
    uid_range: UidRange,
    getpwnam: Callable[[str], pwd.struct_passwd] = pwd.getpwnam,
) -> list[Account]:
    """Resolve names to accounts; raise with every refused one (root, uid 0, outside UID_MIN..UID_MAX)."""
    problems: list[ItemProblem] = []
    accounts: list[Account] = []
    for index, name in enumerate(names):
        try:
            uid: int | None = getpwnam(name).pw_uid
        except KeyError:
            uid = None
        if name == "root" or uid == 0:
            problems.append(ItemProblem("users", index, describe_value(name), "root (uid 0) is never locked"))
        elif uid is not None and not uid_range.minimum <= uid <= uid_range.maximum:
            problems.append(
                ItemProblem(
                    "users",
                    index,
                    describe_value(name),
                    f"uid {uid} is a system account "
                    f"(outside UID_MIN {uid_range.minimum} .. UID_MAX {uid_range.maximum})",
                )
            )
        accounts.append(Account(name, uid))
    if problems:
        raise InvalidItems(problems)
    return accounts


class PasswordLocks:
    """Reads and changes the lock state with shadow-utils, falling back to passwd."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        passwd = runner.find("passwd")
        if passwd is None:
            raise AccountError("the 'passwd' command is not installed")
        self.passwd = passwd
        self.usermod = runner.find("usermod")

    def status(self, name: str) -> str:
        result = run_checked(self.runner, f"reading the password state of {name}", [self.passwd, "-S", name])
        return parse_status(name, result.stdout)

    def commands(self, name: str, lock: bool) -> list[str]:
        if self.usermod:
            return [self.usermod, "-L" if lock else "-U", "--", name]
        return [self.passwd, "-l" if lock else "-u", name]

    def set_locked(self, name: str, lock: bool) -> None:
        result = self.runner.run(self.commands(name, lock))
        if result.rc != 0:
            raise CommandError(f"{'locking' if lock else 'unlocking'} {name}", result)

    def statuses(self, accounts: Sequence[Account]) -> dict[str, str]:
        return {a.name: self.status(a.name) for a in accounts if a.exists}


def plan_changes(
    accounts: Sequence[Account], statuses: dict[str, str], lock: bool
) -> list[tuple[Account, str]]:
    """(account, status before) for every existing account whose state differs from the wanted one."""
    changes = []
    for account in accounts:
        if not account.exists:
            continue
        before = statuses[account.name]
        if lock and before != LOCKED:
            changes.append((account, before))
        if not lock and before == LOCKED:
            changes.append((account, before))
    return changes
