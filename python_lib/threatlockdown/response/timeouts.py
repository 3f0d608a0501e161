"""The arithmetic of expiry, refresh, repeated offenders and retries, kept pure for property tests.

Times are seconds since the epoch; ``None`` as an expiry means "until someone reverts it".
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_BACKOFF_EXPONENT = 30  # 2**30 times any sane initial delay is beyond every cap


def offence_number(previous: int, last_offence: float | None, now: float, reset_after: float) -> int:
    """The number of an offence happening at ``now``, given the key's count and last offence.

    ``reset_after`` > 0: an offender that stayed quiet that long starts again at 1. 0 keeps counting
    forever, as Wazuh's execd does until it restarts.
    """
    if previous <= 0 or last_offence is None:
        return 1
    if reset_after > 0 and now - last_offence >= reset_after:
        return 1
    return previous + 1


def timeout_for(offence: int, base: int, repeated_minutes: Sequence[int]) -> int:
    """Seconds the ``offence``-th response lasts: ``base`` first, then the repeated_offenders list.

    As in Wazuh's execd: the 2nd offence takes the 1st value (minutes), the n-th the (n-1)-th, and the
    last value is reused once the list runs out. A response without timeout (``base`` 0) stays so.
    """
    if base <= 0:
        return 0
    if offence <= 1 or not repeated_minutes:
        return base
    index, last = offence - 2, len(repeated_minutes) - 1
    return repeated_minutes[index if index < last else last] * 60  # min() costs a call per alert


def first_expiry(now: float, timeout: int) -> float | None:
    return now + timeout if timeout > 0 else None


def refreshed_expiry(current: float | None, now: float, timeout: int) -> float | None:
    """The expiry after a new trigger: never earlier than before; a permanent response stays permanent.

    Wazuh's execd restarts the timer with the new timeout, which can shorten a block when two
    <active-response> blocks with different timeouts share a key; we keep the later of the two ends.
    """
    if current is None or timeout <= 0:
        return None
    later = now + timeout
    return current if current >= later else later  # max(), without the call: runs per refresh


def retry_delay(attempt: int, initial: float, maximum: float) -> float:
    """Wait before retry number ``attempt`` (1, 2, ...): doubling from ``initial``, capped at ``maximum``."""
    exponent = min(max(attempt - 1, 0), MAX_BACKOFF_EXPONENT)
    return float(min(maximum, initial * (2**exponent)))
