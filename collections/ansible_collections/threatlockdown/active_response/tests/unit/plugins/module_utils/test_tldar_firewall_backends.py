"""Backends and planning against a recording fake runner: exact argv, parsing, idempotence decisions."""

from __future__ import annotations

import json

import pytest
from ansible_collections.threatlockdown.active_response.plugins.module_utils.commands import CommandError
from ansible_collections.threatlockdown.active_response.plugins.module_utils.firewall_base import (
    BackendError,
    EntryState,
)
from ansible_collections.threatlockdown.active_response.plugins.module_utils.firewall_firewalld import (
    FirewalldBackend,
    parse_rich_rules,
)
from ansible_collections.threatlockdown.active_response.plugins.module_utils.firewall_ipset import (
    IpsetBackend,
    parse_save,
)
from ansible_collections.threatlockdown.active_response.plugins.module_utils.firewall_iptables import (
    IptablesBackend,
)
from ansible_collections.threatlockdown.active_response.plugins.module_utils.firewall_nftables import (
    NftablesBackend,
    parse_table,
)
from ansible_collections.threatlockdown.active_response.plugins.module_utils.firewall_plan import (
    apply_plan,
    build_report,
    choose_backend,
    entry_timeout,
    make_plan,
    predicted_state,
)
from ansible_collections.threatlockdown.active_response.plugins.module_utils.validation import (
    parse_address_list,
)
from ansible_collections.threatlockdown.active_response.tests.unit.plugins.module_utils.tldar_fakes import (
    FakeRunner,
)

META = {"metainfo": {"version": "1.0.6", "json_schema_version": 1}}


def nft_table(elements4: list[object], with_rules: bool = True) -> str:
    """The shape of `nft -j list table inet threatlockdown` as nft 1.0.6 prints it."""
    items: list[object] = [
        META,
        {"table": {"family": "inet", "name": "threatlockdown", "handle": 1}},
        {"set": {"family": "inet", "name": "blocked4", "table": "threatlockdown", "type": "ipv4_addr",
                 "handle": 1, "flags": ["timeout"], "elem": elements4}},
        {"set": {"family": "inet", "name": "blocked6", "table": "threatlockdown", "type": "ipv6_addr",
                 "handle": 2, "flags": ["timeout"]}},
    ]  # fmt: skip
    for chain in ("input", "forward"):
        items.append({"chain": {"family": "inet", "table": "threatlockdown", "name": chain, "type": "filter",
                                "hook": chain, "prio": -10, "policy": "accept"}})  # fmt: skip
        if with_rules:
            for proto, name in (("ip", "@blocked4"), ("ip6", "@blocked6")):
                expr = [
                    {
                        "match": {
                            "op": "==",
                            "left": {"payload": {"protocol": proto, "field": "saddr"}},
                            "right": name,
                        }
                    },
                    {"drop": None},
                ]
                items.append(
                    {"rule": {"family": "inet", "table": "threatlockdown", "chain": chain, "expr": expr}}
                )
    return json.dumps({"nftables": items})


def test_parse_table_reads_elements_with_and_without_timeout() -> None:
    view = parse_table(
        nft_table([{"elem": {"val": "203.0.113.7", "timeout": 900, "expires": 897}}, "198.51.100.1"])
    )
    assert view.exists
    assert view.elements == {
        "203.0.113.7": EntryState(blocked=True, expires_in=897),
        "198.51.100.1": EntryState(blocked=True, expires_in=None),
    }
    assert view.drop_rules == {"input": {"@blocked4", "@blocked6"}, "forward": {"@blocked4", "@blocked6"}}


def test_parse_table_rejects_garbage() -> None:
    with pytest.raises(BackendError, match="cannot parse"):
        parse_table("not json")


def missing_table(argv: list[str], data: str | None) -> tuple[int, str, str]:
    if argv[1:3] == ["-j", "list"]:
        return 1, "", "Error: No such file or directory\nlist table inet threatlockdown\n"
    return 0, "", ""


def test_nftables_first_block_creates_table_then_adds_elements_in_one_transaction() -> None:
    runner = FakeRunner(missing_table)
    backend = NftablesBackend(runner)
    addresses = parse_address_list("addresses", ["203.0.113.7", "2001:db8::7", "203.0.113.8"])
    plan = make_plan(backend, addresses, present=True)
    assert plan.changed and len(plan.to_change) == 3
    assert plan.setup[0] == "nftables table inet threatlockdown"
    apply_plan(backend, plan, entry_timeout(backend, 600, 300))
    scripts = [data for argv, data in runner.calls if argv == ["/usr/sbin/nft", "-f", "-"]]
    assert len(scripts) == 2
    assert scripts[0] is not None and "add table inet threatlockdown" in scripts[0]
    assert "add set inet threatlockdown blocked4 { type ipv4_addr; flags timeout; }" in scripts[0]
    assert (
        "add chain inet threatlockdown input { type filter hook input priority -10; policy accept; }"
        in scripts[0]
    )
    assert "add rule inet threatlockdown forward ip6 saddr @blocked6 drop" in scripts[0]
    assert scripts[1] == (
        "add element inet threatlockdown blocked4 { 203.0.113.7 timeout 900s, 203.0.113.8 timeout 900s }\n"
        "add element inet threatlockdown blocked6 { 2001:db8::7 timeout 900s }\n"
    )


