"""The deployment roles and playbooks without hosts: syntax check, ansible-lint (production profile),
argument_specs against defaults and against the variables the roles use, the policy filter, and the
ossec.conf template fed hostile values. The Molecule scenarios (molecule/) deploy them for real."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from lxml import etree

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ROLES = ("threatlockdown_manager", "threatlockdown_agent")
# Every playbook: ours, the scenarios' create/destroy, and the response playbooks the runner uses.
PLAYBOOKS = sorted(
    [REPO / "playbooks" / name for name in ("site.yml", "policy.yml", "artifacts.yml")]
    + list((REPO / "playbooks" / "responses").glob("*.yml"))
    + list((REPO / "molecule" / "shared").glob("*.yml"))
)
# Variables read by name pattern (threatlockdown_policy.py), not declared one by one.
DYNAMIC_PREFIXES = ("threatlockdown_manager_active_responses_", "threatlockdown_agent_active_responses_")
# Names with a role's prefix that are not its inputs: a fact it publishes for later plays, the filters
# of threatlockdown_policy.py, and the role's own module (library/).
NOT_INPUTS = {
    "threatlockdown_manager_fingerprint",
    "threatlockdown_manager_policy",
    "threatlockdown_manager_tree",
}


def _ansible_env() -> dict[str, str]:
    return {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def _run(argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=REPO, env=_ansible_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


def test_every_playbook_passes_the_syntax_check() -> None:
    # One ansible-playbook process for all of them (each start costs a second or two); a failure names
    # the file.
    assert len(PLAYBOOKS) >= 5
    done = _run([str(BIN / "ansible-playbook"), "--syntax-check", *map(str, PLAYBOOKS)])
    assert done.returncode == 0, done.stdout + done.stderr
    for playbook in PLAYBOOKS:
        assert f"playbook: {playbook}" in done.stdout


@pytest.mark.slow
def test_ansible_lint_production_profile() -> None:
    done = _run(
        [str(BIN / "ansible-lint"), "--profile", "production", "--nocolor", "roles", "playbooks", "molecule"],
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Profile 'production' was required, and it passed" in done.stdout + done.stderr


# --- argument_specs ------------------------------------------------------------------------------


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _spec(role: str) -> dict[str, Any]:
    specs: dict[str, Any] = _yaml(REPO / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"]
    return specs


def _role_files(role: str) -> Iterator[Path]:
    for sub in ("tasks", "handlers", "templates"):
        yield from sorted((REPO / "roles" / role / sub).glob("*"))


@pytest.mark.parametrize("role", ROLES)
def test_every_default_is_in_the_spec_with_the_same_default(role: str) -> None:
    defaults: dict[str, Any] = _yaml(REPO / "roles" / role / "defaults" / "main.yml")
    options = _spec(role)["main"]["options"]
    assert sorted(defaults) == sorted(options), "defaults/main.yml and argument_specs.yml differ"
    for name, value in defaults.items():
        spec_default = options[name].get("default")
        if isinstance(value, str):
            # Folded Jinja defaults: compare without the line breaks.
            assert " ".join(str(spec_default).split()) == " ".join(value.split()), name
        else:
            assert spec_default == value, name


@pytest.mark.parametrize("role", ROLES)
def test_every_option_is_typed_described_and_prefixed(role: str) -> None:
    def check(options: dict[str, Any], where: str) -> None:
        for name, option in options.items():
            assert option.get("type"), f"{where}{name}: no type"
            assert option.get("description"), f"{where}{name}: no description"
            if "options" in option:
                check(option["options"], f"{where}{name}.")

    for entry, spec in _spec(role).items():
        assert spec.get("short_description"), f"{role} {entry}: no short_description"
        check(spec["options"], f"{role} {entry}: ")
        for name in spec["options"]:
            assert name.startswith(role + "_"), f"{role} {entry}: {name} lacks the role prefix"


@pytest.mark.parametrize("role", ROLES)
def test_every_variable_the_role_reads_is_in_the_spec(role: str) -> None:
    options = set(_spec(role)["main"]["options"])
    used: set[str] = set()
    for path in _role_files(role):
        used |= set(re.findall(rf"\b({role}_[a-z0-9_]+)\b", path.read_text()))
    unknown = {
        name
        for name in used - options - NOT_INPUTS
        if not any(name.startswith(p) or p.startswith(name) for p in DYNAMIC_PREFIXES)
    }
    assert not unknown, f"{role} reads variables its argument_specs does not declare: {sorted(unknown)}"
    unused = options - used - {"threatlockdown_agent_active_responses"}  # read by the manager role
    defaults_text = (REPO / "roles" / role / "defaults" / "main.yml").read_text()
    unused = {n for n in unused if not re.search(rf"{{{{[^}}]*\b{n}\b", defaults_text)}
    assert not unused, f"{role} declares variables it never reads: {sorted(unused)}"


def test_the_policy_entry_point_takes_the_same_options_as_main() -> None:
    spec = _spec("threatlockdown_manager")
    assert spec["policy"]["options"] == spec["main"]["options"]


# --- the policy filter -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def policy() -> ModuleType:
    path = REPO / "roles" / "threatlockdown_manager" / "filter_plugins" / "threatlockdown_policy.py"
    spec = importlib.util.spec_from_file_location("threatlockdown_policy", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _inventory(path: Path) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """(hostvars, groups with every host below each group), as Ansible sees the inventory."""
    done = _run([str(BIN / "ansible-inventory"), "-i", str(path), "--list"])
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)

    def members(group: str) -> list[str]:
        node = data.get(group, {})
        hosts = list(node.get("hosts", []))
        for child in node.get("children", []):
            hosts += [h for h in members(child) if h not in hosts]
        return hosts

    groups = {g: members(g) for g in data if g != "_meta"}
    return data["_meta"]["hostvars"], groups


def test_example_inventory_gives_each_group_its_policy(policy: ModuleType) -> None:
    hostvars, groups = _inventory(REPO / "playbooks" / "inventory.example")
    prefix = "threatlockdown_manager_active_responses"
    sources = {k: v for k, v in hostvars["manager"].items() if k.startswith(prefix)}
    blocks = policy.threatlockdown_manager_policy(sources, hostvars, groups["all"], groups)
    summary = [(b["command"], b.get("rules_id"), b.get("rules_group"), b.get("target")) for b in blocks]
    assert summary == [
        ("firewall-drop", [5712], None, None),  # group_vars/threatlockdown_managers.yml
        ("firewall-drop", [5710], None, "web"),  # group_vars/web.yml: web1 and web2
        ("disable-account", [5712], None, "web2"),  # host_vars/web2.yml adds to the group's list
        ("host-deny", None, "authentication_failures,", "db"),  # group_vars/db.yml
    ]
    assert blocks[3]["repeated_offenders"] == [120, 480]


def test_hosts_sharing_a_block_without_a_group_get_a_host_pattern(policy: ModuleType) -> None:
    block = {"command": "host-deny", "rules_id": "5712 5720", "timeout": "60"}
    hostvars = {
        "a": {"threatlockdown_agent_active_responses": [block]},
        "b": {"threatlockdown_agent_active_responses_x": [block]},
        "c": {},
    }
    groups = {"all": ["a", "b", "c"], "ungrouped": ["a", "b", "c"]}
    blocks = policy.threatlockdown_manager_policy({}, hostvars, ["a", "b", "c"], groups)
    expected = {"command": "host-deny", "location": "local", "rules_id": [5712, 5720], "timeout": 60}
    assert blocks == [{**expected, "target": "a:b"}]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"command": "firewall-drop", "rule_id": [5710]}, "unknown key 'rule_id' (did you mean 'rules_id'?)"),
        ({"rules_id": [5710]}, "missing 'command'"),
        ({"command": "firewall-drop"}, "binds no rule"),
        ({"command": "firewall-drop", "level": 21}, "21 is out of range (0 to 20)"),
        ({"command": "firewall-drop", "rules_id": "5710;rm"}, "expected a whole number"),
        ({"command": "firewall-drop", "rules_id": [5710], "target": "web"}, "'target' is set by the manager"),
    ],
)
def test_bad_host_policy_is_refused_naming_host_and_item(
    policy: ModuleType, item: dict[str, Any], message: str
) -> None:
    from ansible.errors import AnsibleFilterError

    hostvars = {"web1": {"threatlockdown_agent_active_responses_web": [item]}}
    with pytest.raises(AnsibleFilterError) as err:
        policy.threatlockdown_manager_policy({}, hostvars, ["web1"], {"all": ["web1"]})
    assert "host web1: threatlockdown_agent_active_responses_web[0]" in str(err.value)
    assert message in str(err.value)


def test_manager_lists_come_in_name_order(policy: ModuleType) -> None:
    sources = {
        "threatlockdown_manager_active_responses_b": [{"command": "b", "level": 3}],
        "threatlockdown_manager_active_responses": [{"command": "base", "level": 3}],
        "threatlockdown_manager_active_responses_a": [{"command": "a", "level": 3}],
    }
    blocks = policy.threatlockdown_manager_policy(sources, {}, [], {})
    assert [b["command"] for b in blocks] == ["base", "a", "b"]


def test_commands_user_entry_replaces_a_default_in_place(policy: ModuleType) -> None:
    defaults = [{"name": "firewall-drop", "executable": "firewall-drop"}, {"name": "x", "executable": "x"}]
    extra = [
        {"name": "firewall-drop", "executable": "nft-drop", "timeout_allowed": True, "extra_args": "-a -b"},
        {"name": "mine", "executable": "mine"},
    ]
    merged = policy.threatlockdown_manager_commands(defaults, extra)
    assert [(c["name"], c["executable"], c["extra_args"]) for c in merged] == [
        ("firewall-drop", "nft-drop", ["-a", "-b"]),
        ("x", "x", []),
        ("mine", "mine", []),
    ]
    from ansible.errors import AnsibleFilterError

    twice = r"threatlockdown_manager_commands\[1\]: command 'a' is defined twice"
    with pytest.raises(AnsibleFilterError, match=twice):
        policy.threatlockdown_manager_commands([], [{"name": "a", "executable": "a"}] * 2)


# --- the template with hostile values --------------------------------------------------------------

HOSTILE = "</white_list><evil>{{ 7 * 6 }}</evil>&amp;\"'"


def test_manager_template_escapes_every_value_and_passes_tld_config_check(tmp_path: Path) -> None:
    role = REPO / "roles" / "threatlockdown_manager"
    out = tmp_path / "ossec.conf"
    overrides = {
        "threatlockdown_manager_white_list": [HOSTILE],
        "threatlockdown_manager_node_name": HOSTILE,
        "threatlockdown_manager_localfiles": [
            {"log_format": "syslog", "location": "/var/log/" + HOSTILE, "labels": {"k<": HOSTILE}}
        ],
        "threatlockdown_manager_active_responses": [
            {"command": "firewall-drop", "rules_group": HOSTILE, "timeout": 60}
        ],
    }
    play = [
        {
            "name": "Render the manager template",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "vars_files": [str(role / "defaults" / "main.yml")],
            "tasks": [
                {
                    "name": "Collect the policy",
                    "ansible.builtin.set_fact": {
                        "__threatlockdown_manager_active_responses": (
                            "{{ {'threatlockdown_manager_active_responses':"
                            " threatlockdown_manager_active_responses}"
                            " | threatlockdown_manager_policy({}, [], {}) }}"
                        )
                    },
                },
                {
                    "name": "Render",
                    "ansible.builtin.template": {
                        "src": str(role / "templates" / "ossec.conf.j2"),
                        "dest": str(out),
                        "mode": "0600",
                        "validate": f"{BIN / 'tld'} config check %s",
                    },
                },
            ],
        }
    ]
    playbook = tmp_path / "render.yml"
    playbook.write_text(yaml.safe_dump(play))
    extra = tmp_path / "extra.json"
    # Extra vars are trusted by Ansible and would be templated: mark the hostile text unsafe, as the
    # inventory's own !unsafe tag would, so what reaches the template is the text itself.
    extra.write_text(json.dumps({k: _unsafe(v) for k, v in overrides.items()}))
    env_filter = str(role / "filter_plugins")
    done = subprocess.run(
        [str(BIN / "ansible-playbook"), str(playbook), "-e", f"@{extra}"],
        cwd=REPO,
        env={**_ansible_env(), "ANSIBLE_FILTER_PLUGINS": env_filter},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    root = etree.parse(str(out)).getroot()
    assert root.find(".//evil") is None
    assert [e.text for e in root.iter("white_list")] == [HOSTILE]
    assert root.findtext("cluster/node_name") == HOSTILE
    assert root.findtext("localfile/location") == "/var/log/" + HOSTILE
    label = root.find("localfile/label")
    assert label is not None and label.get("key") == "k<" and label.text == HOSTILE
    assert root.findtext("active-response/rules_group") == HOSTILE


def _unsafe(value: Any) -> Any:
    if isinstance(value, str):
        return {"__ansible_unsafe": value}
    if isinstance(value, list):
        return [_unsafe(v) for v in value]
    if isinstance(value, dict):
        return {k: _unsafe(v) for k, v in value.items()}
    return value
