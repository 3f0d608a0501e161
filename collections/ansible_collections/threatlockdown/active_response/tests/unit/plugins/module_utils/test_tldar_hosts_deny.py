from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from ansible_collections.threatlockdown.active_response.plugins.module_utils.atomic_file import (
    read_text,
    write_atomically,
)
from ansible_collections.threatlockdown.active_response.plugins.module_utils.hosts_deny_file import (
    BEGIN,
    END,
    HostsDeny,
    HostsDenyError,
    denied_addresses,
    entry_for,
)
from ansible_collections.threatlockdown.active_response.plugins.module_utils.validation import (
    parse_address,
    parse_address_list,
)


def test_entries_use_brackets_for_ipv6() -> None:
    assert entry_for(parse_address("203.0.113.7")) == "ALL: 203.0.113.7"
    assert entry_for(parse_address("2001:db8::7")) == "ALL: [2001:db8::7]"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("ALL: 10.0.0.1", ["10.0.0.1"]),
        ("ALL:10.0.0.1", ["10.0.0.1"]),
        ("ALL: 10.0.0.1, [2001:db8::1] 10.0.0.2", ["10.0.0.1", "2001:db8::1", "10.0.0.2"]),
        ("ALL: 10.0.0.10", ["10.0.0.10"]),
        ("sshd: 10.0.0.1", []),
        ("ALL: 10.0.0.1 : allow", []),
        ("ALL:2001:db8::1", []),
        ("# ALL: 10.0.0.1", []),
        ("ALL: .example.com", []),
    ],
)
def test_exact_client_matching(line: str, expected: list[str]) -> None:
    assert denied_addresses(line) == expected


def test_add_then_remove_touches_only_our_block() -> None:
    original = "# site policy\nsshd: 10.0.0.1\nALL: 10.0.0.10\n"
    doc = HostsDeny.parse("/x/hosts.deny", original)
    added = doc.add(parse_address_list("addresses", ["10.0.0.1", "10.0.0.10", "2001:db8::1"]))
    # 10.0.0.10 is already denied by a foreign line; 10.0.0.1 only by an sshd-only line, which does not count.
    assert [a.text for a in added] == ["10.0.0.1", "2001:db8::1"]
    text = doc.render()
    assert text == original + f"{BEGIN}\nALL: 10.0.0.1\nALL: [2001:db8::1]\n{END}\n"

    again = HostsDeny.parse("/x/hosts.deny", text)
    assert again.add(parse_address_list("addresses", ["10.0.0.1", "2001:db8::1"])) == []
    assert again.render() == text

    removed, foreign = again.remove(parse_address_list("addresses", ["10.0.0.1", "10.0.0.10", "2001:db8::1"]))
    assert [a.text for a in removed] == ["10.0.0.1", "2001:db8::1"]
    assert [a.text for a in foreign] == ["10.0.0.10"]
    assert again.foreign["10.0.0.10"] == 3
    # The empty block disappears with its markers and the rest is byte-identical.
    assert again.render() == original


def test_block_in_the_middle_keeps_position_and_foreign_line_numbers() -> None:
    text = f"a: 1.1.1.1\n{BEGIN}\nALL: 10.0.0.1\n{END}\nALL: 10.0.0.2\n"
    doc = HostsDeny.parse("/x/hosts.deny", text)
    assert doc.foreign == {"10.0.0.2": 5}
    doc.add(parse_address_list("addresses", ["10.0.0.3"]))
    assert doc.render() == f"a: 1.1.1.1\n{BEGIN}\nALL: 10.0.0.1\nALL: 10.0.0.3\n{END}\nALL: 10.0.0.2\n"


def test_hand_edited_lines_inside_the_block_are_kept() -> None:
    text = f"{BEGIN}\n# note by admin\nALL: 10.0.0.1\n{END}\n"
    doc = HostsDeny.parse("/x/hosts.deny", text)
    doc.remove(parse_address_list("addresses", ["10.0.0.1"]))
    assert doc.render() == f"{BEGIN}\n# note by admin\n{END}\n"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (f"x\n{BEGIN}\nALL: 10.0.0.1\n", "/x/hosts.deny:2:"),
        (f"{END}\n", "/x/hosts.deny:1:"),
        (f"{BEGIN}\n{END}\n{BEGIN}\n{END}\n", "/x/hosts.deny:3:"),
    ],
)
def test_broken_markers_name_file_and_line(text: str, where: str) -> None:
    with pytest.raises(HostsDenyError, match=where):
        HostsDeny.parse("/x/hosts.deny", text)


def test_missing_file_reads_as_none_and_is_created_0644(tmp_path: Path) -> None:
    path = tmp_path / "hosts.deny"
    assert read_text(str(path)) is None
    write_atomically(str(path), "ALL: 10.0.0.1\n")
    assert path.read_text() == "ALL: 10.0.0.1\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_atomic_write_keeps_mode_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "hosts.deny"
    path.write_text("old\n")
    os.chmod(path, 0o600)
    inode = path.stat().st_ino
    write_atomically(str(path), "new\n")
    assert path.read_text() == "new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_ino != inode  # replaced by rename, not rewritten in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hosts.deny"]
