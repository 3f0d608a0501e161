"""The shared module flow: check mode, diff only on request, and how failures end a module."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.threatlockdown.active_response.plugins.module_utils.module_run import (
    ModuleFailure,
    apply_or_predict,
    finish,
    state_diff,
)
from ansible_collections.threatlockdown.active_response.plugins.module_utils.validation import (
    InvalidItems,
    ItemProblem,
)


class Ended(Exception):
    """Raised by FakeModule where AnsibleModule would exit the process."""

    def __init__(self, how: str, result: dict[str, Any]) -> None:
        super().__init__(how)
        self.how = how
        self.result = result


class FakeModule:
    def __init__(self, check_mode: bool = False, diff: bool = False) -> None:
        self.check_mode = check_mode
        self._diff = diff

    def exit_json(self, **result: Any) -> None:
        raise Ended("exit", result)

    def fail_json(self, **result: Any) -> None:
        raise Ended("fail", result)


def end(module: FakeModule, run: Any, failures: tuple[type[Exception], ...] = ()) -> Ended:
    with pytest.raises(Ended) as ended:
        finish(module, run, failures)
    return ended.value


RESULT = {"changed": True, "results": [1], "diff": state_diff("h", "a\n", "b\n")}


def test_state_diff_names_both_sides_with_one_header() -> None:
    assert state_diff("routes", "x\n", "") == {
        "before_header": "routes",
        "after_header": "routes",
        "before": "x\n",
        "after": "",
    }


@pytest.mark.parametrize("diff", [False, True])
def test_the_diff_is_returned_only_when_asked_for(diff: bool) -> None:
    ended = end(FakeModule(diff=diff), lambda _m: dict(RESULT))
    assert ended.how == "exit"
    assert ("diff" in ended.result) is diff
    assert ended.result["results"] == [1] and ended.result["changed"] is True


def test_refused_items_are_all_listed() -> None:
    problems = [ItemProblem("addresses", 0, "'x'", "bad"), ItemProblem("addresses", 2, "'y'", "worse")]

    def run(_module: Any) -> dict[str, Any]:
        raise InvalidItems(problems)

    ended = end(FakeModule(), run)
    assert ended.how == "fail"
    assert ended.result["invalid"] == ["addresses[0] 'x': bad", "addresses[2] 'y': worse"]
    assert ended.result["msg"].startswith("refused 2 invalid item(s), nothing was changed")


@pytest.mark.parametrize("diff", [False, True])
def test_a_module_failure_keeps_its_details(diff: bool) -> None:
    def run(_module: Any) -> dict[str, Any]:
        raise ModuleFailure("1 of 1 script run(s) failed", dict(RESULT))

    ended = end(FakeModule(diff=diff), run)
    assert ended.how == "fail"
    assert ended.result["msg"] == "1 of 1 script run(s) failed"
    assert ended.result["results"] == [1]
    assert ("diff" in ended.result) is diff


def test_listed_failures_give_their_message_and_others_propagate() -> None:
    def run(_module: Any) -> dict[str, Any]:
        raise LookupError("no such table")

    ended = end(FakeModule(), run, (KeyError, LookupError))
    assert ended.how == "fail"
    assert ended.result == {"msg": "no such table"}
    with pytest.raises(LookupError):
        finish(FakeModule(), run, (ValueError,))


def test_details_are_optional() -> None:
    assert ModuleFailure("gone").details == {}


class Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def apply(self) -> None:
        self.calls.append("apply")

    def read(self) -> str:
        self.calls.append("read")
        return "read back"

    def predict(self) -> str:
        self.calls.append("predict")
        return "predicted"


@pytest.mark.parametrize(
    ("check_mode", "changing", "expected", "calls"),
    [
        (False, True, "read back", ["apply", "read"]),
        (True, True, "predicted", ["predict"]),
        (False, False, "predicted", ["predict"]),
        (True, False, "predicted", ["predict"]),
    ],
)
def test_only_a_real_run_with_changes_applies_them(
    check_mode: bool, changing: bool, expected: str, calls: list[str]
) -> None:
    recorder = Recorder()
    state = apply_or_predict(
        FakeModule(check_mode=check_mode), changing, recorder.apply, recorder.read, recorder.predict
    )
    assert state == expected
    assert recorder.calls == calls
