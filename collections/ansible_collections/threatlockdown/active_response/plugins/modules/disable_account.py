#!/usr/bin/python
# Copyright: ThreatLockDown contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: disable_account
short_description: Lock or unlock the passwords of regular user accounts
version_added: "0.1.0"
description:
  - Locks (C(usermod -L), or C(passwd -l) without shadow-utils' usermod) or unlocks (C(usermod -U) /
    C(passwd -u)) a batch of accounts; the counterpart of Wazuh's C(disable-account) active response.
  - Idempotent on the state C(passwd -S) reports.
  - Refuses, before changing anything and listing each one, names that do not match
    C(^[a-z_][a-z0-9_-]{0,31}$), C(root), any account with uid 0 and system accounts, i.e. uids outside
    C(UID_MIN)..C(UID_MAX) of login.defs (defaults 1000..60000).
  - Names of accounts that do not exist are reported with C(exists=false) and a warning, not changed.
author:
  - ThreatLockDown contributors (@threatlockdown)
options:
  users:
    description:
      - Account names.
    type: list
    elements: str
    required: true
  state:
    description:
      - C(present) locks the accounts (the "disabled" state is present), C(absent) unlocks them.
    type: str
    choices: [present, absent]
    default: present
  login_defs:
    description:
      - login.defs file read for C(UID_MIN) and C(UID_MAX).
    type: path
    default: /etc/login.defs
notes:
  - A password lock does not stop logins with SSH keys or other non-password methods, the same limit as
    Wazuh's script.
  - Unlocking an account whose password field is only the lock character fails, as C(usermod -U) refuses to
    create a password-less account.
attributes:
  check_mode:
    description: Reads the lock state and reports what would change.
    support: full
  diff_mode:
    description: Shows the lock state of the given accounts before and after.
    support: full
  platform:
    description: Linux hosts with shadow-utils or passwd.
    support: full
    platforms: posix
"""

EXAMPLES = r"""
- name: Lock the account an attacker is guessing
  threatlockdown.active_response.disable_account:
    users: [alice]

- name: Unlock it again
  threatlockdown.active_response.disable_account:
    users: [alice]
    state: absent
"""

RETURN = r"""
locked:
  description: The given accounts that are locked when the module ends.
  returned: always
  type: list
  elements: str
  sample: ["alice"]
results:
  description: One entry per distinct user name.
  returned: always
  type: list
  elements: dict
  contains:
    user:
      description: Account name.
      type: str
    uid:
      description: Its uid, null when the account does not exist.
      type: int
    exists:
      description: Whether the account exists.
      type: bool
    changed:
      description: Whether the lock state was (or would be) changed.
      type: bool
    before:
      description: C(locked), C(usable) or C(no_password) as read before any change; null when missing.
      type: str
    after:
      description: The same after the change (predicted in check mode).
      type: str
  sample:
    - user: alice
      uid: 1001
      exists: true
      changed: true
      before: usable
      after: locked
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.threatlockdown.active_response.plugins.module_utils.accounts import (
    LOCKED,
    USABLE,
    AccountError,
    PasswordLocks,
    lookup_accounts,
    parse_login_defs,
    plan_changes,
)
from ansible_collections.threatlockdown.active_response.plugins.module_utils.atomic_file import read_text
from ansible_collections.threatlockdown.active_response.plugins.module_utils.commands import (
    CommandError,
    ModuleRunner,
)
from ansible_collections.threatlockdown.active_response.plugins.module_utils.module_run import (
    apply_or_predict,
    finish,
    state_diff,
)
from ansible_collections.threatlockdown.active_response.plugins.module_utils.validation import (
    parse_user_list,
)

ARGUMENT_SPEC: dict[str, Any] = dict(
    users=dict(type="list", elements="str", required=True),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    login_defs=dict(type="path", default="/etc/login.defs"),
)


def _listing(statuses: dict[str, str], names: list[str]) -> str:
    return "".join(f"{name}: {statuses[name]}\n" for name in names if name in statuses)


def run(module: Any) -> dict[str, Any]:
    names = parse_user_list("users", module.params["users"])
    path = module.params["login_defs"]
    uid_range = parse_login_defs(path, read_text(path))
    accounts = lookup_accounts(names, uid_range)
    lock = module.params["state"] == "present"
    locks = PasswordLocks(ModuleRunner(module))
    before = locks.statuses(accounts)
    changes = plan_changes(accounts, before, lock)
    changing = {account.name for account, _before in changes}

    def lock_or_unlock() -> None:
        for account, _status in changes:
            locks.set_locked(account.name, lock)

    after = apply_or_predict(
        module,
        bool(changes),
        apply=lock_or_unlock,
        read=lambda: locks.statuses(accounts),
        predict=lambda: {**before, **dict.fromkeys(changing, LOCKED if lock else USABLE)},
    )
    for account in accounts:
        if not account.exists:
            action = "lock" if lock else "unlock"
            module.warn(f"account {account.name} does not exist; nothing to {action}")
    return {
        "changed": bool(changes),
        "locked": [a.name for a in accounts if after.get(a.name) == LOCKED],
        "results": [
            {
                "user": a.name,
                "uid": a.uid,
                "exists": a.exists,
                "changed": a.name in changing,
                "before": before.get(a.name),
                "after": after.get(a.name),
            }
            for a in accounts
        ],
        "diff": state_diff("password lock state", _listing(before, names), _listing(after, names)),
    }


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    finish(module, run, (AccountError, CommandError))


if __name__ == "__main__":
    main()
