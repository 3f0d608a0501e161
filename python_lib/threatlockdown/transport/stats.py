"""Snapshots of transport counters, for ``tld agent status`` and the manager's status output.

Times are UNIX timestamps (seconds, float)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ConnectedAgent:
    id: str
    name: str
    ip: str
    since: float
    last_seen: float
    events_received: int


@dataclass(frozen=True)
class ManagerStats:
    connected: tuple[ConnectedAgent, ...]
    # Authentication refusals: unknown_agent, bad_key, name_mismatch, ip_not_allowed,
    # unsupported_version, handshake_timeout.
    refused: Mapping[str, int]
    # Connections closed for breaking the protocol: oversized_frame, malformed_frame, bad_message,
    # unexpected_message, sequence_error, tls_handshake, idle_timeout, callback_error, state_error.
    protocol_errors: Mapping[str, int]
    events_received: int  # handed to on_events
    duplicates_dropped: int  # seq already persisted: resent after a lost ack
    sequence_gaps: int  # an agent skipped sequence numbers (lost spool); logged with the range
    sessions_replaced: int  # a new session of an agent closed its older one


@dataclass(frozen=True)
class ForwarderStats:
    connected: bool
    last_seq: int  # highest sequence number given to a submitted event
    acked_seq: int  # highest sequence number the manager confirmed
    pending_events: int  # in the spool, not yet acknowledged
    spool_bytes: int
    spool_full_errors: int  # submits refused because the spool was full
    connect_failures: int
    last_error: str


@dataclass(frozen=True)
class EnrollmentStats:
    enrolled: int
    refused: Mapping[str, int]  # bad_password, bad_name, duplicate_name, bad_request, handshake_timeout
