"""The agent daemon (``tld agent``): reads the host's logs and forwards them to the manager over TLS
with acknowledged delivery and a disk spool (``threatlockdown.transport``). docs/manager.md, "Agents"."""

from __future__ import annotations

from .daemon import AgentDaemon

__all__ = ["AgentDaemon"]
