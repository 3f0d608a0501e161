"""Syslog over TCP: octet-counted and newline-framed messages, oversized frames."""

from __future__ import annotations

from threatlockdown.collect.event import MAX_EVENT_BYTES
from threatlockdown.collect.framing import TcpSyslogFramer


def test_newline_framing_keeps_everything_but_the_newline() -> None:
    f = TcpSyslogFramer()
    assert f.feed(b"<13>Dec 29 10:00:01 h a: x\r\n<13>Dec 29") == [b"<13>Dec 29 10:00:01 h a: x\r"]
    assert f.feed(b" 10:00:02 h a: y\n") == [b"<13>Dec 29 10:00:02 h a: y"]


def test_octet_counting_may_contain_newlines_and_split_anywhere() -> None:
    msg = b"<34>1 2003-10-11T22:14:15.003Z host app - - - two\nlines"
    stream = str(len(msg)).encode() + b" " + msg + b"10 <13>x y: z"
    f = TcpSyslogFramer()
    out: list[bytes] = []
    for i in range(len(stream)):
        out += f.feed(stream[i : i + 1])
    assert out == [msg, b"<13>x y: z"]


def test_framing_is_detected_per_message() -> None:
    f = TcpSyslogFramer()
    assert f.feed(b"5 <1>ab<2>cd\n3 <3>") == [b"<1>ab", b"<2>cd", b"<3>"]


def test_lines_starting_with_a_number_are_newline_framed() -> None:
    f = TcpSyslogFramer()
    assert f.feed(b"2024-01-02T03:04:05Z host app: hi\n") == [b"2024-01-02T03:04:05Z host app: hi"]
    # A PRI-less line with a year first is not a 2015-byte counted frame.
    assert f.feed(b"2015 Dec 29 10:00:01 host sshd[1]: a\n2015 Dec") == [
        b"2015 Dec 29 10:00:01 host sshd[1]: a"
    ]
    assert f.feed(b" 29 10:00:02 host sshd[1]: b\n") == [b"2015 Dec 29 10:00:02 host sshd[1]: b"]


def test_empty_lines_are_keepalives() -> None:
    assert TcpSyslogFramer().feed(b"\n\n<1>a\n\n") == [b"<1>a"]


def test_announced_length_over_the_limit_is_refused_at_once() -> None:
    f = TcpSyslogFramer()
    assert f.feed(b"<1>ok\n" + str(MAX_EVENT_BYTES + 1).encode() + b" <1>") == [b"<1>ok"]
    assert f.oversized == MAX_EVENT_BYTES + 1
    assert f.feed(b"more\n") == []


def test_unterminated_line_over_the_limit_is_refused() -> None:
    f = TcpSyslogFramer(max_bytes=16)
    assert f.feed(b"<1>" + b"x" * 10) == []
    assert f.oversized is None
    assert f.feed(b"y" * 10) == []
    assert f.oversized == 23


def test_finish_returns_the_last_unterminated_message() -> None:
    f = TcpSyslogFramer()
    f.feed(b"<1>a\n<2>tail")
    assert f.finish() == b"<2>tail"
    g = TcpSyslogFramer()
    g.feed(b"10 <1>ab")  # an incomplete counted frame is not a message, but it is accounted for
    assert g.finish() is None
    assert g.incomplete == 8