def test_nftables_present_element_is_left_alone_and_zero_timeout_means_none() -> None:
    table = nft_table([{"elem": {"val": "203.0.113.7", "timeout": 900, "expires": 500}}])
    runner = FakeRunner(lambda argv, data: (0, table, ""))
    backend = NftablesBackend(runner)
    plan = make_plan(backend, parse_address_list("a", ["203.0.113.7", "203.0.113.9"]), present=True)
    assert plan.setup == []
    assert [a.text for a in plan.to_change] == ["203.0.113.9"]
    apply_plan(backend, plan, 0)
    assert runner.calls[-1][1] == "add element inet threatlockdown blocked4 { 203.0.113.9 }\n"


def test_nftables_missing_rule_in_existing_chain_is_added_alone() -> None:
    runner = FakeRunner(lambda argv, data: (0, nft_table([], with_rules=False), ""))
    backend = NftablesBackend(runner)
    assert backend.missing_setup({4}) == [
        "nftables rule inet threatlockdown input: ip saddr @blocked4 drop",
        "nftables rule inet threatlockdown input: ip6 saddr @blocked6 drop",
        "nftables rule inet threatlockdown forward: ip saddr @blocked4 drop",
        "nftables rule inet threatlockdown forward: ip6 saddr @blocked6 drop",
    ]


def test_nftables_set_without_timeout_flag_is_refused() -> None:
    document = json.loads(nft_table([]))
    document["nftables"][2]["set"]["flags"] = []
    runner = FakeRunner(lambda argv, data: (0, json.dumps(document), ""))
    with pytest.raises(BackendError, match="flags timeout"):
        NftablesBackend(runner).missing_setup({4})


def test_nftables_delete_retries_once_when_an_element_expired_meanwhile() -> None:
    state = {"deletes": 0}
    listing = nft_table(["203.0.113.7"])

    def handler(argv: list[str], data: str | None) -> tuple[int, str, str]:
        if argv[1:3] == ["-j", "list"]:
            return 0, listing, ""
        state["deletes"] += 1
        if state["deletes"] == 1:
            return 1, "", "Error: Could not process rule: No such file or directory"
        return 0, "", ""

    runner = FakeRunner(handler)
    backend = NftablesBackend(runner)
    backend.remove(parse_address_list("a", ["203.0.113.7", "203.0.113.8"]))
    deletes = [data for argv, data in runner.calls if argv[-1] == "-"]
    assert deletes == [
        "delete element inet threatlockdown blocked4 { 203.0.113.7, 203.0.113.8 }\n",
        "delete element inet threatlockdown blocked4 { 203.0.113.7 }\n",
    ]


def test_entry_timeout_limits() -> None:
    backend = NftablesBackend(FakeRunner(missing_table))
    assert entry_timeout(backend, 0, 300) == 0
    assert entry_timeout(backend, 600, 300) == 900
    with pytest.raises(BackendError, match="more than backend nftables accepts"):
        entry_timeout(backend, 10**9, 0)
    with pytest.raises(BackendError, match="negative"):
        entry_timeout(backend, -1, 0)


def test_ipset_parse_save() -> None:
    text = (
        "create threatlockdown4 hash:ip family inet hashsize 1024 maxelem 65536 timeout 0\n"
        "add threatlockdown4 203.0.113.7 timeout 599\n"
        "add threatlockdown4 198.51.100.1 timeout 0\n"
        "add other 192.0.2.1\n"
    )
    assert parse_save("threatlockdown4", text) == {
        "203.0.113.7": EntryState(blocked=True, expires_in=599),
        "198.51.100.1": EntryState(blocked=True, expires_in=None),
    }


def test_ipset_setup_and_batch_restore() -> None:
    def handler(argv: list[str], data: str | None) -> tuple[int, str, str]:
        if argv[1] == "save":
            return 1, "", "ipset v7.17: The set with the given name does not exist"
        if "-S" in argv:  # DOCKER-USER absent
            return 1, "", "iptables: No chain/target/match by that name."
        if "-C" in argv:
            return 1, "", ""
        return 0, "", ""

    runner = FakeRunner(handler)
    backend = IpsetBackend(runner)
    addresses = parse_address_list("a", ["203.0.113.7", "2001:db8::7"])
    plan = make_plan(backend, addresses, present=True)
    assert "ipset threatlockdown4 (hash:ip family inet timeout 0)" in plan.setup
    apply_plan(backend, plan, 900)
    argvs = runner.argvs()
    assert [
        "/usr/sbin/ipset",
        "create",
        "threatlockdown6",
        "hash:ip",
        "family",
        "inet6",
        "timeout",
        "0",
        "-exist",
    ] in argvs
    assert [
        "/usr/sbin/ip6tables", "-w", "10", "-I", "FORWARD", "1",
        "-m", "set", "--match-set", "threatlockdown6", "src", "-j", "DROP",
    ] in argvs  # fmt: skip
    assert runner.calls[-1] == (
        ["/usr/sbin/ipset", "-exist", "restore"],
        "add threatlockdown4 203.0.113.7 timeout 900\nadd threatlockdown6 2001:db8::7 timeout 900\n",
    )


