"""The Ansible inventory: which hosts responses can run on, and which host an agent is.

Read with ``ansible-inventory -i INV --list`` (so every inventory format and plugin Ansible knows works)
when the engine starts and when it reloads, never per alert. An agent is the host whose
``inventory_hostname`` equals the agent name, unless a host says otherwise with the host variables
``threatlockdown_agent_name`` and/or ``threatlockdown_agent_id``.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SourceError, SourceErrors

AGENT_NAME_VAR = "threatlockdown_agent_name"
AGENT_ID_VAR = "threatlockdown_agent_id"
# The only host variables kept: inventories often hold secrets that have no business in this process.
KEPT_VARS = ("ansible_host", "ansible_connection", AGENT_NAME_VAR, AGENT_ID_VAR)
_PATTERN_SPLIT = re.compile(r"[,:]")


def normalise_agent_id(value: Any) -> str | None:
    """Wazuh agent ids are zero-padded to three digits ("001"); accept 1 or "1" as well."""
    text = str(value).strip() if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if not text.isascii() or not text.isdigit():
        return None
    return text.zfill(3)


@dataclass(frozen=True)
class Inventory:
    source: str | None  # the -i path, None for an empty inventory
    hosts: tuple[str, ...] = ()
    groups: Mapping[str, frozenset[str]] = field(default_factory=dict)  # every host below each group
    hostvars: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    by_agent_id: Mapping[str, str] = field(default_factory=dict)
    by_agent_name: Mapping[str, str] = field(default_factory=dict)

    def agent_host(self, agent_id: str | None, agent_name: str | None) -> str | None:
        """The inventory host of an agent, by id variable first, then by name."""
        if agent_id:
            host = self.by_agent_id.get(agent_id)  # alerts carry ids already padded ("001")
            if host is not None:
                return host
            norm = normalise_agent_id(agent_id)
            if norm is not None and norm in self.by_agent_id:
                return self.by_agent_id[norm]
        if agent_name:
            return self.by_agent_name.get(agent_name)
        return None

    def agent_id_of(self, host: str) -> str | None:
        return normalise_agent_id(self.hostvars.get(host, {}).get(AGENT_ID_VAR))

    def address_of(self, host: str) -> str:
        """The address Ansible connects to: ``ansible_host``, else the host name."""
        value = self.hostvars.get(host, {}).get("ansible_host")
        return str(value) if isinstance(value, str) and value else host

    def select(self, pattern: str) -> list[str]:
        """The hosts an Ansible host pattern names: groups, host names, globs, ``~regex``, ``all``,
        ``a:b`` (union), ``a:&b`` (intersection), ``a:!b`` (exclusion); ``,`` separates like ``:``."""
        union: list[str] = []
        keep: set[str] | None = None
        drop: set[str] = set()
        for raw in (t.strip() for t in _PATTERN_SPLIT.split(pattern)):
            if not raw:
                continue
            if raw.startswith("&"):
                found = set(self._term(raw[1:]))
                keep = found if keep is None else keep & found
            elif raw.startswith("!"):
                drop.update(self._term(raw[1:]))
            else:
                union.extend(h for h in self._term(raw) if h not in union)
        return [h for h in union if (keep is None or h in keep) and h not in drop]

    def _term(self, term: str) -> list[str]:
        if term in ("all", "*"):
            return list(self.hosts)
        if term in self.groups:
            return [h for h in self.hosts if h in self.groups[term]]
        if term in self.hostvars:
            return [term]
        if term.startswith("~"):
            regex = re.compile(term[1:])
            names = {g for g in self.groups if regex.search(g)}
            return [h for h in self.hosts if regex.search(h) or any(h in self.groups[g] for g in names)]
        if any(c in term for c in "*?["):
            names = {g for g in self.groups if fnmatch.fnmatchcase(g, term)}
            return [
                h
                for h in self.hosts
                if fnmatch.fnmatchcase(h, term) or any(h in self.groups[g] for g in names)
            ]
        return []


def empty_inventory() -> Inventory:
    return Inventory(source=None)


def inventory_from_list(data: Mapping[str, Any], source: str) -> Inventory:
    """Build from the JSON of ``ansible-inventory --list``; SourceErrors naming the host and variable."""
    meta = data.get("_meta")
    hostvars_in = meta.get("hostvars", {}) if isinstance(meta, Mapping) else {}
    direct: dict[str, list[str]] = {}
    children: dict[str, list[str]] = {}
    for name, body in data.items():
        if name == "_meta" or not isinstance(body, Mapping):
            continue
        direct[name] = [str(h) for h in body.get("hosts", []) if isinstance(h, str)]
        children[name] = [str(c) for c in body.get("children", []) if isinstance(c, str)]

    groups: dict[str, frozenset[str]] = {}
    order: list[str] = []

    def collect(group: str, path: tuple[str, ...]) -> frozenset[str]:
        if group in groups:
            return groups[group]
        found: set[str] = set()
        for host in direct.get(group, []):
            found.add(host)
            if host not in order:
                order.append(host)
        for child in children.get(group, []):
            if child not in path:  # Ansible refuses cycles; never loop on one
                found |= collect(child, (*path, child))
        groups[group] = frozenset(found)
        return groups[group]

    collect("all", ("all",))
    for name in direct:
        collect(name, (name,))
    for host in hostvars_in:
        if isinstance(host, str) and host not in order:
            order.append(host)

    errors: list[SourceError] = []
    hostvars: dict[str, dict[str, Any]] = {}
    by_id: dict[str, str] = {}
    by_name: dict[str, str] = {}
    for host in order:
        raw = hostvars_in.get(host, {})
        kept = {k: raw[k] for k in KEPT_VARS if isinstance(raw, Mapping) and k in raw}
        hostvars[host] = kept
        if AGENT_ID_VAR in kept:
            agent_id = normalise_agent_id(kept[AGENT_ID_VAR])
            if agent_id is None:
                errors.append(
                    SourceError(
                        source, None, AGENT_ID_VAR, f"host {host}: {kept[AGENT_ID_VAR]!r} is not an agent id"
                    )
                )
            elif agent_id in by_id:
                errors.append(
                    SourceError(
                        source,
                        None,
                        AGENT_ID_VAR,
                        f"hosts {by_id[agent_id]} and {host} both claim agent {agent_id}",
                    )
                )
            else:
                by_id[agent_id] = host
        if AGENT_NAME_VAR in kept:
            name = kept[AGENT_NAME_VAR]
            if not isinstance(name, str) or not name:
                errors.append(
                    SourceError(source, None, AGENT_NAME_VAR, f"host {host}: {name!r} is not a name")
                )
            elif by_name.get(name, host) != host:
                errors.append(
                    SourceError(
                        source,
                        None,
                        AGENT_NAME_VAR,
                        f"hosts {by_name[name]} and {host} both claim agent name {name!r}",
                    )
                )
            else:
                by_name[name] = host
    # A host without its own agent name is the agent of its inventory_hostname, unless another host
    # explicitly took that name.
    for host in order:
        if AGENT_NAME_VAR not in hostvars[host]:
            by_name.setdefault(host, host)
    if errors:
        raise SourceErrors(errors)
    return Inventory(
        source=source,
        hosts=tuple(order),
        groups=groups,
        hostvars=hostvars,
        by_agent_id=by_id,
        by_agent_name=by_name,
    )


def ansible_inventory_program() -> str | None:
    """``ansible-inventory`` next to this Python (the venv), else on the PATH."""
    beside = Path(sys.executable).parent / "ansible-inventory"
    if beside.exists():
        return str(beside)
    return shutil.which("ansible-inventory")


def load_inventory(path: str | Path, *, timeout: float = 60.0, program: str | None = None) -> Inventory:
    """Run ``ansible-inventory -i PATH --list``; SourceErrors with Ansible's own message on failure."""
    source = str(path)
    if not Path(source).exists():
        raise SourceErrors([SourceError(source, None, None, "inventory not found")])
    exe = program or ansible_inventory_program()
    if exe is None:
        raise SourceErrors(
            [SourceError(source, None, None, "ansible-inventory not found (is ansible-core installed?)")]
        )
    env = {
        **os.environ,
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",  # a broken inventory is an error, not an empty one
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
    }
    try:
        proc = subprocess.run(
            [exe, "-i", source, "--list"],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SourceErrors(
            [SourceError(source, None, None, f"ansible-inventory took more than {timeout:g} s")]
        ) from None
    except OSError as exc:
        raise SourceErrors([SourceError(source, None, None, f"cannot run {exe}: {exc}")]) from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        message = " ".join(lines[-3:]) if lines else f"exit status {proc.returncode}"
        raise SourceErrors([SourceError(source, None, None, f"ansible-inventory failed: {message}")])
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        raise SourceErrors([SourceError(source, None, None, "ansible-inventory printed no JSON")]) from None
    if not isinstance(data, dict):
        raise SourceErrors([SourceError(source, None, None, "ansible-inventory printed no JSON object")])
    return inventory_from_list(data, source)


def hosts_text(hosts: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(hosts[:limit])
    return shown + (f" and {len(hosts) - limit} more" if len(hosts) > limit else "")
