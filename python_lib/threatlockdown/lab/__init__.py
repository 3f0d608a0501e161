"""Test lab: hosts made of Linux namespaces, each with its own sshd, rsyslogd, /etc, /var/log and firewall.

See docs/lab.md. Everything needs root; nothing here runs at import time.
"""

from .errors import LabError
from .lab import HostStatus, Lab, LabStatus, TeardownReport, destroy_lab, lab_status
from .spec import HostLayout, HostSpec, LabLayout, LabSpec

__all__ = [
    "HostLayout",
    "HostSpec",
    "HostStatus",
    "Lab",
    "LabError",
    "LabLayout",
    "LabSpec",
    "LabStatus",
    "TeardownReport",
    "destroy_lab",
    "lab_status",
]
