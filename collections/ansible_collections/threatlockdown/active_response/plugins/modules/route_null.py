#!/usr/bin/python
# Copyright: ThreatLockDown contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: route_null
short_description: Null-route addresses with blackhole host routes
version_added: "0.1.0"
description:
  - Adds C(ip route add blackhole ADDR/32) (C(ip -6 route add blackhole ADDR/128) for IPv6) for a batch of
    addresses, or deletes those routes, in the main routing table. Replies to a null-routed address are
    discarded, so connections from it cannot complete.
  - The counterpart of Wazuh's C(route-null) active response, which adds a C(reject) route with the legacy
    C(route) command; this module uses iproute2 and C(blackhole) routes.
  - Existing blackhole routes are read with C(ip -j route show type blackhole), so a repeated run changes
    nothing. A different route for the same host prefix is never replaced; the module fails and names it.
  - Every address is validated with Python's C(ipaddress); when any item is refused nothing is changed and
    the failure lists every refused item.
author:
  - ThreatLockDown contributors (@threatlockdown)
options:
  addresses:
    description:
      - Addresses to null-route or to route normally again.
    type: list
    elements: str
    required: true
  state:
    description:
      - C(present) adds the blackhole routes, C(absent) deletes them.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Needs root. Routes do not survive a reboot.
attributes:
  check_mode:
    description: Lists the routes that would change without touching them.
    support: full
  diff_mode:
    description: Shows the blackhole routes for the given addresses before and after.
    support: full
  platform:
    description: Linux hosts with iproute2.
    support: full
    platforms: posix
"""

EXAMPLES = r"""
- name: Null-route two addresses
  threatlockdown.active_response.route_null:
    addresses: [203.0.113.7, 2001:db8::7]

- name: Remove the null routes
  threatlockdown.active_response.route_null:
    addresses: [203.0.113.7, 2001:db8::7]
    state: absent
"""

RETURN = r"""
routed_null:
  description: The given addresses (normalised) that have a blackhole route when the module ends.
  returned: always
  type: list
  elements: str
  sample: ["203.0.113.7", "2001:db8::7"]
results:
  description: One entry per distinct address.
  returned: always
  type: list
  elements: dict
  contains:
    address:
      description: Normalised address.
      type: str
    route:
      description: The route this module manages for the address.
      type: str
    changed:
      description: Whether the route was (or would be) added or deleted.
      type: bool
    present:
      description: Whether the blackhole route exists afterwards.
      type: bool
  sample:
    - address: 203.0.113.7
      route: blackhole 203.0.113.7/32
      changed: true
      present: true
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.threatlockdown.active_response.plugins.module_utils.blackhole_routes import (
    BlackholeRoutes,
    RouteError,
    route_text,
)
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
    parse_address_list,
)

ARGUMENT_SPEC: dict[str, Any] = dict(
    addresses=dict(type="list", elements="str", required=True),
    state=dict(type="str", choices=["present", "absent"], default="present"),
)


def _listing(addresses: Any, routed: Any) -> str:
    return "".join(f"{route_text(a)}\n" for a in addresses if a.text in routed)


def run(module: Any) -> dict[str, Any]:
    addresses = parse_address_list("addresses", module.params["addresses"])
    present = module.params["state"] == "present"
    routes = BlackholeRoutes(ModuleRunner(module))
    versions = {a.version for a in addresses}
    before = routes.present(versions)
    to_change = [a for a in addresses if (a.text in before) != present]
    changing = {a.text for a in to_change}
    after = apply_or_predict(
        module,
        bool(to_change),
        apply=lambda: (routes.add if present else routes.remove)(to_change),
        read=lambda: routes.present(versions),
        predict=lambda: before | changing if present else before - changing,
    )
    return {
        "changed": bool(to_change),
        "routed_null": [a.text for a in addresses if a.text in after],
        "results": [
            {
                "address": a.text,
                "route": route_text(a),
                "changed": a.text in changing,
                "present": a.text in after,
            }
            for a in addresses
        ],
        "diff": state_diff("blackhole routes", _listing(addresses, before), _listing(addresses, after)),
    }


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    finish(module, run, (RouteError, CommandError))


if __name__ == "__main__":
    main()
