"""Challenge-response authentication of an agent, and rate-limited logging of refusals."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

NONCE_BYTES = 32


def auth_proof(key: str, nonce: bytes, agent_id: str, name: str) -> str:
    """HMAC-SHA256 keyed with the agent key over nonce || ID || NUL || name, as hex.

    The NUL keeps ID and name apart (IDs are digits, but names may start with digits too)."""
    message = nonce + agent_id.encode("utf-8") + b"\0" + name.encode("utf-8")
    return hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest()


def proof_matches(key: str, nonce: bytes, agent_id: str, name: str, proof: str) -> bool:
    expected = auth_proof(key, nonce, agent_id, name)
    return hmac.compare_digest(expected.encode("ascii"), proof.encode("utf-8", "replace"))


class Refusal(Exception):
    """A connection is refused: ``reason`` is counted and logged, ``public`` is what the peer is told."""

    def __init__(self, reason: str, detail: str, public: str) -> None:
        self.reason = reason
        self.detail = detail
        self.public = public
        super().__init__(detail)


@dataclass
class _Suppressed:
    last_logged: float
    count: int = 0


class RefusalLog:
    """Logs refused or dropped connections, each (peer address, reason) at most once per ``interval``
    seconds; the next line for it says how many were not logged, so a scanner or a misconfigured
    agent cannot flood the log."""

    _MAX_TRACKED = 10_000

    def __init__(
        self, logger: logging.Logger, interval: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._seen: dict[tuple[str, str], _Suppressed] = {}

    def refused(self, peer: str, reason: str, detail: str) -> bool:
        """Record one refused connection; returns whether it was logged."""
        return self._report("refused", peer, reason, detail)

    def dropped(self, peer: str, kind: str, detail: str) -> bool:
        """Record one connection closed for breaking the protocol; returns whether it was logged."""
        return self._report("dropped", peer, kind, detail)

    def _report(self, verb: str, peer: str, reason: str, detail: str) -> bool:
        now = self._clock()
        entry = self._seen.get((peer, reason))
        if entry is not None and now - entry.last_logged < self._interval:
            entry.count += 1
            return False
        suppressed = f" ({entry.count} more since the last report)" if entry and entry.count else ""
        self._logger.warning("%s connection from %s: %s: %s%s", verb, peer, reason, detail, suppressed)
        if len(self._seen) >= self._MAX_TRACKED:
            self._forget_old(now)
        self._seen[(peer, reason)] = _Suppressed(now)
        return True

    def _forget_old(self, now: float) -> None:
        for key in [k for k, v in self._seen.items() if now - v.last_logged >= self._interval]:
            del self._seen[key]
        if len(self._seen) >= self._MAX_TRACKED:
            self._seen.clear()  # a flood from many addresses: start over rather than grow without bound