def test_iptables_uses_check_and_covers_docker_user() -> None:
    rules: set[tuple[str, ...]] = {("INPUT", "-s", "203.0.113.7", "-j", "DROP")}

    def handler(argv: list[str], data: str | None) -> tuple[int, str, str]:
        verb, chain, spec = argv[3], argv[4], argv[5:]
        if verb == "-S":
            return 0, "-N DOCKER-USER\n", ""
        if verb == "-C":
            return (0 if (chain, *spec) in rules else 1), "", ""
        if verb == "-I":
            rules.add((chain, *spec[1:]))
        if verb == "-D":
            rules.discard((chain, *spec))
        return 0, "", ""

    runner = FakeRunner(handler)
    backend = IptablesBackend(runner)
    addresses = parse_address_list("a", ["203.0.113.7"])
    plan = make_plan(backend, addresses, present=True)
    # Present in INPUT only: partially blocked, so the missing chains are filled in.
    assert plan.before["203.0.113.7"] == EntryState(blocked=True, complete=False)
    assert plan.to_change == addresses
    apply_plan(backend, plan, 0)
    assert rules == {(c, "-s", "203.0.113.7", "-j", "DROP") for c in ("INPUT", "FORWARD", "DOCKER-USER")}
    inserts = [argv for argv in runner.argvs() if argv[3] == "-I"]
    assert inserts == [
        ["/usr/sbin/iptables", "-w", "10", "-I", "FORWARD", "1", "-s", "203.0.113.7", "-j", "DROP"],
        ["/usr/sbin/iptables", "-w", "10", "-I", "DOCKER-USER", "1", "-s", "203.0.113.7", "-j", "DROP"],
    ]
    assert make_plan(backend, addresses, present=True).changed is False
    apply_plan(backend, make_plan(backend, addresses, present=False), 0)
    assert rules == set()


def test_iptables_check_error_is_reported() -> None:
    runner = FakeRunner(lambda argv, data: (1, "", "") if "-S" in argv else (2, "", "iptables: bad"))
    with pytest.raises(CommandError, match="exited 2: iptables: bad"):
        IptablesBackend(runner).read(parse_address_list("a", ["203.0.113.7"]))


def test_firewalld_rich_rules() -> None:
    listed = 'rule family="ipv4" source address="203.0.113.7" drop\nrule service name="ssh" accept\n'
    assert parse_rich_rules(listed) == {"203.0.113.7"}
    runner = FakeRunner(lambda argv, data: (0, listed, "") if "--list-rich-rules" in argv else (0, "", ""))
    backend = FirewalldBackend(runner, "public")
    plan = make_plan(backend, parse_address_list("a", ["203.0.113.7", "2001:db8::7"]), present=True)
    apply_plan(backend, plan, 900)
    assert runner.calls[-1][0] == [
        "/usr/bin/firewall-cmd",
        "--zone=public",
        '--add-rich-rule=rule family="ipv6" source address="2001:db8::7" drop',
        "--timeout=900s",
    ]
    with pytest.raises(BackendError, match="not a valid zone"):
        FirewalldBackend(runner, "public --permanent")


def test_auto_prefers_nftables_then_ipset_then_iptables() -> None:
    def ok(argv: list[str], data: str | None) -> tuple[int, str, str]:
        return 0, "", ""

    assert choose_backend("auto", FakeRunner(ok)).name == "nftables"
    assert (
        choose_backend("auto", FakeRunner(ok, {"ipset": "/s/ipset", "iptables": "/s/iptables"})).name
        == "ipset"
    )
    assert choose_backend("auto", FakeRunner(ok, {"iptables": "/s/iptables"})).name == "iptables"
    with pytest.raises(BackendError, match="found none"):
        choose_backend("auto", FakeRunner(ok, {}))


def test_check_mode_prediction_and_diff() -> None:
    runner = FakeRunner(missing_table)
    backend = NftablesBackend(runner)
    addresses = parse_address_list("a", ["203.0.113.7"])
    plan = make_plan(backend, addresses, present=True)
    report = build_report(backend, plan, predicted_state(backend, plan, 900), 900)
    assert all(argv[1:3] == ["-j", "list"] for argv in runner.argvs())  # read only
    assert report["blocked"] == ["203.0.113.7"]
    assert report["results"][0]["changed"] is True
    assert report["diff"]["before"] == ""
    assert report["diff"]["after"].endswith("nftables inet threatlockdown blocked4: 203.0.113.7\n")
