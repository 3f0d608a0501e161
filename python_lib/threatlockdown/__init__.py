"""ThreatLockDown: Wazuh-4.x-compatible log analysis and active response run through Ansible."""

__version__ = "0.1.0"
