"""Where the engine's files are under a home, and how an engine is put together from them.

Shared by the manager daemon (through ``ResponseSink``), ``tld runner`` and ``tld ar``.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config.model import OssecConfig
from ..config.reader import load_config
from ..errors import SourceError, SourceErrors
from .dryrun import DryRunExecutor, UnavailableExecutor
from .engine import EnginePaths, ResponseEngine
from .executor import Executor, InProcessExecutor
from .inventory import Inventory, empty_inventory, load_inventory
from .selfprotect import SelfProtection, build_self_protection
from .settings import ResponseSettings, read_settings
from .state import StateError

STATE_FILE = Path("queue") / "active-response" / "state.db"
SETTINGS_FILE = Path("etc") / "response.xml"
DEFAULT_INVENTORY = Path("etc") / "inventory.yml"
SOCKET_FILE = Path("var") / "run" / "tld-ar.sock"
RUNNER_POSITIONS = Path("queue") / "runner"


@dataclass(frozen=True)
class ResponseLayout:
    home: Path
    config: Path
    settings_file: Path
    inventory: Path | None  # None: the default path, which may be absent (then: no inventory hosts)
    explicit_inventory: bool

    @property
    def state(self) -> Path:
        return self.home / STATE_FILE

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def socket(self) -> Path:
        return self.home / SOCKET_FILE

    @property
    def agents_file(self) -> Path:
        return self.config.parent / "client.keys"

    @property
    def runner_positions(self) -> Path:
        return self.home / RUNNER_POSITIONS

    def paths(self) -> EnginePaths:
        return EnginePaths(state=self.state, logs=self.logs)

    def inventory_path(self, settings: ResponseSettings) -> tuple[Path, bool]:
        """The inventory to read and whether it must exist (given on the command line or in settings)."""
        if self.inventory is not None:
            return self.inventory, True
        if settings.inventory:
            path = Path(settings.inventory)
            return (path if path.is_absolute() else self.home / path), True
        return self.home / DEFAULT_INVENTORY, False


def layout_for(
    home: Path, config: str | Path | None = None, inventory: str | Path | None = None
) -> ResponseLayout:
    return ResponseLayout(
        home=home,
        config=Path(config) if config else home / "etc" / "ossec.conf",
        settings_file=home / SETTINGS_FILE,
        inventory=Path(inventory) if inventory else None,
        explicit_inventory=inventory is not None,
    )


@dataclass(frozen=True)
class EngineParts:
    config: OssecConfig
    settings: ResponseSettings
    inventory: Inventory
    agents: Mapping[str, str]
    warnings: tuple[str, ...] = ()


def read_agents(path: Path) -> dict[str, str]:
    """Agent id -> name from a client.keys file (ours or Wazuh's: ``ID NAME IP KEY``); {} if absent."""
    from ..transport import read_client_keys

    keys = read_client_keys(path, missing_ok=True)
    return {a.id: a.name for a in keys.agents}


def load_parts(layout: ResponseLayout, *, settings: ResponseSettings | None = None) -> EngineParts:
    """Read ossec.conf, the settings, the inventory and client.keys; SourceErrors for every problem.
    Runs ``ansible-inventory``: call from a thread inside an event loop."""
    errors: list[SourceError] = []
    warnings: list[str] = []
    config: OssecConfig | None = None
    if not layout.config.is_file():
        errors.append(SourceError(str(layout.config), None, None, "file not found"))
    else:
        try:
            config = load_config(layout.config)
        except SourceErrors as exc:
            errors.extend(exc.errors)
    if settings is None:
        try:
            settings = read_settings(layout.settings_file)
        except SourceErrors as exc:
            errors.extend(exc.errors)
            settings = ResponseSettings()
    inventory = empty_inventory()
    inv_path, required = layout.inventory_path(settings)
    if required or inv_path.exists():
        try:
            inventory = load_inventory(inv_path, timeout=settings.inventory_timeout)
        except SourceErrors as exc:
            errors.extend(exc.errors)
    else:
        warnings.append(
            f"{inv_path}: no inventory; responses can only run on the manager itself (location server, "
            "or local for the manager's own events)"
        )
    agents: dict[str, str] = {}
    try:
        agents = read_agents(layout.agents_file)
    except SourceErrors as exc:
        errors.extend(exc.errors)
    if errors or config is None:
        raise SourceErrors(errors)
    return EngineParts(config, settings, inventory, agents, tuple(warnings))


def protection_for(parts: EngineParts, logger: logging.Logger | None = None) -> SelfProtection:
    return build_self_protection(parts.inventory, enabled=parts.settings.self_protection, logger=logger)


async def build_engine(
    layout: ResponseLayout,
    executor: Executor,
    *,
    manager_mode: bool,
    logger: logging.Logger | None = None,
    parts: EngineParts | None = None,
    clock: Callable[[], float] | None = None,
) -> ResponseEngine:
    """Load everything (in a thread: ansible-inventory and name lookups block) and build an engine."""
    log = logger or logging.getLogger("threatlockdown.response")
    if parts is None:
        parts = await asyncio.to_thread(load_parts, layout)
    for warning in parts.warnings:
        log.warning("%s", warning)
    protection = await asyncio.to_thread(protection_for, parts, log)
    try:
        return ResponseEngine(
            config=parts.config,
            settings=parts.settings,
            inventory=parts.inventory,
            executor=executor,
            paths=layout.paths(),
            protection=protection,
            agents=parts.agents,
            manager_mode=manager_mode,
            logger=log,
            clock=clock or time.time,
        )
    except StateError as exc:  # reported like a configuration error: file and reason, no traceback
        raise SourceErrors([SourceError(str(layout.state), None, None, str(exc))]) from None


async def offline_engine(layout: ResponseLayout, parts: EngineParts) -> ResponseEngine:
    """An engine over the state file that executes nothing: for ``tld ar block/unblock`` when no engine
    runs. What it records (phase adding / reverting) is carried out when an engine starts."""
    protection = await asyncio.to_thread(protection_for, parts)
    engine = ResponseEngine(
        config=parts.config,
        settings=parts.settings,
        inventory=parts.inventory,
        executor=InProcessExecutor(),
        paths=layout.paths(),
        protection=protection,
        agents=parts.agents,
        manager_mode=True,
    )
    engine.state.load()
    return engine


def installed_response_files(home: Path) -> dict[str, Any]:
    """Executor options for the response playbooks and collection the manager role installs under
    HOME/active-response; without them the executor falls back to the source checkout's copies."""
    options: dict[str, Any] = {}
    playbooks = home / "active-response" / "playbooks"
    collections = home / "active-response" / "collections"
    if playbooks.is_dir():
        options["playbook_dir"] = playbooks
    if (collections / "ansible_collections").is_dir():
        options["collections_paths"] = (collections,)
    return options


def executor_for(kind: str, layout: ResponseLayout, logger: logging.Logger | None = None) -> Executor:
    """``none``: a dry run; ``ansible``: the ansible-runner executor running the response playbooks
    against the engine's inventory. When that cannot be built, an executor that fails every item with
    the reason (logged), so timing, retries and ``tld ar list`` still work."""
    log = logger or logging.getLogger("threatlockdown.response")
    if kind == "none":
        return DryRunExecutor(log)
    if kind != "ansible":
        raise RuntimeError(f"unknown executor {kind!r}")
    inventory, _ = layout.inventory_path(read_settings(layout.settings_file))
    try:
        # Imported here: ansible-runner is heavy and only the daemons run responses.
        module = importlib.import_module("threatlockdown.response.ansible_executor")
        settings = module.AnsibleExecutorSettings.for_home(
            layout.home, [str(inventory)], **installed_response_files(layout.home)
        )
        executor: Executor = module.AnsibleRunnerExecutor(settings)
    except (ImportError, AttributeError, ValueError, OSError) as exc:
        reason = f"responses cannot run through Ansible: {exc}"
        log.error("%s", reason)
        return UnavailableExecutor(reason)
    return executor
