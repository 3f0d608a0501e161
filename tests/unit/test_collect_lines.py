"""Line splitting and the file formats: offsets, partial lines, long lines, multi-line and JSON."""

from __future__ import annotations

import pytest

from threatlockdown.collect.event import MAX_EVENT_BYTES, cut_text, decode_text
from threatlockdown.collect.formats import (
    FileFormat,
    JsonShaper,
    MultiLineShaper,
    PlainShaper,
    file_format,
)
from threatlockdown.collect.lines import Line, LineSplitter


def test_lines_carry_the_offset_after_their_newline() -> None:
    s = LineSplitter(start=100)
    lines = s.feed(b"ab\ncde\nf")
    assert lines == [Line(b"ab", 103), Line(b"cde", 107)]
    assert s.position == 107
    assert s.pending == 1


def test_partial_line_waits_for_its_newline_across_chunks() -> None:
    s = LineSplitter()
    assert s.feed(b"hel") == []
    assert s.feed(b"lo") == []
    assert s.feed(b" world\nnext") == [Line(b"hello world", 12)]
    assert s.feed(b"\n") == [Line(b"next", 17)]


def test_carriage_return_and_nul_are_kept() -> None:
    s = LineSplitter()
    assert s.feed(b"a\x00b\r\n") == [Line(b"a\x00b\r", 5)]


def test_long_line_keeps_its_start_and_the_true_end_offset() -> None:
    s = LineSplitter(max_bytes=8)
    lines = s.feed(b"0123456789abc") + s.feed(b"def\nok\n")
    assert lines[0] == Line(b"01234567", 17, cut=8)
    assert lines[1] == Line(b"ok", 20)
    assert s.pending == 0


def test_flush_partial_returns_an_unterminated_last_line() -> None:
    s = LineSplitter(start=5)
    s.feed(b"x\nlast")
    assert s.flush_partial() == Line(b"last", 11)
    assert s.flush_partial() is None


def test_decode_replaces_invalid_utf8_and_cuts_at_the_limit() -> None:
    assert decode_text(b"caf\xc3\xa9 \xff") == "café \ufffd"
    assert len(decode_text(b"x" * (MAX_EVENT_BYTES + 10)).encode()) == MAX_EVENT_BYTES
    long_text = "é" * MAX_EVENT_BYTES
    assert len(cut_text(long_text).encode()) <= MAX_EVENT_BYTES


@pytest.mark.parametrize(
    ("log_format", "lines", "expected"),
    [
        ("syslog", None, FileFormat("syslog")),
        ("apache", None, FileFormat("apache")),
        ("json", None, FileFormat("json")),
        ("multi-line: 3", 3, FileFormat("multi-line", 3)),
        ("multi-line:2", None, FileFormat("multi-line", 2)),
        ("command", None, None),
        ("audit", None, None),
        ("multi-line-regex", None, None),
    ],
)
def test_file_format(log_format: str, lines: int | None, expected: FileFormat | None) -> None:
    assert file_format(log_format, lines) == expected


def test_plain_lines_skip_empty_ones() -> None:
    shaper = PlainShaper()
    shaped = shaper.take(Line(b"Dec 29 10:00:01 host sshd[1]: x", 40))
    assert shaped.text == "Dec 29 10:00:01 host sshd[1]: x"
    assert shaped.end == 40
    assert shaper.take(Line(b"", 41)).text is None


def test_json_lines_only_objects() -> None:
    shaper = JsonShaper()
    assert shaper.take(Line(b'{"a": 1}', 9)).text == '{"a": 1}'
    assert shaper.take(Line(b"[1, 2]", 16)).text is None
    assert shaper.take(Line(b"not json", 25)).text is None
    cut = shaper.take(Line(b'{"a": "', 99, cut=5))
    assert cut.text is None and cut.end == 99


def test_multi_line_joins_n_lines_with_a_space() -> None:
    shaper = MultiLineShaper(3)
    assert shaper.take(Line(b"one", 4)) is None
    assert shaper.take(Line(b"two", 8)) is None
    shaped = shaper.take(Line(b"three", 14))
    assert shaped is not None
    assert (shaped.text, shaped.end) == ("one two three", 14)
    assert shaper.take(Line(b"four", 19)) is None
    rest = shaper.flush()
    assert rest is not None
    assert (rest.text, rest.end) == ("four", 19)
    assert shaper.flush() is None


def test_multi_line_memory_is_bounded_by_the_event_limit() -> None:
    shaper = MultiLineShaper(1000)
    chunk = b"y" * 1000
    for i in range(999):
        assert shaper.take(Line(chunk, (i + 1) * 1001)) is None
    shaped = shaper.take(Line(chunk, 1000 * 1001))
    assert shaped is not None and shaped.text is not None
    assert len(shaped.text.encode()) == MAX_EVENT_BYTES
    assert shaped.end == 1000 * 1001
