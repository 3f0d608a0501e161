"""How alerts reach the active-response engine: in-process, through ``AlertSink``."""

from __future__ import annotations

from typing import Any, Protocol

from ..analysis.session import ProcessResult


class AlertSink(Protocol):
    """Called by the manager for every alert whose rule level is above 0, in event order.

    As in Wazuh, where responses are bound to rules and not to the alert outputs, this includes alerts
    below <log_alert_level> and rules with ``no_log``. ``alert`` is the alerts.json object. The call
    comes after the batch's alerts are on disk and before its events are acknowledged, so a crash in
    between makes the events (and the call) come again; a sink must tolerate a repeated alert.
    An exception is logged and counted; it does not stop the manager.
    """

    async def handle(self, result: ProcessResult, alert: dict[str, Any]) -> None: ...


class NullSink:
    """The default sink: does nothing."""

    async def handle(self, result: ProcessResult, alert: dict[str, Any]) -> None:
        return None
