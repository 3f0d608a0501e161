"""allowed-ips / denied-ips: Wazuh's order, CIDR, negation, IPv6 and IPv4-mapped senders."""

from __future__ import annotations

import pytest

from threatlockdown.collect.access import SenderPolicy, sender_ip
from threatlockdown.errors import SourceErrors


def policy(allowed: tuple[str, ...], denied: tuple[str, ...] = ()) -> SenderPolicy:
    return SenderPolicy.from_config(allowed, denied, path="ossec.conf", line=7)


def test_allowed_networks_and_addresses() -> None:
    p = policy(("192.0.2.0/24", "198.51.100.7", "2001:db8::/32"))
    assert p.allows("192.0.2.200")
    assert p.allows("198.51.100.7")
    assert not p.allows("198.51.100.8")
    assert p.allows("2001:db8::5")
    assert not p.allows("2001:db9::5")


def test_denied_wins_over_allowed() -> None:
    p = policy(("10.0.0.0/8",), ("10.1.0.0/16",))
    assert p.allows("10.2.3.4")
    assert not p.allows("10.1.3.4")


def test_nothing_allowed_means_refused() -> None:
    assert not policy(()).allows("127.0.0.1")


def test_any_and_negation() -> None:
    assert policy(("any",)).allows("203.0.113.9")
    assert policy(("any",)).allows("::1")
    p = policy(("!10.0.0.0/8",))
    assert p.allows("192.0.2.1")
    assert not p.allows("10.9.9.9")


def test_host_bits_in_a_network_are_accepted_like_wazuh() -> None:
    assert policy(("10.0.0.1/8",)).allows("10.200.0.1")


def test_invalid_values_name_file_line_and_element() -> None:
    with pytest.raises(SourceErrors) as exc:
        policy(("10.0.0.300",), ("nope",))
    text = str(exc.value)
    assert "ossec.conf:7: <allowed-ips>: invalid IP address or network '10.0.0.300'" in text
    assert "ossec.conf:7: <denied-ips>: invalid IP address or network 'nope'" in text


def test_sender_ip_normalises_mapped_and_scoped_addresses() -> None:
    assert sender_ip("::ffff:192.0.2.4") == "192.0.2.4"
    assert sender_ip("fe80::1%eth0") == "fe80::1"
    assert sender_ip("2001:DB8::1") == "2001:db8::1"
