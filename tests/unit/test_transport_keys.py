"""client.keys: strict parsing with file:line errors, atomic rewrite, ID allocation, IP restrictions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from threatlockdown.errors import SourceErrors
from threatlockdown.transport.keys import (
    AgentKey,
    KeyFile,
    RemovedKey,
    address_allowed,
    new_agent_key,
    parse_client_keys,
    read_client_keys,
    write_client_keys,
)
from threatlockdown.transport.registry import DuplicateAgentError, KeyStore, add_agent, register_agent

KEY_A = "a" * 64
KEY_B = "0123456789abcdef" * 4


def test_parses_active_removed_and_comment_lines_in_order() -> None:
    text = (
        f"# managed by ansible\n001 web-1 any {KEY_A}\n002 !old-db 10.0.0.5 {KEY_B}\n"
        f"\n003 db-2 10.0.0.0/24 {KEY_B}\n"
    )
    keys = parse_client_keys(text, "etc/client.keys")
    assert keys.agents == (
        AgentKey("001", "web-1", "any", KEY_A),
        AgentKey("003", "db-2", "10.0.0.0/24", KEY_B),
    )
    assert isinstance(keys.lines[2], RemovedKey) and keys.lines[2].id == "002"
    assert keys.by_name("old-db") is None  # removed agents do not authenticate
    assert keys.next_id() == "004"
    # Comments, removed lines and blank-line removal: the rewrite keeps everything but empty lines.
    assert keys.render() == text.replace("\n\n", "\n")


@pytest.mark.parametrize(
    ("line", "element", "fragment"),
    [
        (f"1 web any {KEY_A}", "ID", "3 to 8 digits"),
        (f"000 web any {KEY_A}", "ID", "reserved for the manager"),
        (f"001 w any {KEY_A}", "NAME", "2 to 128 characters"),
        (f"001 web/1 any {KEY_A}", "NAME", "2 to 128 characters"),
        (f"001 web 10.0.0.300 {KEY_A}", "IP", "'any', an IP address"),
        ("001 web any abc", "KEY", "64 hexadecimal characters (found 3"),
        (f"001 web any {'g' * 64}", "KEY", "64 hexadecimal"),
        (f"001 web  any {KEY_A}", None, "single spaces"),
        ("001 web any", None, "expected 'ID NAME IP KEY'"),
        (f" 001 web any {KEY_A}", None, "starts with white space"),
        (f"001 web any {KEY_A}\r", None, "carriage return"),
    ],
)
def test_bad_line_is_reported_with_file_line_and_field(line: str, element: str | None, fragment: str) -> None:
    text = f"002 ok-agent any {KEY_B}\n{line}\n"
    with pytest.raises(SourceErrors) as caught:
        parse_client_keys(text, "/var/tld/etc/client.keys")
    [error] = caught.value.errors
    assert (error.path, error.line, error.element) == ("/var/tld/etc/client.keys", 2, element)
    assert fragment in error.message
    assert str(error).startswith("/var/tld/etc/client.keys:2:")


def test_every_bad_line_is_reported_not_just_the_first() -> None:
    text = (
        f"001 aa any {KEY_A}\n001 bb any {KEY_A}\n002 aa any {KEY_B}\n003 !gone any x\n003 cc any {KEY_A}\n"
    )
    with pytest.raises(SourceErrors) as caught:
        parse_client_keys(text, "k")
    messages = [(e.line, e.element, e.message) for e in caught.value.errors]
    assert messages == [
        (2, "ID", "agent ID 001 already used on line 1"),
        (3, "NAME", "agent name 'aa' already used on line 1"),
        (5, "ID", "agent ID 003 already used on line 4"),
    ]


def test_read_reports_missing_file_and_non_utf8(tmp_path: Path) -> None:
    path = tmp_path / "client.keys"
    with pytest.raises(SourceErrors, match="file not found"):
        read_client_keys(path)
    assert read_client_keys(path, missing_ok=True) == KeyFile()
    path.write_bytes(f"001 a1 any {KEY_A}\n002 b\xff any {KEY_B}\n".encode("latin-1"))
    with pytest.raises(SourceErrors) as caught:
        read_client_keys(path)
    assert (caught.value.errors[0].line, caught.value.errors[0].message) == (2, "not UTF-8 text")


def test_write_is_atomic_and_private(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "client.keys"
    keys = KeyFile((AgentKey("001", "web-1", "any", KEY_A),))
    write_client_keys(path, keys)
    assert read_client_keys(path) == keys
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(path.parent) == ["client.keys"]  # no temporary file left behind


def test_new_keys_are_random_hex() -> None:
    first, second = new_agent_key(), new_agent_key()
    assert len(first) == 64 and int(first, 16) >= 0 and first != second


@pytest.mark.parametrize(
    ("ip_field", "address", "allowed"),
    [
        ("any", "203.0.113.9", True),
        ("10.0.0.5", "10.0.0.5", True),
        ("10.0.0.5", "10.0.0.6", False),
        ("10.0.0.0/24", "10.0.0.77", True),
        ("10.0.0.0/24", "10.0.1.1", False),
        ("10.0.0.0/24", "::ffff:10.0.0.9", True),  # dual-stack sockets report IPv4 peers this way
        ("2001:db8::/32", "2001:db8::1", True),
        ("2001:db8::/32", "10.0.0.1", False),
        ("10.0.0.5", "not-an-address", False),
    ],
)
def test_ip_field_restricts_source_address(ip_field: str, address: str, allowed: bool) -> None:
    assert address_allowed(ip_field, address) is allowed


def test_add_agent_allocates_ids_after_removed_ones(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "client.keys").write_text(f"001 one any {KEY_A}\n007 !seven any {KEY_B}\n")
    line = add_agent(tmp_path, "web-2", "192.0.2.0/24")
    agent_id, name, ip, key = line.split(" ")
    assert (agent_id, name, ip) == ("008", "web-2", "192.0.2.0/24")
    assert len(key) == 64
    assert read_client_keys(etc / "client.keys").by_id("008") == AgentKey(agent_id, name, ip, key)


def test_add_agent_refuses_bad_name_ip_and_duplicates(tmp_path: Path) -> None:
    add_agent(tmp_path, "web-1")
    with pytest.raises(DuplicateAgentError, match="'web-1' already exists"):
        add_agent(tmp_path, "web-1")
    with pytest.raises(ValueError, match="agent name"):
        add_agent(tmp_path, "web 1")
    with pytest.raises(ValueError, match="agent IP"):
        add_agent(tmp_path, "web-3", "somewhere")


def test_register_with_replace_retires_the_old_agent(tmp_path: Path) -> None:
    first = register_agent(tmp_path, "web-1")
    second = register_agent(tmp_path, "web-1", replace=True)
    keys = read_client_keys(tmp_path / "etc" / "client.keys")
    assert (first.id, second.id) == ("001", "002")
    assert keys.agents == (second,)
    assert keys.by_id("001") is None


def test_key_store_reloads_changes_and_keeps_last_good_keys(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "etc" / "client.keys"
    store = KeyStore(path)
    store.load()
    assert store.lookup("001") is None
    agent = register_agent(tmp_path, "web-1")
    assert store.lookup("001") == agent
    path.write_text("001 web-1 any short\n")  # a typo while the manager runs
    assert store.lookup("001") == agent
    assert "keeping the previous keys" in caplog.text and "client.keys:1: <KEY>:" in caplog.text


def test_key_store_load_raises_on_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "client.keys"
    path.write_text("garbage\n")
    with pytest.raises(SourceErrors, match=r"client.keys:1: expected 'ID NAME IP KEY'"):
        KeyStore(path).load()
