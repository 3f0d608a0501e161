"""ItemResults from ansible-runner job events (shapes as the awx_display callback writes them)."""

from __future__ import annotations

from typing import Any

from threatlockdown.response.ansible_results import item_results, normalise_address
from threatlockdown.response.executor import Batch, ResponseItem

TASK = "Block"


def event(kind: str, host: str, res: dict[str, Any], **data: Any) -> dict[str, Any]:
    return {"event": kind, "event_data": {"host": host, "res": res, "task": TASK, **data}}


def fw_entry(address: str, changed: bool, given: str | None = None) -> dict[str, Any]:
    return {"address": address, "given": given or address, "changed": changed, "location": "nft set"}


def batch(*items: ResponseItem) -> Batch:
    return Batch("b1", "firewall-drop", "firewall-drop", "add", items)


A = ResponseItem("k-a", "web1", srcip="203.0.113.7")
B = ResponseItem("k-b", "web1", srcip="2001:db8::7")
C = ResponseItem("k-c", "web2", srcip="203.0.113.7")


def by_key(results: list[Any]) -> dict[str, Any]:
    return {r.key: r for r in results}


def test_per_address_results_give_per_item_changed() -> None:
    events = [
        event(
            "runner_on_ok",
            "web1",
            {"changed": True, "results": [fw_entry("203.0.113.7", True), fw_entry("2001:db8::7", False)]},
        ),
        event("runner_on_ok", "web2", {"changed": False, "results": [fw_entry("203.0.113.7", False)]}),
    ]
    got = by_key(item_results(batch(A, B, C), events, None))
    assert (got["k-a"].status, got["k-a"].changed) == ("ok", True)
    assert (got["k-b"].status, got["k-b"].changed) == ("ok", False)
    assert (got["k-c"].status, got["k-c"].changed) == ("ok", False)
    assert "changed" in got["k-a"].message and "nft set" in got["k-a"].message


def test_addresses_match_in_normalised_form() -> None:
    assert normalise_address("::ffff:203.0.113.7") == "203.0.113.7"
    assert normalise_address("2001:DB8:0::7") == "2001:db8::7"
    item = ResponseItem("k", "web1", srcip="2001:DB8::0:7")
    events = [
        event("runner_on_ok", "web1", {"results": [fw_entry("2001:db8::7", True, given="2001:DB8::0:7")]})
    ]
    assert item_results(batch(item), events, None)[0].changed is True


def test_unreachable_host_makes_its_items_unreachable_only() -> None:
    events = [
        event(
            "runner_on_unreachable",
            "web1",
            {"msg": "Failed to connect to the host via ssh", "unreachable": True},
        ),
        event("runner_on_ok", "web2", {"changed": True, "results": [fw_entry("203.0.113.7", True)]}),
    ]
    got = by_key(item_results(batch(A, B, C), events, None))
    assert got["k-a"].status == got["k-b"].status == "unreachable"
    assert "Failed to connect" in got["k-a"].message
    assert got["k-c"].status == "ok"


def test_module_failure_without_detail_fails_all_items_of_the_host() -> None:
    events = [event("runner_on_failed", "web1", {"msg": "addresses[1] 'x': not an IPv4 or IPv6 address"})]
    got = by_key(item_results(batch(A, B), events, None))
    assert got["k-a"].status == got["k-b"].status == "failed"
    assert "not an IPv4" in got["k-a"].message


def test_ignored_failure_does_not_fail_items() -> None:
    events = [
        event("runner_on_failed", "web1", {"msg": "optional step"}, ignore_errors=True),
        event("runner_on_ok", "web1", {"changed": True, "results": [fw_entry("203.0.113.7", True)]}),
    ]
    assert item_results(batch(A), events, None)[0].status == "ok"


def loop_iteration(items: list[ResponseItem], result: dict[str, Any]) -> dict[str, Any]:
    loop_item = [60, [{"key": i.key, "host": i.host, "srcip": i.srcip} for i in items]]
    return {"ansible_loop_var": "item", "item": loop_item, **result}


