"""The checks ansible-test's validate-modules makes that matter most, runnable with plain pytest.

DOCUMENTATION must describe exactly the argument_spec (names, type, required, default, choices, elements,
suboptions), EXAMPLES and RETURN must be YAML, and every module must declare check/diff support.
"""

from __future__ import annotations

import importlib
import py_compile
from pathlib import Path
from typing import Any

import pytest
import yaml

PACKAGE = "ansible_collections.threatlockdown.active_response.plugins.modules"
MODULES_DIR = Path(__file__).resolve().parents[4] / "plugins" / "modules"
MODULE_NAMES = sorted(p.stem for p in MODULES_DIR.glob("*.py") if p.stem != "__init__")


def load(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


def compare(path: str, documented: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    problems = []
    if set(documented) != set(spec):
        problems.append(f"{path}: documented {sorted(documented)} but argument_spec has {sorted(spec)}")
    for name in sorted(set(documented) & set(spec)):
        doc, arg = documented[name], spec[name]
        where = f"{path}.{name}"
        if not doc.get("description"):
            problems.append(f"{where}: no description")
        for key, fallback in (("type", "str"), ("required", False), ("default", None), ("choices", None)):
            if doc.get(key, fallback) != arg.get(key, fallback):
                problems.append(f"{where}: {key} documented {doc.get(key)!r}, spec {arg.get(key)!r}")
        if doc.get("elements") != arg.get("elements"):
            problems.append(
                f"{where}: elements documented {doc.get('elements')!r}, spec {arg.get('elements')!r}"
            )
        if arg.get("required") and "default" in arg:
            problems.append(f"{where}: required options must not have a default")
        if "options" in arg or "suboptions" in doc:
            problems += compare(where, doc.get("suboptions", {}), arg.get("options", {}))
    return problems


def test_every_module_is_checked() -> None:
    assert MODULE_NAMES == [
        "disable_account",
        "firewall_drop",
        "host_deny",
        "restart_manager",
        "route_null",
        "wazuh_ar_script",
    ]


@pytest.mark.parametrize("name", MODULE_NAMES)
def test_documentation_matches_argument_spec(name: str) -> None:
    module = load(name)
    documentation = yaml.safe_load(module.DOCUMENTATION)
    assert documentation["module"] == name
    assert documentation["short_description"] and documentation["description"] and documentation["author"]
    assert compare(name, documentation["options"], module.ARGUMENT_SPEC) == []
    attributes = documentation["attributes"]
    assert attributes["check_mode"]["support"] == "full"
    assert attributes["diff_mode"]["support"] in ("full", "none")


@pytest.mark.parametrize("name", MODULE_NAMES)
def test_examples_and_return_are_yaml(name: str) -> None:
    module = load(name)
    examples = yaml.safe_load(module.EXAMPLES)
    assert isinstance(examples, list) and examples
    for task in examples:
        assert f"threatlockdown.active_response.{name}" in task
    returned = yaml.safe_load(module.RETURN)
    assert isinstance(returned, dict) and returned
    for key, value in returned.items():
        assert value.get("description") and value.get("type"), key


@pytest.mark.parametrize("name", MODULE_NAMES)
def test_module_shape(name: str) -> None:
    source = (MODULES_DIR / f"{name}.py").read_text()
    assert source.startswith("#!/usr/bin/python\n")
    assert 'if __name__ == "__main__":\n    main()' in source
    assert "use_unsafe_shell=True" not in source and "shell=True" not in source
    py_compile.compile(str(MODULES_DIR / f"{name}.py"), doraise=True)
