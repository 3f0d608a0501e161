"""Log-derived data reaches Ansible as extra vars that are never templated.

The checks load the JSON the executor writes with Ansible's own extra-vars loader (``-e @file``
loads with ``trusted_as_template=True``) and render templates over it with Ansible's Templar, so
they test ansible-core's actual behaviour, not our assumption about it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from threatlockdown.response.ansible_unsafe import (
    ESCAPED_KEY_PREFIX,
    MAX_DEPTH,
    UNSAFE_KEY,
    clean_text,
    plain,
    safe_key,
    unsafe,
)

PWNED_NAME = "tld-unsafe-test-pwned"
TEMPLATES = [
    "{{ lookup('pipe','touch PATH') }}",
    "{% if lookup('pipe','touch PATH') %}x{% endif %}",
    "{{ 7 * 6 }}",
    "$(touch PATH)",
]


def load_as_extra_vars(tmp_path: Path, data: Any) -> Any:
    path = tmp_path / "extravars"
    path.write_text(json.dumps(data))
    return DataLoader().load_from_file(str(path), trusted_as_template=True)


def is_trusted(value: str) -> bool:
    from ansible._internal._datatag._tags import TrustedAsTemplate

    return bool(TrustedAsTemplate.is_tagged_on(value))


def strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *strings_in(v)]]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    return []


def test_strings_become_unsafe_markers_recursively() -> None:
    wrapped = unsafe({"a": "x", "b": [1, 2.5, None, True, "y"], "c": {"d": ("z",)}})
    assert wrapped == {
        "a": {UNSAFE_KEY: "x"},
        "b": [1, 2.5, None, True, {UNSAFE_KEY: "y"}],
        "c": {"d": [{UNSAFE_KEY: "z"}]},
    }
    assert plain(wrapped) == {"a": "x", "b": [1, 2.5, None, True, "y"], "c": {"d": ["z"]}}


def test_non_json_values_become_text() -> None:
    assert unsafe(float("nan")) == {UNSAFE_KEY: "nan"}
    assert unsafe(float("inf")) == {UNSAFE_KEY: "inf"}
    assert unsafe(Path("/etc")) == {UNSAFE_KEY: "/etc"}
    assert unsafe({1: "one"}) == {"1": {UNSAFE_KEY: "one"}}


def test_reserved_keys_are_renamed() -> None:
    assert safe_key("__ansible_unsafe") == ESCAPED_KEY_PREFIX + "__ansible_unsafe"
    assert safe_key("__ansible_vault") == ESCAPED_KEY_PREFIX + "__ansible_vault"
    assert safe_key("_ansible") == "_ansible"
    assert unsafe({"__ansible_vault": "x"}) == {ESCAPED_KEY_PREFIX + "__ansible_vault": {UNSAFE_KEY: "x"}}


def test_lone_surrogates_are_spelled_out() -> None:
    assert clean_text("ok") == "ok"
    assert clean_text("bad \udcff byte") == "bad \\udcff byte"
    assert unsafe({"k\udc80": "v\udc81"}) == {"k\\udc80": {UNSAFE_KEY: "v\\udc81"}}


def test_depth_is_bounded() -> None:
    deep: Any = "leaf"
    for _ in range(MAX_DEPTH + 10):
        deep = {"d": deep}
    wrapped = unsafe(deep)
    for _ in range(MAX_DEPTH):
        wrapped = wrapped["d"]
    assert wrapped == {UNSAFE_KEY: f"<cut: nested deeper than {MAX_DEPTH} levels>"}


@pytest.mark.parametrize("template", TEMPLATES)
def test_ansible_keeps_templates_literal(tmp_path: Path, template: str) -> None:
    marker = tmp_path / PWNED_NAME
    payload = template.replace("PATH", str(marker))
    alert = {"full_log": payload, "data": {"dstuser": payload, "list": [payload]}, payload: "as a key"}
    variables = load_as_extra_vars(tmp_path, {"tld_items": [unsafe({"alert": alert, "srcip": payload})]})
    templar = Templar(loader=DataLoader(), variables=variables)
    item = "tld_items[0]"
    for expression in (f"{item}.srcip", f"{item}.alert.full_log", f"{item}.alert.data.list[0]"):
        rendered = templar.template(trust_as_template("{{ " + expression + " }}"))
        assert rendered == payload
        assert not is_trusted(rendered)
    keys = templar.template(trust_as_template("{{ " + item + ".alert.keys() | list }}"))
    assert payload in keys
    assert not marker.exists()


def test_without_key_escaping_a_log_field_would_make_strings_trusted(tmp_path: Path) -> None:
    """Documents why safe_key exists: an object with a non-string ``__ansible_unsafe`` makes Ansible's
    JSON decoding fail, the file is re-read as YAML and every marker stops working."""
    raw = {"alert": {"__ansible_unsafe": {"x": 1}}, "srcip": {UNSAFE_KEY: "{{ 7 * 6 }}"}}
    loaded = load_as_extra_vars(tmp_path, raw)
    assert loaded["srcip"] == {UNSAFE_KEY: "{{ 7 * 6 }}"}  # the marker is now an ordinary dict ...
    assert is_trusted(loaded["srcip"][UNSAFE_KEY])  # ... and its text a trusted template
    escaped = load_as_extra_vars(tmp_path, {"alert": unsafe(raw["alert"]), "srcip": unsafe("{{ 7 * 6 }}")})
    assert escaped["srcip"] == "{{ 7 * 6 }}"
    assert not is_trusted(escaped["srcip"])
    assert escaped["alert"] == {ESCAPED_KEY_PREFIX + "__ansible_unsafe": {"x": 1}}


json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats() | st.text(max_size=30)
json_like = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=json_like)
def test_any_alert_loads_with_every_string_untrusted(tmp_path: Path, value: Any) -> None:
    loaded = load_as_extra_vars(tmp_path, {"alert": unsafe(value)})
    assert isinstance(loaded, dict)
    strings = strings_in(loaded["alert"])
    assert not any(is_trusted(s) for s in strings)
    # Nothing was lost or re-interpreted: the loaded data is the wrapped data without its markers.
    assert json.dumps(loaded["alert"], sort_keys=True) == json.dumps(plain(unsafe(value)), sort_keys=True)


@pytest.mark.parametrize("template", TEMPLATES)
def test_alert_json_decoded_by_a_playbook_stays_literal(tmp_path: Path, template: str) -> None:
    from threatlockdown.response.ansible_executor import alert_json

    marker = tmp_path / PWNED_NAME
    payload = template.replace("PATH", str(marker))
    alert = {
        "full_log": payload,
        "__ansible_vault": "not a vault",
        "data": {"list": [payload], "bad": "\udcff"},
    }
    variables = load_as_extra_vars(tmp_path, {"alert": unsafe(alert_json(alert))})
    templar = Templar(loader=DataLoader(), variables=variables)
    for expression in ("(alert | from_json).full_log", "(alert | from_json).data.list[0]"):
        rendered = templar.template(trust_as_template("{{ " + expression + " }}"))
        assert rendered == payload
        assert not is_trusted(rendered)
    decoded = templar.template(trust_as_template("{{ alert | from_json }}"))
    assert decoded["tld_escaped__ansible_vault"] == "not a vault"
    assert decoded["data"]["bad"] == "\\udcff"
    assert not marker.exists()
