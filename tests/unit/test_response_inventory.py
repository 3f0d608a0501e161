"""Inventory resolution through the real ``ansible-inventory``, agent mapping, host patterns."""

from __future__ import annotations

from pathlib import Path

import pytest

from threatlockdown.errors import SourceErrors
from threatlockdown.response.inventory import ansible_inventory_program, inventory_from_list, load_inventory

needs_ansible = pytest.mark.skipif(
    ansible_inventory_program() is None, reason="ansible-inventory not installed"
)

YAML = """
all:
  hosts:
    mgr:
      ansible_host: 127.0.0.1
      threatlockdown_agent_id: "000"
      ansible_password: secret-not-kept
  children:
    web:
      hosts:
        web1: {}
        web2:
          threatlockdown_agent_name: web2.prod.example
    edge:
      children:
        firewalls:
          hosts:
            fw1:
              threatlockdown_agent_id: 12
"""


@needs_ansible
def test_yaml_inventory_through_ansible_inventory(tmp_path: Path) -> None:
    path = tmp_path / "hosts.yml"
    path.write_text(YAML)
    inv = load_inventory(path)
    assert sorted(inv.hosts) == ["fw1", "mgr", "web1", "web2"]
    assert inv.groups["edge"] == frozenset({"fw1"}), "children are followed"
    assert inv.groups["all"] == frozenset(inv.hosts)
    assert inv.agent_host("000", "whatever") == "mgr"
    assert inv.agent_host("012", None) == "fw1" and inv.agent_host("12", None) == "fw1"
    assert inv.agent_host("003", "web2.prod.example") == "web2"
    assert inv.agent_host("004", "web2") is None, "web2 answers to its own agent name only"
    assert inv.agent_host("005", "web1") == "web1"
    assert inv.address_of("mgr") == "127.0.0.1" and inv.address_of("web1") == "web1"
    assert "ansible_password" not in inv.hostvars["mgr"], "secrets are not kept"


@needs_ansible
def test_ini_inventory_and_a_broken_one(tmp_path: Path) -> None:
    ini = tmp_path / "hosts.ini"
    ini.write_text("[web]\nweb1 threatlockdown_agent_id=3\nweb2\n")
    inv = load_inventory(ini)
    assert inv.agent_host("003", None) == "web1"
    broken = tmp_path / "broken.yml"
    broken.write_text("all:\n  hosts: [unclosed\n")
    with pytest.raises(SourceErrors) as caught:
        load_inventory(broken)
    assert caught.value.errors[0].path == str(broken)
    assert "ansible-inventory failed" in caught.value.errors[0].message
    with pytest.raises(SourceErrors, match="inventory not found"):
        load_inventory(tmp_path / "missing.yml")


def listing(hostvars: dict[str, dict[str, object]]) -> dict[str, object]:
    return {"_meta": {"hostvars": hostvars}, "all": {"children": ["g"]}, "g": {"hosts": list(hostvars)}}


def test_two_hosts_claiming_one_agent_is_an_error() -> None:
    with pytest.raises(SourceErrors) as caught:
        inventory_from_list(
            listing({"a": {"threatlockdown_agent_id": "1"}, "b": {"threatlockdown_agent_id": "001"}}),
            "inv.yml",
        )
    (err,) = caught.value.errors
    assert (err.path, err.element) == ("inv.yml", "threatlockdown_agent_id")
    assert "hosts a and b both claim agent 001" in err.message
    with pytest.raises(SourceErrors, match="is not an agent id"):
        inventory_from_list(listing({"a": {"threatlockdown_agent_id": "web"}}), "inv.yml")


def test_host_patterns() -> None:
    data = {
        "_meta": {"hostvars": {h: {} for h in ("web1", "web2", "db1", "fw1")}},
        "all": {"children": ["web", "db", "edge"]},
        "web": {"hosts": ["web1", "web2"]},
        "db": {"hosts": ["db1"]},
        "edge": {"hosts": ["fw1", "web2"]},
    }
    inv = inventory_from_list(data, "x")
    assert inv.select("web") == ["web1", "web2"]
    assert inv.select("web:db") == ["web1", "web2", "db1"]
    assert inv.select("web,db") == ["web1", "web2", "db1"]
    assert inv.select("web:&edge") == ["web2"]
    assert inv.select("all:!web") == ["db1", "fw1"]
    assert inv.select("*1") == ["web1", "db1", "fw1"]
    assert inv.select("~^(db|fw)") == ["db1", "fw1"]
    assert inv.select("web1") == ["web1"]
    assert inv.select("nothing") == []
