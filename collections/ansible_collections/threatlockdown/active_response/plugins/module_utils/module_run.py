# Copyright: ThreatLockDown contributors
# SPDX-License-Identifier: Apache-2.0
"""What every module of the collection does the same way around its own ``run(module)``.

A module validates its input, reads the current state, decides and builds its result; these helpers hold
the rules that must not drift apart between modules: check mode changes nothing and predicts the outcome,
the diff is returned only when the task asks for it, and refused input or a failed step ends the module
with one clear message.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from ansible_collections.threatlockdown.active_response.plugins.module_utils.validation import InvalidItems

State = TypeVar("State")


class ModuleFailure(Exception):
    """A failure whose result carries more than the message: the command run, its output, item results."""

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.details = details or {}


def apply_or_predict(
    module: Any,
    changing: bool,
    apply: Callable[[], None],
    read: Callable[[], State],
    predict: Callable[[], State],
) -> State:
    """The state after the run: changed for real and read back, or, in check mode or when there is
    nothing to change, predicted without running anything that modifies the host."""
    if changing and not module.check_mode:
        apply()
        return read()
    return predict()


def state_diff(header: str, before: str, after: str) -> dict[str, str]:
    """A diff of two listings of the same thing (a file's managed block, the routes, the lock states)."""
    return {"before_header": header, "after_header": header, "before": before, "after": after}


def _as_asked(module: Any, result: dict[str, Any]) -> dict[str, Any]:
    # The diff shows what was changed; Ansible expects it only from tasks run with --diff.
    if module._diff or "diff" not in result:
        return result
    return {key: value for key, value in result.items() if key != "diff"}


def finish(
    module: Any,
    run: Callable[[Any], dict[str, Any]],
    failures: tuple[type[Exception], ...] = (),
) -> None:
    """End the module with the result of ``run(module)``, or with a failure that says why.

    Refused items fail with every refused item listed under ``invalid``; a ModuleFailure fails with its
    details added to the result; the exception types in ``failures`` fail with their message alone.
    """
    try:
        result = run(module)
    except InvalidItems as exc:
        module.fail_json(msg=str(exc), invalid=[str(p) for p in exc.problems])
    except ModuleFailure as exc:
        module.fail_json(msg=str(exc), **_as_asked(module, exc.details))
    except failures as exc:
        module.fail_json(msg=str(exc))
    else:
        module.exit_json(**_as_asked(module, result))
