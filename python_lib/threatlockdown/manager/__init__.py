"""The manager daemon (``tld manager``): collectors and agents feed one bounded queue, analysis runs
in batches, alerts go to logs/alerts/alerts.json and alerts.log and to the in-process ``AlertSink``s.

::

    from threatlockdown.manager.daemon import ManagerDaemon
    from threatlockdown.manager.home import Home
    from threatlockdown.manager.sink import AlertSink

    daemon = ManagerDaemon(Home(Path("/var/ossec")), sinks=[my_response_engine])
    rc = await daemon.run()        # until SIGTERM, ``tld manager stop`` or daemon.request_stop()

The package imports nothing itself, so the CLI can reach ``service`` and ``control`` without loading
the analysis engine. docs/manager.md describes the home layout, the commands, the status fields, the
outputs and the exactly-once design.
"""