def test_loop_iterations_are_attributed_to_their_items() -> None:
    ok_iteration = loop_iteration([A], {"changed": True, "results": [fw_entry("203.0.113.7", True)]})
    failed_iteration = loop_iteration([B], {"failed": True, "msg": "nft: Error: Could not process rule"})
    events = [
        event(
            "runner_on_failed",
            "web1",
            {"msg": "One or more items failed", "results": [ok_iteration, failed_iteration]},
        )
    ]
    got = by_key(item_results(batch(A, B), events, None))
    assert (got["k-a"].status, got["k-a"].changed) == ("ok", True)
    assert got["k-b"].status == "failed"
    assert "Could not process rule" in got["k-b"].message


def test_per_item_failures_of_wazuh_scripts_by_index() -> None:
    first = ResponseItem("k-1", "web1", alert={"rule": {"id": "5710"}})
    second = ResponseItem("k-2", "web1", alert={"rule": {"id": "5712"}})
    res = {
        "msg": "1 of 2 script run(s) failed",
        "results": [
            {"index": 0, "rc": 0, "failed": False, "changed": True},
            {"index": 1, "rc": 3, "failed": True, "changed": True, "stderr": "cannot add rule"},
        ],
    }
    got = by_key(
        item_results(
            Batch("b", "c", "c", "add", (first, second)), [event("runner_on_failed", "web1", res)], None
        )
    )
    assert (got["k-1"].status, got["k-1"].changed) == ("ok", True)
    assert got["k-2"].status == "failed"
    assert "exit status 3" in got["k-2"].message and "cannot add rule" in got["k-2"].message


def test_users_are_matched_by_name() -> None:
    alice = ResponseItem("k-alice", "web1", user="alice")
    bob = ResponseItem("k-bob", "web1", user="bob")
    res = {"results": [{"user": "alice", "changed": True}, {"user": "bob", "changed": False}]}
    got = by_key(
        item_results(Batch("b", "d", "d", "add", (alice, bob)), [event("runner_on_ok", "web1", res)], None)
    )
    assert got["k-alice"].changed and not got["k-bob"].changed


def test_item_the_playbook_left_out_fails_when_others_have_results() -> None:
    no_ip = ResponseItem("k-none", "web1")
    events = [event("runner_on_ok", "web1", {"results": [fw_entry("203.0.113.7", True)]})]
    got = by_key(item_results(batch(A, no_ip), events, None))
    assert got["k-a"].status == "ok"
    assert got["k-none"].status == "failed"
    assert "no result for this item" in got["k-none"].message


def test_host_level_result_without_item_detail() -> None:
    restart = ResponseItem("k-r", "web1")
    events = [event("runner_on_ok", "web1", {"changed": True, "rc": 0})]
    result = item_results(Batch("b", "restart", "restart", "add", (restart,)), events, None)[0]
    assert (result.status, result.changed) == ("ok", True)


def test_all_tasks_skipped() -> None:
    events = [event("runner_on_skipped", "web1", {"skip_reason": "Conditional result was False"})]
    assert item_results(batch(A), events, None)[0].status == "skipped"


def test_host_without_events_fails_with_the_run_problem() -> None:
    result = item_results(
        batch(A), [], "ansible-playbook exited with status 1: ERROR! the playbook could not be found"
    )
    assert result[0].status == "failed"
    assert "could not be found" in result[0].message
    assert "web1" in item_results(batch(A), [], None)[0].message


def test_a_timed_out_run_does_not_count_as_done() -> None:
    events = [event("runner_on_ok", "web1", {"results": [fw_entry("203.0.113.7", True)]})]
    result = item_results(batch(A), events, "timed out after 5 s")[0]
    assert result.status == "failed"
    assert "timed out" in result.message


def test_events_of_other_hosts_and_odd_shapes_are_ignored() -> None:
    events: list[dict[str, Any]] = [
        {"event": "verbose", "stdout": "x"},
        {"event": "runner_on_ok", "event_data": "not a dict"},
        event("runner_on_ok", "elsewhere", {"results": [fw_entry("203.0.113.7", True)]}),
        event("runner_on_ok", "web1", {"results": "not a list"}),
        event("runner_on_ok", "web1", {"results": [fw_entry("203.0.113.7", False)]}),
    ]
    result = item_results(batch(A), events, None)[0]
    assert (result.status, result.changed) == ("ok", False)
