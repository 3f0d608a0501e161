#!/usr/bin/python
# Module of the threatlockdown_manager role: a directory tree and small files in one round trip. The
# layout loop and the directory copy it replaces cost one or two SSH round trips per directory or file,
# which made them the slowest steps of a deployment.

from __future__ import annotations

DOCUMENTATION = r"""
module: threatlockdown_manager_tree
short_description: Create directories and write small files under one directory, in one round trip
description:
  - Creates O(dest) and the O(directories) below it, then writes each file of O(files) whose content
    differs (atomically: a temporary file in the same directory, renamed over the old one), and sets
    owner, group and mode on all of them. Files and directories that are not listed are left alone.
  - Supports check mode and diff mode (one diff per file written).
options:
  dest:
    description: The top directory; relative names below are taken from here.
    type: path
    required: true
  directories:
    description: Directories to create below O(dest) (relative, no C(..)), parents first or not.
    type: list
    elements: str
    default: []
  files:
    description: File name below O(dest) (relative, no C(..)) mapped to its text content.
    type: dict
    default: {}
  owner:
    description: Owner of everything written or created.
    type: str
    default: root
  group:
    description: Group of everything written or created.
    type: str
    default: root
  mode:
    description: Mode of the files.
    type: str
    default: "0640"
  directory_mode:
    description: Mode of O(dest) and the directories.
    type: str
    default: "0750"
"""

EXAMPLES = r"""
- name: The home layout and the response playbooks
  threatlockdown_manager_tree:
    dest: /var/ossec
    directories: [etc, logs/alerts, active-response/playbooks]
    files:
      active-response/playbooks/firewall-drop.yml: "{{ lookup('ansible.builtin.file', 'firewall-drop.yml') }}"
"""

RETURN = r"""
created:
  description: Directories created (absolute paths).
  returned: always
  type: list
  elements: str
written:
  description: Files written because they were missing or different (absolute paths).
  returned: always
  type: list
  elements: str
"""

import os
import tempfile
from typing import Any

from ansible.module_utils.basic import AnsibleModule


def _below(module: Any, dest: str, name: str, what: str) -> str:
    """The absolute path of ``name`` under ``dest``; fails on names that would leave it."""
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        module.fail_json(msg=f"{what} {name!r}: must be a relative path below {dest} without '.' or '..'")
    return os.path.join(dest, *parts)


def _wanted_directories(dest: str, directories: list[str], files: dict[str, str]) -> list[str]:
    """dest, the listed directories and every directory between them and dest (parents first)."""
    wanted = {dest}
    for directory in [*directories, *(os.path.dirname(f) for f in files)]:
        while directory != dest and directory not in wanted:
            wanted.add(directory)
            directory = os.path.dirname(directory)
    return sorted(wanted, key=lambda d: (d.count("/"), d))


def _set_attributes(module: Any, path: str, mode: str, changed: bool) -> bool:
    p = module.params
    changed = module.set_owner_if_different(path, p["owner"], changed)
    changed = module.set_group_if_different(path, p["group"], changed)
    return bool(module.set_mode_if_different(path, mode, changed))


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _write(module: Any, path: str, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tld-tree-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        module.atomic_move(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def run(module: Any) -> dict[str, Any]:
    p = module.params
    dest = os.path.normpath(p["dest"])
    if not os.path.isabs(dest):
        module.fail_json(msg=f"dest {p['dest']!r} must be an absolute path")
    files = {_below(module, dest, name, "file"): str(text) for name, text in p["files"].items()}
    directories = _wanted_directories(
        dest, [_below(module, dest, d.rstrip("/"), "directory") for d in p["directories"]], files
    )

    created: list[str] = []
    for directory in directories:
        if os.path.isdir(directory):
            continue
        if os.path.lexists(directory):
            module.fail_json(msg=f"{directory} exists and is not a directory")
        created.append(directory)
        if not module.check_mode:
            os.mkdir(directory, 0o700)  # the final mode is set below, once owner and group are right

    written: list[str] = []
    diffs: list[dict[str, str]] = []
    for path, text in sorted(files.items()):
        data = text.encode("utf-8")
        old = _read(path)
        if old == data:
            continue
        written.append(path)
        before = "" if old is None else old.decode("utf-8", "replace")
        diffs.append({"before_header": path, "after_header": path, "before": before, "after": text})
        if not module.check_mode:
            _write(module, path, data)

    changed = bool(created or written)
    # Attributes of what exists (in check mode a new path is already counted as a change).
    for directory in directories:
        if os.path.isdir(directory):
            changed = _set_attributes(module, directory, p["directory_mode"], changed)
    for path in sorted(files):
        if os.path.exists(path):
            changed = _set_attributes(module, path, p["mode"], changed)

    result: dict[str, Any] = {"changed": changed, "created": created, "written": written}
    if module._diff:
        result["diff"] = diffs
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            dest=dict(type="path", required=True),
            directories=dict(type="list", elements="str", default=[]),
            files=dict(type="dict", default={}),
            owner=dict(type="str", default="root"),
            group=dict(type="str", default="root"),
            mode=dict(type="str", default="0640"),
            directory_mode=dict(type="str", default="0750"),
        ),
        supports_check_mode=True,
    )
    try:
        result = run(module)
    except OSError as exc:
        module.fail_json(msg=f"{exc.filename or module.params['dest']}: {exc.strerror}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
