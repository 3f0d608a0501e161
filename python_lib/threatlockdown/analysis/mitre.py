"""The MITRE ATT&CK techniques our ruleset refers to: id -> (technique name, tactics).

Wazuh expands <mitre><id> into id/tactic/technique arrays from its MITRE database; we ship the small
table our rules need. Unknown ids are still reported, without names.
"""

from __future__ import annotations

TECHNIQUES: dict[str, tuple[str, tuple[str, ...]]] = {
    "T1021": ("Remote Services", ("Lateral Movement",)),
    "T1021.004": ("SSH", ("Lateral Movement",)),
    "T1046": ("Network Service Discovery", ("Discovery",)),
    "T1068": ("Exploitation for Privilege Escalation", ("Privilege Escalation",)),
    "T1078": ("Valid Accounts", ("Defense Evasion", "Persistence", "Privilege Escalation", "Initial Access")),
    "T1110": ("Brute Force", ("Credential Access",)),
    "T1110.001": ("Password Guessing", ("Credential Access",)),
    "T1110.003": ("Password Spraying", ("Credential Access",)),
    "T1190": ("Exploit Public-Facing Application", ("Initial Access",)),
    "T1210": ("Exploitation of Remote Services", ("Lateral Movement",)),
    "T1095": ("Non-Application Layer Protocol", ("Command and Control",)),
    "T1098": ("Account Manipulation", ("Persistence", "Privilege Escalation")),
    "T1531": ("Account Access Removal", ("Impact",)),
    "T1548.003": ("Sudo and Sudo Caching", ("Privilege Escalation", "Defense Evasion")),
    "T1548": ("Abuse Elevation Control Mechanism", ("Privilege Escalation", "Defense Evasion")),
    "T1562.004": ("Disable or Modify System Firewall", ("Defense Evasion",)),
    "T1499": ("Endpoint Denial of Service", ("Impact",)),
    "T1087": ("Account Discovery", ("Discovery",)),
    "T1136": ("Create Account", ("Persistence",)),
    "T1070": ("Indicator Removal", ("Defense Evasion",)),
}


def expand(ids: tuple[str, ...]) -> dict[str, list[str]]:
    tactics: list[str] = []
    names: list[str] = []
    for mid in ids:
        known = TECHNIQUES.get(mid)
        if known is None:
            continue
        names.append(known[0])
        for t in known[1]:
            if t not in tactics:
                tactics.append(t)
    return {"id": list(ids), "tactic": tactics, "technique": names}
