"""Agent <-> manager transport: TLS, agent keys, enrollment, acknowledged delivery, disk buffer.

Manager daemon
--------------
::

    async def on_events(agent: AgentIdentity, events: list[AgentEvent]) -> None:
        ...  # return only once the events are safely queued; the agent gets its ack after that

    server = ManagerServer(ManagerConfig(home=Path("/var/tld"), port=1514), on_events)
    await server.start()        # creates etc/sslmanager.{cert,key} with openssl on first start
    server.fingerprint          # SHA-256 agents pin; server.port is the bound port
    server.stats()              # ManagerStats: connected agents, refusals and errors by reason
    await server.close()

    enrollment = EnrollmentServer(EnrollmentConfig(home=..., port=1515, password="..."))
    await enrollment.start(); ...; await enrollment.close()

    add_agent(home, "web-1", ip="any") -> "001 web-1 any <64 hex>"   # pre-shared-key path

``AgentIdentity`` carries ``id``, ``name`` and ``ip`` (the address the agent connected from) for the
alert's ``agent`` object. ``AgentEvent`` is ``seq, location, text, log_format, record`` (``record``: an
optional JSON object, or None).

Agent (``tld agent start``)
---------------------------
::

    await enroll(home, "manager.example", 1515, "web-1", password)   # or write etc/client.keys
    forwarder = AgentForwarder(ForwarderConfig(home=Path("/var/tld-agent"), manager_host="manager.example"))
    await forwarder.start()
    seq = await forwarder.submit("/var/log/auth.log", line, "syslog")
    forwarder.stats()           # ForwarderStats
    await forwarder.wait_delivered(timeout=5)   # optional, before stopping
    await forwarder.close()     # undelivered events stay in queue/spool/ for the next start

``submit`` raises ``SpoolFullError`` when the spool is at ``max_spool_bytes`` and
``EventTooLargeError`` for an event over ``MAX_EVENT_BYTES`` as JSON (the caller truncates).

Guarantees
----------
Events of one agent reach ``on_events`` in submit order, each once: the agent keeps them on disk until
the manager acknowledges them; the manager acknowledges only after ``on_events`` returned and the
agent's last sequence number is persisted under ``queue/agent-seq/``, and drops sequence numbers it
already persisted. One window remains: if the manager dies after ``on_events`` returned but before the
sequence number file is renamed into place, that one batch is delivered again after the restart.

Protocol, files and security choices: docs/agents.md.
"""

from .agent_files import read_agent_key, read_pinned_fingerprint, write_agent_files
from .enrollment import EnrollmentConfig, EnrollmentResult, EnrollmentServer, enroll
from .errors import (
    AuthenticationRefused,
    ConnectionClosed,
    EnrollmentRefused,
    EventTooLargeError,
    FingerprintMismatch,
    FrameTooLarge,
    IdentityError,
    ProtocolError,
    SpoolFullError,
    TransportError,
)
from .forwarder import AgentForwarder, ForwarderConfig
from .identity import ManagerIdentity, ensure_manager_identity, normalize_fingerprint
from .keys import AgentKey, KeyFile, read_client_keys, write_client_keys
from .messages import MAX_EVENT_BYTES, AgentEvent, AgentIdentity
from .registry import DuplicateAgentError, add_agent, register_agent
from .server import ManagerConfig, ManagerServer, OnEvents
from .spool import FsyncPolicy
from .stats import ConnectedAgent, EnrollmentStats, ForwarderStats, ManagerStats

__all__ = [
    "MAX_EVENT_BYTES",
    "AgentEvent",
    "AgentForwarder",
    "AgentIdentity",
    "AgentKey",
    "AuthenticationRefused",
    "ConnectedAgent",
    "ConnectionClosed",
    "DuplicateAgentError",
    "EnrollmentConfig",
    "EnrollmentRefused",
    "EnrollmentResult",
    "EnrollmentServer",
    "EnrollmentStats",
    "EventTooLargeError",
    "FingerprintMismatch",
    "ForwarderConfig",
    "ForwarderStats",
    "FrameTooLarge",
    "FsyncPolicy",
    "IdentityError",
    "KeyFile",
    "ManagerConfig",
    "ManagerIdentity",
    "ManagerServer",
    "ManagerStats",
    "OnEvents",
    "ProtocolError",
    "SpoolFullError",
    "TransportError",
    "add_agent",
    "enroll",
    "ensure_manager_identity",
    "normalize_fingerprint",
    "read_agent_key",
    "read_client_keys",
    "read_pinned_fingerprint",
    "register_agent",
    "write_agent_files",
    "write_client_keys",
]
