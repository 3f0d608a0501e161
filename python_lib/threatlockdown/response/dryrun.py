"""An executor that carries out nothing: ``tld runner --executor none`` (watch what would happen)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .executor import Batch, ItemResult


@dataclass
class DryRunExecutor:
    """Logs each item and reports it ``skipped``: the engine then knows nothing was applied."""

    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("threatlockdown.response"))

    async def execute(self, batch: Batch) -> list[ItemResult]:
        for item in batch.items:
            self.logger.info(
                "dry run: would %s %s on %s for %s",
                batch.action,
                batch.command,
                item.host,
                item.srcip or item.user,
            )
        return [
            ItemResult(i.key, i.host, "skipped", message="dry run: nothing executed") for i in batch.items
        ]

    async def close(self) -> None:
        return None


@dataclass
class UnavailableExecutor:
    """Stands in when the real executor cannot be built (e.g. no inventory): every item fails with the
    reason, so the engine still keeps time, retries, and shows the problem in ``tld ar list``."""

    reason: str

    async def execute(self, batch: Batch) -> list[ItemResult]:
        return [ItemResult(i.key, i.host, "failed", message=self.reason) for i in batch.items]

    async def close(self) -> None:
        return None
