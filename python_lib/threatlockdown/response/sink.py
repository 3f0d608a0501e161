"""The manager's AlertSink: every alert of level > 0 goes to the response engine.

The daemon calls ``start`` once its settings are loaded, ``reload`` when it reloads and ``close`` when
it stops; ``handle`` for each alert (independently of log_alert_level and no_log, as Wazuh binds
responses to rules, not to outputs). A repeated alert after a crash refreshes what the first one added
(same key), so it is harmless.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..analysis.session import ProcessResult
from ..errors import SourceErrors
from .alertfacts import AlertShapeError, facts_from_result
from .build import ResponseLayout, build_engine, layout_for, load_parts, protection_for
from .control import ResponseControlServer
from .engine import ResponseEngine
from .executor import Executor


class ResponseSink:
    def __init__(
        self,
        home: Path,
        executor_factory: Callable[[ResponseLayout], Executor],
        *,
        logger: logging.Logger | None = None,
        layout: ResponseLayout | None = None,
    ) -> None:
        self.layout = layout or layout_for(home)
        self._executor_factory = executor_factory
        self.log = logger or logging.getLogger("threatlockdown.response")
        self.engine: ResponseEngine | None = None
        self._control: ResponseControlServer | None = None

    async def start(self) -> None:
        """Build the engine, reconcile its state and open the control socket; SourceErrors on bad
        configuration (ossec.conf, etc/response.xml, the inventory)."""
        engine = await build_engine(
            self.layout, self._executor_factory(self.layout), manager_mode=True, logger=self.log
        )
        await engine.start()
        self.engine = engine
        control = ResponseControlServer(self.layout.socket, engine, self.log)
        try:
            await control.start()
            self._control = control
        except OSError as exc:
            self.log.error("active response control socket not available: %s", exc)

    async def handle(self, result: ProcessResult, alert: dict[str, Any]) -> None:
        engine = self.engine
        if engine is None:
            return
        try:
            facts = facts_from_result(result, alert)
        except AlertShapeError:
            return
        await engine.handle_alert(alert, facts)

    async def reload(self) -> None:
        """Re-read ossec.conf, etc/response.xml settings that apply live, the inventory and client.keys.
        A bad file is logged and the previous configuration stays."""
        engine = self.engine
        if engine is None:
            return
        try:
            parts = await asyncio.to_thread(load_parts, self.layout, settings=engine.settings)
            protection = await asyncio.to_thread(protection_for, parts, self.log)
        except SourceErrors as exc:
            for err in exc.errors:
                self.log.error("active response reload refused: %s", err)
            return
        engine.reload(parts.config, parts.inventory, protection, parts.agents)
        self.log.info("active response reloaded: %d blocks bound", len(engine.policy.bindings))

    async def close(self) -> None:
        if self._control is not None:
            await self._control.close()
            self._control = None
        if self.engine is not None:
            await self.engine.stop()
            self.engine = None
