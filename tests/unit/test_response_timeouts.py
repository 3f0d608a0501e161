"""Property tests of expiry, refresh, repeated-offender and retry arithmetic, and of the decision
sequence of one key (add once, then refresh, escalate, reset)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from threatlockdown.response.alertfacts import facts_from_alert
from threatlockdown.response.decisions import preview
from threatlockdown.response.inventory import Inventory
from threatlockdown.response.policy import Policy
from threatlockdown.response.selfprotect import SelfProtection
from threatlockdown.response.settings import ResponseSettings
from threatlockdown.response.state import Entry, Offender
from threatlockdown.response.testkit import alert, config_with, inventory_of
from threatlockdown.response.timeouts import (
    first_expiry,
    offence_number,
    refreshed_expiry,
    retry_delay,
    timeout_for,
)

times = st.floats(min_value=0, max_value=4e9, allow_nan=False, allow_infinity=False)
minutes = st.lists(st.integers(min_value=1, max_value=10_000), max_size=5)


@given(previous=st.integers(0, 1000), last=times, gap=st.floats(0, 1e7), reset=st.floats(0, 1e6))
def test_offence_number(previous: int, last: float, gap: float, reset: float) -> None:
    now = last + gap
    n = offence_number(previous, last, now, reset)
    assert n >= 1
    if previous == 0:
        assert n == 1
    elif reset > 0 and now - last >= reset:
        assert n == 1, "a quiet offender starts again"
    else:
        assert n == previous + 1
    assert offence_number(previous, None, now, reset) == 1


@given(previous=st.integers(1, 1000), gap=st.floats(0, 1e9))
def test_offences_never_reset_without_a_reset_window(previous: int, gap: float) -> None:
    assert offence_number(previous, 0.0, gap, 0) == previous + 1


@given(offence=st.integers(1, 100), base=st.integers(0, 10**6), offenders=minutes)
def test_timeout_for(offence: int, base: int, offenders: list[int]) -> None:
    t = timeout_for(offence, base, offenders)
    if base == 0:
        assert t == 0, "a response without timeout stays so"
    elif offence == 1 or not offenders:
        assert t == base
    else:
        assert t == offenders[min(offence - 2, len(offenders) - 1)] * 60
        assert t in {m * 60 for m in offenders}


@given(base=st.integers(1, 10**6), offenders=st.lists(st.integers(1, 10_000), min_size=1, max_size=5))
def test_timeouts_escalate_along_a_sorted_list_and_stay_at_the_last(base: int, offenders: list[int]) -> None:
    offenders.sort()
    seq = [timeout_for(n, base, offenders) for n in range(2, 12)]
    assert seq == sorted(seq)
    assert seq[-1] == offenders[-1] * 60


@given(current=st.one_of(st.none(), times), now=times, timeout=st.integers(0, 10**7))
def test_refreshed_expiry_never_moves_earlier(current: float | None, now: float, timeout: int) -> None:
    e = refreshed_expiry(current, now, timeout)
    if current is None or timeout == 0:
        assert e is None, "permanent stays permanent; a permanent trigger makes it permanent"
    else:
        assert e is not None
        assert e >= current and e >= now + timeout
        assert e in (current, now + timeout)


@given(now=times, timeout=st.integers(0, 10**7))
def test_first_expiry(now: float, timeout: int) -> None:
    e = first_expiry(now, timeout)
    assert (e is None) if timeout == 0 else (e == now + timeout)


@given(attempt=st.integers(1, 10_000), initial=st.floats(0.001, 100), maximum=st.floats(0.001, 10**5))
def test_retry_delay_doubles_and_is_capped(attempt: int, initial: float, maximum: float) -> None:
    d = retry_delay(attempt, initial, maximum)
    assert 0 < d <= maximum
    assert d >= min(initial, maximum)
    assert retry_delay(attempt + 1, initial, maximum) >= d
    if attempt < 20 and initial * 2 ** (attempt - 1) <= maximum:
        assert d == initial * 2 ** (attempt - 1)


# -- the decision sequence of one key ----------------------------------------------------------------

BODY = """<active-response><command>firewall-drop</command><location>local</location>
<rules_id>5712</rules_id><timeout>{timeout}</timeout><repeated_offenders>{offenders}</repeated_offenders>
</active-response>"""
INV: Inventory = inventory_of({"web": ["web1"]})


@settings(max_examples=60, deadline=None)
@given(
    base=st.integers(1, 3600),
    offenders=st.lists(st.integers(1, 60), min_size=1, max_size=5),
    gaps=st.lists(st.floats(0, 20_000), min_size=1, max_size=25),
    reset=st.sampled_from([0.0, 600.0, 7200.0]),
)
def test_a_key_is_added_once_then_refreshed_escalated_and_reset(
    base: int, offenders: list[int], gaps: list[float], reset: float
) -> None:
    config = config_with(BODY.format(timeout=base, offenders=",".join(map(str, offenders))))
    (intent,) = Policy(config).plan(facts_from_alert(alert()), INV, SelfProtection(enabled=False)).intents
    cfg = ResponseSettings(offender_reset=reset)
    entry: Entry | None = None
    offender: Offender | None = None
    now = 1_000_000.0
    adds = 0
    expected_count = 0
    last: float | None = None
    for gap in gaps:
        now += gap
        if entry is not None and entry.expires is not None and entry.expires <= now:
            entry = None  # reverted on expiry; the offender count stays
        expected_count = 1 if last is None or (reset > 0 and now - last >= reset) else expected_count + 1
        p = preview(intent, entry, offender, now, cfg)
        assert p.offence == expected_count
        assert p.timeout == (
            base if expected_count == 1 else offenders[min(expected_count - 2, len(offenders) - 1)] * 60
        )
        if entry is None:
            assert p.outcome == "add"
            adds += 1
            assert p.expires == now + p.timeout
            entry = Entry(intent.key, "firewall-drop", "firewall-drop", "web1", "198.51.100.7", None, now,
                          p.expires, p.timeout, p.offence, "active")  # fmt: skip
        else:
            assert p.outcome == "refresh", "a live key is never executed twice"
            assert p.expires is not None and entry.expires is not None
            assert p.expires >= entry.expires and p.expires >= now + p.timeout
            entry.expires = p.expires
        offender = Offender(p.offence, now)
        last = now
    assert 1 <= adds <= len(gaps)
