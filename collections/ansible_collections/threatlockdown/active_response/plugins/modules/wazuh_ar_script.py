#!/usr/bin/python
# Copyright: ThreatLockDown contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: wazuh_ar_script
short_description: Run an existing Wazuh 4.x active-response executable with execd's JSON protocol
version_added: "0.1.0"
description:
  - Lets fleets keep their Wazuh 4.x active-response executables (stock or custom) while ThreatLockDown
    decides when to run them.
  - "For each item the module writes execd's message as one JSON line on the script's stdin:
    C({\"version\":1,\"origin\":{\"name\":ORIGIN,\"module\":\"wazuh-execd\"},\"command\":\"add\"|\"delete\",
    \"parameters\":{\"extra_args\":[...],\"alert\":{...},\"program\":\"active-response/bin/EXE\"}})."
  - For C(add) it then reads one line with a deadline. If it is a C(check_keys) message, the module answers
    with the same message and C(command) C(continue), or C(abort) when the key is listed in O(abort_keys)
    (the manager decides about refreshes). A C(delete) is written without handshake, as execd does.
  - It then closes stdin and waits for the script to exit; a script still running after O(run_timeout) is
    killed together with its process group.
  - The executable runs directly (argv list, no shell). The alert is pass-through data serialised as JSON;
    the module never evaluates it as a template or a command.
author:
  - ThreatLockDown contributors (@threatlockdown)
options:
  executable:
    description:
      - Absolute path of the active-response executable, e.g. C(/var/ossec/active-response/bin/firewall-drop).
        Must be an existing executable file.
    type: path
    required: true
  items:
    description:
      - One script run per item.
    type: list
    elements: dict
    required: true
    suboptions:
      alert:
        description:
          - The alert object (as in alerts.json) placed in C(parameters.alert).
        type: dict
        required: true
  state:
    description:
      - C(present) sends C(command=add), C(absent) sends C(command=delete).
    type: str
    choices: [present, absent]
    default: present
  extra_args:
    description:
      - C(parameters.extra_args) of every message.
    type: list
    elements: str
    default: []
  origin_name:
    description:
      - C(origin.name) of the message (execd uses the cluster node name).
    type: str
    default: threatlockdown
  abort_keys:
    description:
      - Keys already handled by the manager. When the script's C(check_keys) matches one, it gets C(abort).
        An entry matches execd's composed key (C(firewall-drop-1.2.3.4)) or the script's keys joined with
        C(-) (C(1.2.3.4)).
    type: list
    elements: str
    default: []
  handshake_timeout:
    description:
      - Seconds to wait for the script's first output line in an C(add).
    type: float
    default: 10
  run_timeout:
    description:
      - Seconds to wait for the script to exit after the last message.
    type: float
    default: 60
  output_limit:
    description:
      - Bytes of stdout and of stderr kept per item; the rest is counted, not returned.
    type: int
    default: 4096
  chdir:
    description:
      - Working directory of the script. Defaults to the Wazuh home (the directory above
        C(active-response/bin)) when the executable lives there, else the executable's directory.
    type: path
  validate_alert:
    description:
      - Refuse items whose alert holds unsafe values in fields the stock scripts act on, before running
        anything.
      - C(data.srcip), C(data.win.eventdata.ipAddress) and C(data.win.eventdata.destinationIp) must be IP
        addresses; C(data.dstuser) must not be C(root), start with C(-), C(+) or C(~), or contain separators,
        path characters, whitespace or C(..).
    type: bool
    default: true
attributes:
  check_mode:
    description: Builds and reports the messages without running the script.
    support: full
  diff_mode:
    description: The messages that are (or would be) written, one JSON line each.
    support: full
  platform:
    description: POSIX hosts with the script installed.
    support: full
    platforms: posix
"""

EXAMPLES = r"""
- name: Block the alert's source with Wazuh's own firewall-drop
  threatlockdown.active_response.wazuh_ar_script:
    executable: /var/ossec/active-response/bin/firewall-drop
    items:
      - alert: "{{ alert }}"

- name: Undo it (no handshake)
  threatlockdown.active_response.wazuh_ar_script:
    executable: /var/ossec/active-response/bin/firewall-drop
    state: absent
    items:
      - alert: "{{ alert }}"
"""

RETURN = r"""
results:
  description: One entry per item, in order.
  returned: always
  type: list
  elements: dict
  contains:
    index:
      description: Position of the item in O(items).
      type: int
    command:
      description: C(add) or C(delete).
      type: str
    message:
      description: The JSON line written to the script (without the newline).
      type: str
    rc:
      description: Exit status; null in check mode.
      type: int
    keys:
      description: Keys from the script's C(check_keys), null when it sent none.
      type: list
      elements: str
    key:
      description: execd's composed key, e.g. C(firewall-drop-1.2.3.4).
      type: str
    reply:
      description: C(continue), C(abort) or null when there was no handshake.
      type: str
    timed_out:
      description: Whether the script had to be killed.
      type: bool
    changed:
      description: False when the script was told to abort; true otherwise once it ran.
      type: bool
    failed:
      description: Non-zero exit or timeout.
      type: bool
    stdout:
      description: Script stdout, at most O(output_limit) bytes (the check_keys line included).
      type: str
    stderr:
      description: Script stderr, at most O(output_limit) bytes.
      type: str
    stdout_dropped:
      description: Bytes of stdout beyond O(output_limit).
      type: int
    stderr_dropped:
      description: Bytes of stderr beyond O(output_limit).
      type: int
  sample:
    - index: 0
      command: add
      rc: 0
      keys: ["203.0.113.7"]
      key: firewall-drop-203.0.113.7
      reply: continue
      timed_out: false
      changed: true
      failed: false
      stdout: "{\"version\":1,...,\"command\":\"check_keys\",\"parameters\":{\"keys\":[\"203.0.113.7\"]}}\n"
      stderr: ""
"""

import os
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.threatlockdown.active_response.plugins.module_utils.module_run import (
    ModuleFailure,
    finish,
)
from ansible_collections.threatlockdown.active_response.plugins.module_utils.validation import (
    InvalidItems,
    ItemProblem,
)
from ansible_collections.threatlockdown.active_response.plugins.module_utils.wazuh_ar_protocol import (
    PROGRAM_DIR,
    alert_problems,
    build_message,
    encode_line,
    run_script,
)

ARGUMENT_SPEC: dict[str, Any] = dict(
    executable=dict(type="path", required=True),
    items=dict(
        type="list",
        elements="dict",
        required=True,
        options=dict(alert=dict(type="dict", required=True)),
    ),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    extra_args=dict(type="list", elements="str", default=[]),
    origin_name=dict(type="str", default="threatlockdown"),
    abort_keys=dict(type="list", elements="str", default=[], no_log=False),
    handshake_timeout=dict(type="float", default=10),
    run_timeout=dict(type="float", default=60),
    output_limit=dict(type="int", default=4096),
    chdir=dict(type="path"),
    validate_alert=dict(type="bool", default=True),
)


class ScriptError(Exception):
    pass


def default_cwd(executable: str) -> str:
    """execd runs scripts from the Wazuh home; find it from .../active-response/bin/EXE when we can."""
    bin_dir = os.path.dirname(executable)
    suffix = os.sep + PROGRAM_DIR.replace("/", os.sep)
    if bin_dir.endswith(suffix):
        return bin_dir[: -len(suffix)] or os.sep
    return bin_dir


def check_inputs(params: dict[str, Any]) -> None:
    executable = params["executable"]
    if not os.path.isabs(executable):
        raise ScriptError(f"executable {executable!a} must be an absolute path")
    if not os.path.isfile(executable) or not os.access(executable, os.X_OK):
        raise ScriptError(f"executable {executable!a} is not an existing executable file")
    for name in ("handshake_timeout", "run_timeout"):
        if params[name] <= 0:
            raise ScriptError(f"{name} must be a positive number of seconds")
    if params["output_limit"] < 0:
        raise ScriptError("output_limit must not be negative")
    if params["chdir"] is not None and not os.path.isdir(params["chdir"]):
        raise ScriptError("chdir {} is not an existing directory".format(ascii(params["chdir"])))
    if params["validate_alert"]:
        problems: list[ItemProblem] = []
        for index, item in enumerate(params["items"]):
            for reason in alert_problems(item["alert"]):
                problems.append(ItemProblem("items", index, "alert", reason))
        if problems:
            raise InvalidItems(problems)


def run(module: Any) -> dict[str, Any]:
    params = module.params
    check_inputs(params)
    executable = params["executable"]
    command = "add" if params["state"] == "present" else "delete"
    cwd = params["chdir"] or default_cwd(executable)
    results = []
    lines = []
    for index, item in enumerate(params["items"]):
        message = build_message(
            executable, command, params["origin_name"], item["alert"], params["extra_args"]
        )
        line = encode_line(message).decode("utf-8").rstrip("\n")
        lines.append(line)
        entry: dict[str, Any] = {"index": index, "command": command, "message": line}
        if module.check_mode:
            entry.update(
                rc=None, keys=None, key=None, reply=None, timed_out=False, changed=True, failed=False
            )
            entry.update(stdout="", stderr="", stdout_dropped=0, stderr_dropped=0)
        else:
            outcome = run_script(
                executable,
                message,
                cwd,
                params["abort_keys"],
                params["handshake_timeout"],
                params["run_timeout"],
                params["output_limit"],
            )
            entry.update(
                rc=outcome.rc,
                keys=outcome.keys,
                key=outcome.key,
                reply=outcome.reply,
                timed_out=outcome.timed_out,
                changed=outcome.reply != "abort",
                failed=outcome.timed_out or outcome.rc != 0,
                stdout=outcome.stdout,
                stderr=outcome.stderr,
                stdout_dropped=outcome.stdout_dropped,
                stderr_dropped=outcome.stderr_dropped,
            )
        results.append(entry)
    result: dict[str, Any] = {
        "changed": any(r["changed"] for r in results),
        "results": results,
        "diff": {"before": "", "after": "".join(line + "\n" for line in lines)},
    }
    failed = [r for r in results if r["failed"]]
    if failed:
        raise ModuleFailure(
            f"{len(failed)} of {len(results)} script run(s) failed (non-zero exit or timeout): "
            f"items {', '.join(str(r['index']) for r in failed)}",
            result,
        )
    return result


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    finish(module, run, (ScriptError, OSError))


if __name__ == "__main__":
    main()
