#!/usr/bin/python
# Copyright: ThreatLockDown contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host_deny
short_description: Deny or allow addresses in tcp_wrappers' hosts.deny
version_added: "0.1.0"
description:
  - "Adds C(ALL: ADDR) lines (C(ALL: [ADDR]) for IPv6, as tcp_wrappers expects) to C(/etc/hosts.deny) for a
    batch of addresses, or removes them; the counterpart of Wazuh's C(host-deny) active response."
  - Entries live between two marker comments, so O(state=absent) only ever removes lines this module wrote.
    An address counts as denied when a line's client list holds exactly that address; unlike Wazuh's script,
    C(10.0.0.1) does not match C(10.0.0.10).
  - The file is rewritten atomically (temporary file in the same directory, then rename) keeping its mode
    and owner, and only when something changes.
  - Every address is validated with Python's C(ipaddress); C(::ffff:a.b.c.d) becomes C(a.b.c.d). When any item
    is refused nothing is changed and the failure lists every refused item.
author:
  - ThreatLockDown contributors (@threatlockdown)
options:
  addresses:
    description:
      - Addresses to deny (O(state=present)) or allow again (O(state=absent)).
    type: list
    elements: str
    required: true
  state:
    description:
      - C(present) adds entries, C(absent) removes the entries this module added.
    type: str
    choices: [present, absent]
    default: present
  path:
    description:
      - The hosts.deny file to edit; created with mode 0644 when missing.
    type: path
    default: /etc/hosts.deny
notes:
  - Only services built with tcp_wrappers (libwrap) read hosts.deny; current OpenSSH does not.
attributes:
  check_mode:
    description: Computes the new content without writing it.
    support: full
  diff_mode:
    description: Shows the managed block before and after.
    support: full
  platform:
    description: POSIX hosts.
    support: full
    platforms: posix
"""

EXAMPLES = r"""
- name: Deny an attacker to every tcp_wrappers service
  threatlockdown.active_response.host_deny:
    addresses: [203.0.113.7, 2001:db8::7]

- name: Allow it again
  threatlockdown.active_response.host_deny:
    addresses: [203.0.113.7, 2001:db8::7]
    state: absent
"""

RETURN = r"""
file:
  description: The file that was checked or edited (O(path)).
  returned: always
  type: str
  sample: /etc/hosts.deny
denied:
  description: The given addresses (normalised) denied by some line when the module ends.
  returned: always
  type: list
  elements: str
  sample: ["203.0.113.7"]
results:
  description: One entry per distinct address.
  returned: always
  type: list
  elements: dict
  contains:
    address:
      description: Normalised address.
      type: str
    entry:
      description: The line this module writes for the address.
      type: str
    changed:
      description: Whether the entry was (or would be) added or removed.
      type: bool
    denied:
      description: Whether the address is denied afterwards.
      type: bool
    foreign_line:
      description: Line number of a line outside the managed block that also denies the address, else null.
      type: int
  sample:
    - address: 2001:db8::7
      entry: "ALL: [2001:db8::7]"
      changed: true
      denied: true
      foreign_line: null
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.threatlockdown.active_response.plugins.module_utils.atomic_file import (
    read_text,
    write_atomically,
)
from ansible_collections.threatlockdown.active_response.plugins.module_utils.hosts_deny_file import (
    HostsDeny,
    HostsDenyError,
    entry_for,
)
from ansible_collections.threatlockdown.active_response.plugins.module_utils.module_run import (
    finish,
    state_diff,
)
from ansible_collections.threatlockdown.active_response.plugins.module_utils.validation import (
    parse_address_list,
)

ARGUMENT_SPEC: dict[str, Any] = dict(
    addresses=dict(type="list", elements="str", required=True),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    path=dict(type="path", default="/etc/hosts.deny"),
)


def edit(module: Any, path: str) -> dict[str, Any]:
    addresses = parse_address_list("addresses", module.params["addresses"])
    original = read_text(path)
    doc = HostsDeny.parse(path, original)
    before_block = doc.block_text()
    if module.params["state"] == "present":
        changed_items = doc.add(addresses)
        denied_after = {a.text for a in addresses}
    else:
        changed_items, still_denied = doc.remove(addresses)
        denied_after = {a.text for a in still_denied}
        for address in still_denied:
            module.warn(
                f"{address.text} stays denied by line {doc.foreign[address.text]} of {path}, "
                "which this module did not write and leaves alone"
            )
    changed_texts = {a.text for a in changed_items}
    new_text = doc.render()
    changed = bool(changed_items)
    if changed and not module.check_mode:
        write_atomically(path, new_text)
    return {
        "changed": changed,
        # Not "path": AnsibleModule would then add the file's owner, mode, etc. to the result.
        "file": path,
        "denied": [a.text for a in addresses if a.text in denied_after],
        "results": [
            {
                "address": a.text,
                "entry": entry_for(a),
                "changed": a.text in changed_texts,
                "denied": a.text in denied_after,
                "foreign_line": doc.foreign.get(a.text),
            }
            for a in addresses
        ],
        "diff": state_diff(path, before_block, doc.block_text()),
    }


def run(module: Any) -> dict[str, Any]:
    path = module.params["path"]
    try:
        return edit(module, path)
    except OSError as exc:
        # Reading or replacing the file failed; the error may only name the temporary file.
        raise HostsDenyError(f"cannot update {path}: {exc}") from None


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    finish(module, run, (HostsDenyError,))


if __name__ == "__main__":
    main()
