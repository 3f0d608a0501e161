"""The manager daemon (``tld manager``): collectors and agents feed one bounded queue, analysis runs
in batches, alerts go to logs/alerts/alerts.json and alerts.log and to the in-process ``AlertSink``s.

::

    daemon = ManagerDaemon(Home(Path("/var/ossec")), sinks=[my_response_engine])
    rc = await daemon.run()        # until SIGTERM, ``tld manager stop`` or daemon.request_stop()

docs/manager.md describes the home layout, the commands, the status fields, the outputs and the
exactly-once design.
"""

from __future__ import annotations

from .daemon import DaemonOptions, ManagerDaemon
from .home import Home
from .sink import AlertSink, NullSink

__all__ = ["AlertSink", "DaemonOptions", "Home", "ManagerDaemon", "NullSink"]
