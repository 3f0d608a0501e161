from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.threatlockdown.active_response.plugins.module_utils.validation import (
    InvalidItems,
    check_alert_user,
    parse_address,
    parse_address_list,
    parse_user_list,
)


@pytest.mark.parametrize(
    ("given", "text", "version"),
    [
        ("203.0.113.7", "203.0.113.7", 4),
        ("2001:DB8:0:0::7", "2001:db8::7", 6),
        ("::ffff:203.0.113.7", "203.0.113.7", 4),
        ("::FFFF:cb00:7107", "203.0.113.7", 4),
    ],
)
def test_addresses_are_normalised(given: str, text: str, version: int) -> None:
    address = parse_address(given)
    assert (address.text, address.version, address.given) == (text, version, given)
    assert address.host_prefix == f"{text}/{32 if version == 4 else 128}"


@pytest.mark.parametrize(
    "bad",
    [
        "1.2.3.4;touch /tmp/pwned",
        "$(touch /tmp/pwned)",
        "{{ lookup('pipe','id') }}",
        "1.2.3.4 ",
        " 1.2.3.4",
        "1.2.3.4\n",
        "203.0.113.0/24",
        "fe80::1%eth0",
        "127.0.0.1",
        "::1",
        "0.0.0.0",
        "::",
        "224.0.0.1",
        "-j ACCEPT",
        "",
        "1.2.3",
        "01.2.3.4",
    ],
)
def test_bad_addresses_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_address(bad)


@pytest.mark.parametrize("bad", [None, 1234, ["1.2.3.4"], {"a": 1}])
def test_non_strings_are_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="not a string"):
        parse_address(bad)


def test_list_reports_every_bad_item_with_its_index() -> None:
    with pytest.raises(InvalidItems) as caught:
        parse_address_list("addresses", ["203.0.113.7", "1.2.3.4;touch /tmp/pwned", "x", "2001:db8::1"])
    problems = caught.value.problems
    assert [(p.option, p.index) for p in problems] == [("addresses", 1), ("addresses", 2)]
    assert "'1.2.3.4;touch /tmp/pwned'" in str(caught.value)
    assert "nothing was changed" in str(caught.value)


def test_error_message_cannot_be_forged_with_newlines() -> None:
    with pytest.raises(InvalidItems) as caught:
        parse_address_list("addresses", ["1.2.3.4\nok: all good"])
    assert "\n" not in str(caught.value)
    assert "\\n" in str(caught.value)


def test_duplicates_and_mapped_aliases_fold() -> None:
    addresses = parse_address_list(
        "addresses", ["203.0.113.7", "::ffff:203.0.113.7", "2001:db8::7", "2001:db8::7"]
    )
    assert [a.text for a in addresses] == ["203.0.113.7", "2001:db8::7"]


def test_empty_list_is_refused() -> None:
    with pytest.raises(InvalidItems, match="at least one"):
        parse_address_list("addresses", [])


def test_user_names() -> None:
    assert parse_user_list("users", ["alice", "bob_2", "alice", "_svc-x"]) == ["alice", "bob_2", "_svc-x"]
    with pytest.raises(InvalidItems) as caught:
        parse_user_list(
            "users",
            ["alice", "{{ lookup('pipe','id') }}", "-o", "a;b", "Alice", "x" * 33, "../etc", "$(id)"],
        )
    assert [p.index for p in caught.value.problems] == [1, 2, 3, 4, 5, 6, 7]


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("Test.", True),
        ("DOMAIN_user", True),
        ("root", False),
        ("-rf", False),
        ("a/b", False),
        ("a..b", False),
        ("a b", False),
        ("a:b", False),
        ("", False),
        (42, False),
    ],
)
def test_alert_user_check(value: Any, accepted: bool) -> None:
    assert (check_alert_user(value) is None) is accepted
