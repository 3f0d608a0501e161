#!/usr/bin/python
# Copyright: ThreatLockDown contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: restart_manager
short_description: Restart the ThreatLockDown manager on the host
version_added: "0.1.0"
description:
  - Runs C(tld manager restart --home HOME); the counterpart of Wazuh's C(restart-wazuh) active response.
  - A restart is an action, not a state, so the module always reports C(changed) when it runs the command;
    in check mode it reports C(changed) without running anything.
  - Unlike the other modules of this collection it acts on one host-wide service, so it takes no list of
    items and its only O(state) is C(restarted).
author:
  - ThreatLockDown contributors (@threatlockdown)
options:
  home:
    description:
      - Manager home directory passed as C(--home); must be an existing directory.
    type: path
    required: true
  tld_path:
    description:
      - The C(tld) program. A bare name is searched in C(PATH) and the sbin directories; a path must be an
        absolute path to an executable file.
    type: str
    default: tld
  state:
    description:
      - Only C(restarted).
    type: str
    choices: [restarted]
    default: restarted
  timeout:
    description:
      - Seconds to wait for the command before failing.
    type: int
    default: 120
attributes:
  check_mode:
    description: Reports a change without running the command.
    support: full
  diff_mode:
    description: Nothing to compare; no diff is returned.
    support: none
  platform:
    description: Hosts where ThreatLockDown is installed.
    support: full
    platforms: posix
"""

EXAMPLES = r"""
- name: Restart the manager after a ruleset update
  threatlockdown.active_response.restart_manager:
    home: /var/lib/threatlockdown
    tld_path: /opt/threatlockdown/bin/tld
"""

RETURN = r"""
cmd:
  description: The command (argv) that was run, or would be in check mode.
  returned: always
  type: list
  elements: str
  sample: ["/opt/threatlockdown/bin/tld", "manager", "restart", "--home", "/var/lib/threatlockdown"]
rc:
  description: Exit status; null in check mode.
  returned: always
  type: int
  sample: 0
stdout:
  description: Standard output, at most 4000 characters.
  returned: always
  type: str
stderr:
  description: Standard error, at most 4000 characters.
  returned: always
  type: str
"""

import os
import subprocess
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.threatlockdown.active_response.plugins.module_utils.commands import SBIN_DIRS, clip
from ansible_collections.threatlockdown.active_response.plugins.module_utils.module_run import (
    ModuleFailure,
    finish,
)

ARGUMENT_SPEC: dict[str, Any] = dict(
    home=dict(type="path", required=True),
    tld_path=dict(type="str", default="tld"),
    state=dict(type="str", choices=["restarted"], default="restarted"),
    timeout=dict(type="int", default=120),
)


class RestartError(ModuleFailure):
    pass


def resolve_tld(module: Any, tld_path: str) -> str:
    if "/" not in tld_path:
        found = module.get_bin_path(tld_path, required=False, opt_dirs=["/usr/local/bin", *SBIN_DIRS])
        if not found:
            raise RestartError(f"tld_path {tld_path!a} was not found in PATH or the sbin directories")
        return str(found)
    if not os.path.isabs(tld_path):
        raise RestartError(f"tld_path {tld_path!a} must be an absolute path or a bare command name")
    if not (os.path.isfile(tld_path) and os.access(tld_path, os.X_OK)):
        raise RestartError(f"tld_path {tld_path!a} is not an executable file")
    return tld_path


def build_argv(tld: str, home: str) -> list[str]:
    return [tld, "manager", "restart", "--home", home]


def run(module: Any) -> dict[str, Any]:
    home = module.params["home"]
    if not os.path.isabs(home) or not os.path.isdir(home):
        raise RestartError(f"home {home!a} is not an existing directory (an absolute path is required)")
    if module.params["timeout"] <= 0:
        raise RestartError("timeout must be a positive number of seconds")
    argv = build_argv(resolve_tld(module, module.params["tld_path"]), home)
    if module.check_mode:
        return {"changed": True, "cmd": argv, "rc": None, "stdout": "", "stderr": ""}
    try:
        # subprocess rather than run_command: the restart needs a deadline; still an argv list, no shell.
        completed = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=module.params["timeout"],
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RestartError(
            f"{' '.join(argv)} did not finish within {module.params['timeout']}s", {"cmd": argv}
        ) from None
    except OSError as exc:
        raise RestartError(f"cannot run {argv[0]}: {exc}", {"cmd": argv}) from None
    result = {
        "changed": True,
        "cmd": argv,
        "rc": completed.returncode,
        "stdout": clip(completed.stdout.decode("utf-8", "replace")),
        "stderr": clip(completed.stderr.decode("utf-8", "replace")),
    }
    if completed.returncode != 0:
        raise RestartError(f"{' '.join(argv)} exited {completed.returncode}", result)
    return result


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    finish(module, run)


if __name__ == "__main__":
    main()
