"""AckTracker: the saved position is the end of the longest acked prefix, whatever the ack order."""

from __future__ import annotations

from threatlockdown.collect.acks import AckTracker


def test_in_order_acks_move_the_position() -> None:
    t: AckTracker[int] = AckTracker(0)
    a, b = t.issue(10), t.issue(25)
    assert t.committed == 0
    a()
    assert t.committed == 10
    b()
    assert t.committed == 25
    assert t.outstanding == 0


def test_out_of_order_acks_wait_for_the_gap() -> None:
    t: AckTracker[int] = AckTracker(100)
    acks = [t.issue(end) for end in (110, 120, 130, 140)]
    acks[1]()
    acks[3]()
    assert t.committed == 100  # event 0 is still in flight
    acks[0]()
    assert t.committed == 120  # 0 and 1 done, 2 still in flight
    acks[2]()
    assert t.committed == 140
    assert t.outstanding == 0


def test_ack_twice_is_harmless() -> None:
    t: AckTracker[int] = AckTracker(0)
    a, b = t.issue(5), t.issue(9)
    a()
    a()
    assert t.committed == 5
    assert t.outstanding == 1
    b()
    assert t.committed == 9


def test_skipped_records_wait_behind_pending_events() -> None:
    t: AckTracker[str | None] = AckTracker(None)
    a = t.issue("c1")
    t.skip("c2")
    assert t.committed is None  # c2 may not be saved while c1 is in flight
    a()
    assert t.committed == "c2"
    t.skip("c3")
    assert t.committed == "c3"
