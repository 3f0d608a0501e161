#!/usr/bin/python
# Copyright: ThreatLockDown contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: firewall_drop
short_description: Block or unblock source IP addresses in the host firewall
version_added: "0.1.0"
description:
  - Drops all traffic from a batch of IPv4 and IPv6 source addresses, or removes such blocks; the
    ThreatLockDown counterpart of Wazuh's C(firewall-drop) active response.
  - Every address is validated again with Python's C(ipaddress) module and only the normalised form reaches
    a command; C(::ffff:a.b.c.d) is treated as the IPv4 address C(a.b.c.d). Networks, zone ids, loopback,
    unspecified and multicast addresses are refused. When any item is refused the module fails before
    changing anything and lists every refused item.
  - "The C(nftables) backend keeps table C(inet threatlockdown) with sets C(blocked4)/C(blocked6)
    (C(flags timeout)) and chains hooked on input and forward at priority -10 that drop C(ip saddr @blocked4)
    and C(ip6 saddr @blocked6). They are created the first time an address is blocked."
  - "The C(ipset) backend keeps C(hash:ip) sets C(threatlockdown4)/C(threatlockdown6) with timeout support and
    inserts one C(-m set --match-set SET src -j DROP) rule in INPUT, FORWARD and, when it exists, DOCKER-USER
    of iptables/ip6tables."
  - "The C(iptables) backend inserts C(-s ADDR -j DROP) in INPUT and FORWARD (and DOCKER-USER when it
    exists) like Wazuh's script, checking with C(-C) first; its rules never expire."
  - "The C(firewalld) backend adds runtime rich rules C(rule family=... source address=... drop) with
    firewall-cmd."
  - "C(auto) picks C(nftables) when C(nft) is installed, else C(ipset) when C(ipset) and C(iptables) are,
    else C(iptables)."
author:
  - ThreatLockDown contributors (@threatlockdown)
options:
  addresses:
    description:
      - Source addresses to block or unblock. Duplicates are handled once.
    type: list
    elements: str
    required: true
  state:
    description:
      - C(present) blocks the addresses, C(absent) removes the blocks.
    type: str
    choices: [present, absent]
    default: present
  backend:
    description:
      - Firewall mechanism to use.
    type: str
    choices: [auto, nftables, ipset, iptables, firewalld]
    default: auto
  timeout:
    description:
      - Seconds the block is meant to last (the manager sends C(state=absent) after that); 0 means the
        block has no end.
      - Already blocked addresses are left as they are; their expiry is not extended.
    type: int
    default: 0
  timeout_margin:
    description:
      - Seconds added to O(timeout) for the expiry set on the firewall entry itself, so a block still ends
        when the manager that should lift it is gone. Ignored when O(timeout=0) and by the C(iptables)
        backend, whose rules cannot expire.
    type: int
    default: 300
  firewalld_zone:
    description:
      - Zone for the C(firewalld) backend; the default zone when omitted.
    type: str
notes:
  - Needs root. Blocks are runtime state; they do not survive a reboot.
attributes:
  check_mode:
    description: Reports what would change without running any command that modifies the firewall.
    support: full
  diff_mode:
    description: Shows which of the given addresses are blocked before and after, and created tables/sets.
    support: full
  platform:
    description: Linux hosts.
    support: full
    platforms: posix
"""

EXAMPLES = r"""
- name: Block two attackers for ten minutes (expiry on the firewall itself after 10 min + 5 min margin)
  threatlockdown.active_response.firewall_drop:
    addresses:
      - 203.0.113.7
      - 2001:db8::7
    timeout: 600

- name: Lift the blocks
  threatlockdown.active_response.firewall_drop:
    addresses: [203.0.113.7, 2001:db8::7]
    state: absent

- name: Wazuh-style iptables rules instead of nftables sets
  threatlockdown.active_response.firewall_drop:
    addresses: ["{{ srcip }}"]
    backend: iptables
"""

RETURN = r"""
backend:
  description: The backend that was used (after resolving C(auto)).
  returned: always
  type: str
  sample: nftables
blocked:
  description:
    - The given addresses (normalised) that are blocked when the module ends (predicted in check mode).
  returned: always
  type: list
  elements: str
  sample: ["203.0.113.7", "2001:db8::7"]
created:
  description: Shared firewall objects that were created (or would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: ["nftables table inet threatlockdown"]
results:
  description: One entry per distinct address.
  returned: always
  type: list
  elements: dict
  contains:
    address:
      description: Normalised address.
      type: str
    given:
      description: The address as given (differs for C(::ffff:) forms).
      type: str
    family:
      description: C(ipv4) or C(ipv6).
      type: str
    backend:
      description: Backend name.
      type: str
    location:
      description: Table/set/chain that holds the entry.
      type: str
    changed:
      description: Whether this address was (or would be) added or removed.
      type: bool
    blocked:
      description: Whether the address is blocked afterwards.
      type: bool
    entry_timeout:
      description:
        - Expiry set on a new firewall entry in seconds (timeout + margin); null when it does not expire.
      type: int
    expires_in:
      description: Seconds before the firewall removes the entry by itself, when the backend reports it.
      type: int
  sample:
    - address: 203.0.113.7
      given: 203.0.113.7
      family: ipv4
      backend: nftables
      location: nftables inet threatlockdown blocked4
      changed: true
      blocked: true
      entry_timeout: 900
      expires_in: 899
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.threatlockdown.active_response.plugins.module_utils.commands import (
    CommandError,
    ModuleRunner,
)
from ansible_collections.threatlockdown.active_response.plugins.module_utils.firewall_base import BackendError
from ansible_collections.threatlockdown.active_response.plugins.module_utils.firewall_plan import (
    BACKENDS,
    apply_plan,
    build_report,
    choose_backend,
    entry_timeout,
    make_plan,
    predicted_state,
)
from ansible_collections.threatlockdown.active_response.plugins.module_utils.module_run import (
    apply_or_predict,
    finish,
)
from ansible_collections.threatlockdown.active_response.plugins.module_utils.validation import (
    parse_address_list,
)

ARGUMENT_SPEC: dict[str, Any] = dict(
    addresses=dict(type="list", elements="str", required=True),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    backend=dict(type="str", choices=list(BACKENDS), default="auto"),
    timeout=dict(type="int", default=0),
    timeout_margin=dict(type="int", default=300),
    firewalld_zone=dict(type="str"),
)


def run(module: Any) -> dict[str, Any]:
    params = module.params
    addresses = parse_address_list("addresses", params["addresses"])
    backend = choose_backend(params["backend"], ModuleRunner(module), params["firewalld_zone"])
    present = params["state"] == "present"
    seconds = entry_timeout(backend, params["timeout"], params["timeout_margin"]) if present else 0
    if present and params["timeout"] and not backend.entries_expire:
        module.warn(
            f"backend {backend.name} cannot expire entries: blocks stay until state=absent removes them"
        )
    plan = make_plan(backend, addresses, present)
    after = apply_or_predict(
        module,
        plan.changed,
        apply=lambda: apply_plan(backend, plan, seconds),
        read=lambda: backend.read(addresses),
        predict=lambda: predicted_state(backend, plan, seconds),
    )
    return build_report(backend, plan, after, seconds)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    finish(module, run, (BackendError, CommandError))


if __name__ == "__main__":
    main()
