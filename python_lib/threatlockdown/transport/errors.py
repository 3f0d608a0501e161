"""Exceptions raised by the agent <-> manager transport."""

from __future__ import annotations


class TransportError(Exception):
    """Base class: something went wrong talking to the other side."""


class ConnectionClosed(TransportError):
    """The peer closed the connection (normally or in the middle of a frame)."""


class ProtocolError(TransportError):
    """The peer broke the protocol; ``kind`` is the short name the stats count it under."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


class FrameTooLarge(ProtocolError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__("oversized_frame", f"frame of {size} bytes is larger than the {limit}-byte limit")


class AuthenticationRefused(TransportError):
    """The manager refused this agent (wrong key, unknown ID, address not allowed...)."""


class FingerprintMismatch(TransportError):
    """The manager's certificate is not the one this agent pinned."""

    def __init__(self, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"manager certificate fingerprint is {actual}, expected the pinned {expected}; "
            "if the manager certificate was regenerated, enroll again or update the pinned fingerprint"
        )


class EnrollmentRefused(TransportError):
    """The enrollment server said no; the message is its reason."""


class IdentityError(TransportError):
    """The manager certificate could not be created or read."""


class SpoolFullError(TransportError):
    """The agent's on-disk buffer reached its size limit; the event was not stored."""


class EventTooLargeError(ValueError):
    """One event does not fit in a frame even on its own."""
