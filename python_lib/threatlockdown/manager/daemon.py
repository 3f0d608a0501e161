"""The manager daemon: collectors and agents -> one bounded queue -> analysis -> alert outputs -> acks."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import __version__
from ..analysis.session import AnalysisSession, manager_hostname
from ..collect import Collector, RawEvent, build_collectors
from ..collect.durable import PositionCommitter, committed_batch
from ..collect.syslog_receiver import SyslogReceiver
from ..errors import SourceErrors
from ..transport import EnrollmentConfig, EnrollmentServer, ManagerConfig, ManagerServer
from .agents import AgentIntake
from .home import Home
from .journal import BatchJournal
from .lifecycle import DaemonLifecycle, Ready, status_and_stop
from .outputs import AlertFiles, OutputSettings
from .pipeline import AlertWriteError, AnalysisPipeline
from .settings import ManagerSettings, load_manager_settings, read_enrollment_password
from .sink import AlertSink, NullSink

DEFAULT_QUEUE_SIZE = 16384
_LISTEN_TIMEOUT = 5.0  # how long a syslog listener may take to bind at start
_DRAIN_TIMEOUT = 30.0
_DROP_REPORT_INTERVAL = 5.0  # how long a reload waits for the old collectors' events to be analysed


@dataclass(frozen=True)
class DaemonOptions:
    queue_size: int = DEFAULT_QUEUE_SIZE
    max_batch: int = 500


class StartupError(Exception):
    pass


def _output_settings(settings: ManagerSettings) -> OutputSettings:
    g = settings.config.global_
    return OutputSettings(json=g.jsonout_output, text=g.alerts_log)


def _endpoint(settings: ManagerSettings) -> tuple[object, ...]:
    """What the agent and enrollment listeners depend on."""
    r, a = settings.agent_remote, settings.auth
    if r is None:
        return ()
    return (r.port, r.local_ip, a.disabled, a.port, a.use_password, a.use_source_ip, a.force)


class ManagerDaemon:
    """One manager. ``run()`` serves until SIGTERM/SIGINT, a ``stop`` request or ``request_stop()``."""

    def __init__(
        self,
        home: Home,
        *,
        sinks: Sequence[AlertSink] = (),
        options: DaemonOptions | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.home = home
        self.options = options or DaemonOptions()
        self._sinks = tuple(sinks) or (NullSink(),)
        self.log = logger or logging.getLogger("threatlockdown.manager")
        self._collect_log = (
            self.log.getChild("collect") if logger else logging.getLogger("threatlockdown.collect")
        )
        self._stop = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._started = time.time()
        self._started_mono = time.monotonic()
        self._reloads = 0
        self._last_reload: dict[str, Any] = {}
        self._password: str | None = None
        self.settings: ManagerSettings | None = None
        self.queue: asyncio.Queue[RawEvent] = asyncio.Queue(maxsize=self.options.queue_size)
        self.collectors: list[Collector] = []
        self._collector_tasks: list[asyncio.Task[None]] = []
        self.pipeline: AnalysisPipeline | None = None
        self.server: ManagerServer | None = None
        self.enrollment: EnrollmentServer | None = None
        self._intake = AgentIntake(self.queue)
        self._outputs: AlertFiles | None = None
        self._journal = BatchJournal(home.batch_journal)

    # -- life cycle ----------------------------------------------------------------------------------

    async def run(self, ready: Ready | None = None) -> int:
        """Serve; ``ready(None)`` once everything listens, ``ready(reason)`` if it cannot start."""
        commands = {**status_and_stop(self.status, self.request_stop), "reload": self.reload}
        life = DaemonLifecycle(self.home, self.log, ready, commands)
        if not life.claim_home():
            return 1
        pipeline_task: asyncio.Task[None] | None = None
        try:
            try:
                await self._start()
                await life.open_control()
            except (SourceErrors, StartupError, OSError) as exc:
                return life.failed(exc)
            assert self.pipeline is not None
            pipeline_task = asyncio.create_task(self.pipeline.run(), name="tld-analysis")
            life.install_signals(self.request_stop, reload=lambda: asyncio.ensure_future(self.reload()))
            self.log.info(
                "started (pid %d, version %s, home %s): %d collectors%s",
                os.getpid(),
                __version__,
                self.home.root,
                len(self.collectors),
                f", agents on port {self.server.port}" if self.server else "",
            )
            life.notify(None)
            watcher = asyncio.create_task(self._report_drops(), name="tld-drops")
            stop_task = asyncio.create_task(self._stop.wait())
            await asyncio.wait((stop_task, pipeline_task), return_when=asyncio.FIRST_COMPLETED)
            stop_task.cancel()
            watcher.cancel()
            if pipeline_task.done():
                failure = pipeline_task.exception()
                if isinstance(failure, AlertWriteError):
                    self.log.critical("%s; stopping without acknowledging the unwritten events", failure)
                    return 1
                if failure is not None:
                    self.log.critical("analysis stopped: %r", failure, exc_info=failure)
                    return 1
            self.log.info("stopping (SIGTERM or stop request)")
            await self._shutdown(pipeline_task)
            self.log.info("stopped")
            return 0
        finally:
            await life.stop_listening()
            await self._close_listeners()
            for task in self._collector_tasks:
                task.cancel()
            if self._collector_tasks:
                await asyncio.gather(*self._collector_tasks, return_exceptions=True)
            if pipeline_task is not None and not pipeline_task.done():
                pipeline_task.cancel()
                await asyncio.gather(pipeline_task, return_exceptions=True)
            await self._sinks_call("close")
            if self._outputs is not None:
                self._outputs.close()
            self._journal.close()
            life.release()

    def request_stop(self) -> None:
        self._stop.set()

    async def _start(self) -> None:
        settings = await asyncio.to_thread(load_manager_settings, self.home)
        for warning in settings.ruleset.warnings:
            self.log.warning("%s", warning)
        recovery = self._journal.recover(committed_batch)
        if recovery is not None:
            if recovery.committed:
                self.log.info("batch %d was complete before the last stop; nothing to undo", recovery.batch)
            else:
                cut = ", ".join(f"{n} bytes of {p}" for p, n in recovery.truncated.items()) or "nothing"
                self.log.warning(
                    "the last run stopped inside alert batch %d: removed %s; its events are analysed again",
                    recovery.batch,
                    cut,
                )
        self._journal.open()
        outputs = AlertFiles(self.home.alerts_dir, _output_settings(settings), self.log)
        outputs.open()
        self._outputs = outputs
        session = AnalysisSession(settings.ruleset, log_alert_level=settings.log_alert_level)
        self.pipeline = AnalysisPipeline(
            self.queue,
            session,
            outputs,
            self._journal,
            self._sinks,
            self.log,
            max_batch=self.options.max_batch,
        )
        collectors = self._build(settings)
        await self._start_collectors(collectors)
        self.pipeline.committer = PositionCommitter(collectors)
        await self._start_listeners(settings)
        await self._sinks_call("start")
        self.settings = settings

    async def _sinks_call(self, method: str) -> None:
        # Sinks with a life cycle (the active-response engine) start, reload and stop with the daemon;
        # AlertSink itself only requires handle().
        for sink in self._sinks:
            call = getattr(sink, method, None)
            if call is not None:
                await call()

    def _build(self, settings: ManagerSettings) -> list[Collector]:
        return build_collectors(
            settings.localfiles,
            settings.syslog_remotes,
            state_dir=self.home.collector_state,
            logger=self._collect_log,
        )

    async def _start_collectors(self, collectors: list[Collector]) -> None:
        self.collectors = collectors
        self._collector_tasks = [
            asyncio.create_task(c.run(self.queue), name=f"tld-{c.name}") for c in collectors
        ]
        for task in self._collector_tasks:
            task.add_done_callback(self._collector_ended)
        # A syslog port that cannot be bound is a start-up error, not a silent gap.
        for collector, task in zip(collectors, self._collector_tasks, strict=True):
            if isinstance(collector, SyslogReceiver):
                ready = asyncio.create_task(collector.ready.wait())
                await asyncio.wait(
                    (ready, task), timeout=_LISTEN_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
                )
                ready.cancel()
                if task.done() and not task.cancelled() and task.exception() is not None:
                    raise StartupError(str(task.exception()))

    def _collector_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.log.error("collector %s stopped: %s", task.get_name(), task.exception())

    async def _stop_collectors(self) -> None:
        for task in self._collector_tasks:
            task.cancel()
        await asyncio.gather(*self._collector_tasks, return_exceptions=True)
        self._collector_tasks = []

    async def _start_listeners(self, settings: ManagerSettings) -> None:
        remote = settings.agent_remote
        if remote is None:
            return
        server = ManagerServer(
            ManagerConfig(home=self.home.root, host=remote.local_ip, port=remote.port), self._intake.on_events
        )
        await server.start()
        self.server = server
        auth = settings.auth
        if auth.disabled:
            return
        password = None
        if auth.use_password:
            password = read_enrollment_password(settings.password_file)
            if password is None:
                # As Wazuh's authd: without etc/authd.pass a random password is chosen and logged.
                password = self._password or os.urandom(16).hex()
                self.log.warning(
                    "%s not found; enrollment password for this run: %s", settings.password_file, password
                )
            self._password = password
        enrollment = EnrollmentServer(
            EnrollmentConfig(
                home=self.home.root,
                host=remote.local_ip,
                port=auth.port,
                password=password,
                use_source_ip=auth.use_source_ip,
                replace_existing=auth.force,
            )
        )
        await enrollment.start()
        self.enrollment = enrollment

    async def _close_listeners(self) -> None:
        if self.enrollment is not None:
            await self.enrollment.close()
            self.enrollment = None
        if self.server is not None:
            # The analysis task still runs here, so batches the agents already sent are finished.
            await self.server.close()
            self.server = None

    async def _shutdown(self, pipeline_task: asyncio.Task[None]) -> None:
        """Stop intake, analyse what is queued, save positions: nothing lost, nothing repeated."""
        assert self.pipeline is not None
        await self._close_listeners()
        await self._stop_collectors()
        self.pipeline.stop()
        await pipeline_task
        await self.pipeline.drain()
        self.pipeline.committer.commit()

    async def _report_drops(self) -> None:
        """Say in the log when events were lost (UDP over capacity), with how many: never silently."""
        reported: dict[str, tuple[int, int]] = {}
        while True:
            await asyncio.sleep(_DROP_REPORT_INTERVAL)
            for c in self.collectors:
                st = c.stats()
                now = (st.get("dropped", 0), st.get("kernel_dropped", 0))
                before = reported.get(c.name, (0, 0))
                if now[0] > before[0] or now[1] > before[1]:
                    self.log.warning(
                        "%s: %d events dropped in the last %.0f s (%d with the analysis queue full, "
                        "%d by the kernel with the socket buffer full); %d dropped since start",
                        c.name,
                        sum(now) - sum(before),
                        _DROP_REPORT_INTERVAL,
                        now[0] - before[0],
                        now[1] - before[1],
                        sum(now),
                    )
                reported[c.name] = now

    # -- reload --------------------------------------------------------------------------------------

    async def reload(self) -> dict[str, Any]:
        """Re-read ossec.conf and the ruleset. A bad configuration is logged and the old one stays."""
        async with self._reload_lock:
            self.log.info("reloading the configuration and ruleset")
            try:
                settings = await asyncio.to_thread(load_manager_settings, self.home)
                self._build(settings)  # checks the collector blocks; the objects are not used
            except SourceErrors as exc:
                for err in exc.errors:
                    self.log.error("reload refused: %s", err)
                self.log.error(
                    "reload refused (%d error(s)); the previous configuration stays", len(exc.errors)
                )
                self._last_reload = {"time": time.time(), "ok": False, "errors": [str(e) for e in exc.errors]}
                return {"ok": False, "errors": self._last_reload["errors"]}
            old, pipeline = self.settings, self.pipeline
            assert old is not None and pipeline is not None and self._outputs is not None
            for warning in settings.ruleset.warnings:
                self.log.warning("%s", warning)
            session = AnalysisSession(settings.ruleset, log_alert_level=settings.log_alert_level)
            # Keep the counters that make alert ids unique and rules' firedtimes grow across a reload.
            session.engine.firedtimes.update(pipeline.session.engine.firedtimes)
            session._counter = pipeline.session._counter
            pipeline.session = session
            self._outputs.settings = _output_settings(settings)
            changes = ["ruleset", "outputs"]
            if settings.collector_key() != old.collector_key():
                await self._replace_collectors(settings)
                changes.append("collectors")
            if _endpoint(settings) != _endpoint(old):
                await self._close_listeners()
                try:
                    await self._start_listeners(settings)
                except (SourceErrors, OSError) as exc:
                    self.log.error("agent listeners not restarted: %s", exc)
                changes.append("agent listeners")
            self.settings = settings
            await self._sinks_call("reload")
            self._reloads += 1
            self._last_reload = {"time": time.time(), "ok": True, "changed": changes}
            self.log.info("reloaded: %s", ", ".join(changes))
            return {"ok": True, "changed": changes}

    async def _replace_collectors(self, settings: ManagerSettings) -> None:
        assert self.pipeline is not None
        old = self.collectors
        await self._stop_collectors()
        # The old collectors' events still in the queue are analysed and acked first; only then do
        # their positions reach the file that the new collectors start from.
        deadline = time.monotonic() + _DRAIN_TIMEOUT
        while any(c.stats().get("unacked", 0) for c in old) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        self.pipeline.committer.commit()
        collectors = self._build(settings)
        try:
            await self._start_collectors(collectors)
        except StartupError as exc:
            self.log.error("reload: %s", exc)
        self.pipeline.committer = PositionCommitter(collectors)

    # -- status --------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """What ``tld manager status`` shows (docs/manager.md lists the fields)."""
        pipeline = self.pipeline
        counters = pipeline.counters if pipeline is not None else None
        processed = counters.processed if counters is not None else {}
        sources: dict[str, dict[str, int]] = {}
        for c in self.collectors:
            sources[c.name] = {**c.stats(), "processed": processed.get(c.name, 0)}
        agents: list[dict[str, Any]] = []
        transport: dict[str, Any] = {}
        if self.server is not None:
            st = self.server.stats()
            for conn in st.connected:
                agents.append(
                    {
                        "id": conn.id,
                        "name": conn.name,
                        "ip": conn.ip,
                        "since": conn.since,
                        "last_seen": conn.last_seen,
                        "events_received": conn.events_received,
                    }
                )
            transport = {
                "port": self.server.port,
                "events_received": st.events_received,
                "refused": dict(st.refused),
                "protocol_errors": dict(st.protocol_errors),
                "duplicates_dropped": st.duplicates_dropped,
                "sequence_gaps": st.sequence_gaps,
            }
        for name, count in processed.items():
            if name.startswith("agent:"):
                entry = sources.setdefault(name, {"received": 0, "dropped": 0})
                entry["processed"] = count
        for a in agents:
            sources.setdefault(f"agent:{a['id']}", {"received": 0, "dropped": 0, "processed": 0})[
                "received"
            ] = a["events_received"]
        received = sum(s.get("received", 0) for s in sources.values())
        if self.server is not None:
            received = received - sum(a["events_received"] for a in agents) + transport["events_received"]
        dropped = sum(s.get("dropped", 0) + s.get("kernel_dropped", 0) for s in sources.values())
        uptime = time.monotonic() - self._started_mono
        total_processed = sum(processed.values())
        return {
            "role": "manager",
            "version": __version__,
            "pid": os.getpid(),
            "home": str(self.home.root),
            "manager_name": manager_hostname(),
            "started": self._started,
            "uptime_seconds": round(uptime, 3),
            "events": {
                "received": received,
                "processed": total_processed,
                "per_second": round(counters.rate(time.monotonic()), 1) if counters else 0.0,
                "per_second_since_start": round(total_processed / uptime, 1) if uptime > 0 else 0.0,
                "dropped": dropped,
                "analysis_errors": counters.analysis_errors if counters else 0,
            },
            "sources": sources,
            "alerts": {
                "written": counters.alerts_written if counters else 0,
                "by_level": {str(k): v for k, v in sorted(counters.alerts_by_level.items())}
                if counters
                else {},
                "sink_calls": counters.sink_calls if counters else 0,
                "sink_errors": counters.sink_errors if counters else 0,
            },
            "queue": {
                "depth": self.queue.qsize(),
                "capacity": self.queue.maxsize,
                "batches": counters.batches if counters else 0,
            },
            "agents": {"connected": agents, **transport},
            "enrollment": (
                {
                    "port": self.enrollment.port,
                    "enrolled": self.enrollment.stats().enrolled,
                    "refused": dict(self.enrollment.stats().refused),
                }
                if self.enrollment is not None
                else None
            ),
            "reloads": self._reloads,
            "last_reload": self._last_reload or None,
        }
