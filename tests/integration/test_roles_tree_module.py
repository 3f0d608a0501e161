"""The manager role's threatlockdown_manager_tree module (layout and response playbooks in one round trip),
run by ansible-playbook on localhost: check mode, diff, idempotence, repair, refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# Jinja in a file's content must arrive as written, never rendered on the way.
PLAYBOOK_TEXT = '- hosts: all\n  tasks:\n    - ansible.builtin.debug:\n        msg: "{{ tld_items }}"\n'


def _run(
    tmp_path: Path, args: dict[str, Any], *options: str, task_vars: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], str]:
    playbook = tmp_path / "play.yml"
    task = {"name": "tree", "threatlockdown_manager_tree": args, "register": "tree", "vars": task_vars or {}}
    show = {"name": "show", "ansible.builtin.debug": {"msg": "RESULT {{ tree | to_json }}"}}
    play = {"hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": [task, show]}
    playbook.write_text(yaml.safe_dump([play]))
    env = {
        **os.environ,
        "ANSIBLE_LIBRARY": str(REPO / "roles" / "threatlockdown_manager" / "library"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
    }
    done = subprocess.run(
        [str(BIN / "ansible-playbook"), str(playbook), *options],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    result: dict[str, Any] = {}
    for line in done.stdout.splitlines():
        if '"msg": "RESULT ' in line:
            result = json.loads(json.loads("{" + line.strip().rstrip(",") + "}")["msg"][len("RESULT ") :])
    return done.returncode, result, done.stdout + done.stderr


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


def test_check_mode_reports_and_writes_nothing_then_apply_then_idempotent(tmp_path: Path) -> None:
    home = tmp_path / "home"
    source = tmp_path / "firewall-drop.yml"
    source.write_text(PLAYBOOK_TEXT)
    args = {
        "dest": str(home),
        "directories": ["etc/rules", "queue"],
        # As the role passes them: read on the controller by the file lookup.
        "files": "{{ {'playbooks/firewall-drop.yml': lookup('ansible.builtin.file', src, rstrip=false)} }}",
    }
    lookup = {"src": str(source)}
    rc, result, out = _run(tmp_path, args, "--check", "--diff", task_vars=lookup)
    assert rc == 0, out
    assert result["changed"] is True
    assert result["written"] == [str(home / "playbooks" / "firewall-drop.yml")]
    assert "+++ after: " + str(home / "playbooks" / "firewall-drop.yml") in out
    assert not home.exists()

    rc, result, out = _run(tmp_path, args, task_vars=lookup)
    assert rc == 0 and result["changed"] is True, out
    # Parents of listed directories and files are made too, all with the directory mode.
    for directory in ("", "etc", "etc/rules", "queue", "playbooks"):
        assert _mode(home / directory) == 0o750, directory
    written = home / "playbooks" / "firewall-drop.yml"
    assert written.read_text() == PLAYBOOK_TEXT
    assert _mode(written) == 0o640

    rc, result, out = _run(tmp_path, args, task_vars=lookup)
    assert rc == 0 and result["changed"] is False and result["written"] == [], out


def test_a_changed_file_or_mode_is_put_back_with_a_diff(tmp_path: Path) -> None:
    home = tmp_path / "home"
    args = {"dest": str(home), "directories": ["logs"], "files": {"a.yml": "one\n", "b.yml": "two\n"}}
    assert _run(tmp_path, args)[0] == 0
    (home / "a.yml").write_text("edited\n")
    (home / "b.yml").chmod(0o666)
    (home / "logs").chmod(0o755)
    rc, result, out = _run(tmp_path, args, "--diff")
    assert rc == 0 and result["changed"] is True, out
    assert result["written"] == [str(home / "a.yml")]
    assert "-edited" in out and "+one" in out
    assert (home / "a.yml").read_text() == "one\n"
    assert (_mode(home / "b.yml"), _mode(home / "logs")) == (0o640, 0o750)
    # Files that are not listed stay.
    (home / "extra.yml").write_text("mine\n")
    assert _run(tmp_path, args)[1]["changed"] is False
    assert (home / "extra.yml").read_text() == "mine\n"


def test_names_leaving_dest_and_files_in_the_way_are_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    rc, _, out = _run(tmp_path, {"dest": str(home), "files": {"../escape.yml": "x"}})
    assert rc != 0 and "file '../escape.yml': must be a relative path below" in out
    assert not (tmp_path / "escape.yml").exists()
    home.mkdir()
    (home / "etc").write_text("a file where a directory belongs")
    rc, _, out = _run(tmp_path, {"dest": str(home), "directories": ["etc"]})
    assert rc != 0 and f"{home / 'etc'} exists and is not a directory" in out
