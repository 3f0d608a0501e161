"""The response engine: alert -> policy -> decision -> state -> batched dispatch -> timed revert.

One asyncio task set per engine: the dispatcher, the expiry scheduler and a flusher. Every alert is
decided synchronously in ``handle_alert`` (no await between reading and changing the state of a key);
only submitting work to the dispatcher can wait, when its queue is full.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ..config.model import Command, OssecConfig
from .alertfacts import AlertFacts, AlertShapeError, facts_from_alert
from .audit import AuditLog, record_pieces
from .decisions import Decision, decision_of, preview, refresh_decision, simulate_plan, skip_decision
from .dispatch import Dispatcher, Job
from .executor import Action, Batch, Executor, ItemResult
from .inventory import Inventory
from .policy import IMPLICIT_LOCALHOST, Intent, Policy, make_key, subject_of
from .scheduler import ExpiryScheduler
from .selfprotect import SelfProtection
from .settings import ResponseSettings
from .state import Entry, StateStore, alert_json
from .timeouts import first_expiry, retry_delay
from .validate import Refusal, check_user, parse_srcip

_PURGE_INTERVAL = 3600.0
_AUDIT_EVENTS = {"add": "triggered", "refresh": "refreshed", "readd": "readded", "run": "triggered"}
# The counter of each (action, result status), named once instead of formatted per result.
_RESULT_COUNTS = {
    (action, status): f"{action}_{status}"
    for action in ("add", "delete")
    for status in ("ok", "failed", "unreachable", "skipped")
}


class EngineError(Exception):
    """A request the engine refuses (unknown command or host, invalid address, ...)."""


@dataclass(frozen=True)
class EnginePaths:
    state: Path  # queue/active-response/state.db
    logs: Path  # logs/


class ResponseEngine:
    def __init__(
        self,
        *,
        config: OssecConfig,
        settings: ResponseSettings,
        inventory: Inventory,
        executor: Executor,
        paths: EnginePaths,
        protection: SelfProtection | None = None,
        agents: Mapping[str, str] | None = None,
        manager_mode: bool = True,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.log = logger or logging.getLogger("threatlockdown.response")
        self.clock = clock
        self.executor = executor
        self.paths = paths
        self._manager_mode = manager_mode
        self._agents = dict(agents or {})
        self.policy = Policy(
            config, manager_host=settings.manager_host, manager_mode=manager_mode, agents=self._agents
        )
        self.inventory = inventory
        self.protection = protection or SelfProtection(enabled=False)
        self.state = StateStore(paths.state)
        self.audit = AuditLog(paths.logs, node_name=config.node_name or "undefined")
        self.dispatcher = Dispatcher(
            executor,
            on_results=self._on_results,
            before_run=self._before_run,
            window=settings.batch_window,
            max_items=settings.max_batch_items,
            concurrency=settings.max_concurrency,
            queue_size=settings.queue_size,
            logger=self.log,
        )
        self.scheduler = ExpiryScheduler(self._on_due, self._follow, clock=clock)
        self.counts: Counter[str] = Counter()
        self._tasks: list[asyncio.Task[None]] = []
        self._commands: dict[tuple[str, str], Command] = {}
        self._started = False
        self._stopping = False
        self._warned_disabled = False

    # -- life cycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the state, start the tasks, then reconcile: expired responses are reverted, live ones
        rescheduled, adds that may not have run are run again."""
        self.state.load()
        self.state.set_meta("mode", "manager" if self._manager_mode else "runner")
        self._tasks = [
            asyncio.create_task(self.dispatcher.run(), name="tld-ar-dispatch"),
            asyncio.create_task(self.scheduler.run(), name="tld-ar-expiry"),
            asyncio.create_task(self._flusher(), name="tld-ar-flush"),
        ]
        self._started = True
        for rule in self.policy.whitelist.negated_rules:
            self.log.warning(
                "%s covers every address except the one named (Wazuh semantics)", rule.describe()
            )
        reason = self.policy.disabled_reason
        if reason:
            self.log.warning("%s", reason)
        await self._reconcile()
        self.log.info(
            "active response: %d blocks bound, %d active responses, %d inventory hosts",
            len(self.policy.bindings),
            len(self.state.active),
            len(self.inventory.hosts),
        )

    async def _reconcile(self) -> None:
        now = self.clock()
        expired = rescheduled = readded = 0
        for entry in list(self.state.active.values()):
            if entry.expires is not None and entry.expires <= now:
                expired += 1
                self._record(entry, "expired_while_down", expires=entry.expires)
                await self._revert(entry, reason="expired while the engine was not running")
            elif entry.phase == "adding":
                readded += 1
                entry.busy = True
                self._record(entry, "resumed", reason="add not confirmed before the last stop: run again")
                await self._submit_add(entry, self.state.alert_text_of(entry.key))
            elif entry.phase == "reverting":
                entry.busy = True
                await self._submit_delete(entry, attempt=1)
            else:
                rescheduled += 1
                self._schedule(entry)
        self.state.flush()
        if expired or readded:
            self.log.info(
                "reconciled the state: %d expired responses reverted, %d adds run again, %d rescheduled",
                expired,
                readded,
                rescheduled,
            )

    async def stop(self, *, revert_all: bool | None = None, timeout: float = 30.0) -> None:
        """Stop. Blocks stay in place and are reverted on schedule after the next start, unless
        ``revert_all`` (default: the revert_on_stop setting) reverts every active response first."""
        if not self._started or self._stopping:
            return
        self._stopping = True
        revert = self.settings.revert_on_stop if revert_all is None else revert_all
        deadline = time.monotonic() + timeout
        if revert:
            for entry in list(self.state.active.values()):
                if entry.phase != "reverting":
                    await self._revert(entry, reason="reverted at stop (revert_on_stop)")
            self.state.flush()
        # Let queued, forming and running executions finish and be recorded (retries waiting for their
        # delay are not awaited, except reverts when reverting everything).
        while await self.dispatcher.wait_idle(max(0.0, deadline - time.monotonic())):
            if not (revert and self._reverting()) or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.02)  # a revert waits for its retry
        for task in self._tasks:
            task.cancel()
        _, stuck = await asyncio.wait(self._tasks, timeout=5.0)
        for task in stuck:
            self.log.error("task %s did not stop when cancelled", task.get_name())
        await self.dispatcher.wait_running(max(0.0, deadline - time.monotonic()))
        left = self.dispatcher.cancel_retries()
        if left:
            self.log.info("%d actions left for the next start (recorded in the state)", len(left))
        with contextlib.suppress(Exception):
            await self.executor.close()
        self.state.close()
        self.audit.close()
        self._started = False

    def close_offline(self) -> None:
        """Write and close an engine that was never started (``tld ar`` with no engine running)."""
        self.state.close()
        self.audit.close()

    def _reverting(self) -> bool:
        return any(e.phase == "reverting" and e.busy for e in self.state.active.values())

    async def _flusher(self) -> None:
        next_purge = 0.0
        while True:
            await asyncio.sleep(self.settings.flush_interval)
            try:
                self.state.flush()
                self.audit.flush()
                now = self.clock()
                if now >= next_purge:
                    reset = self.settings.offender_reset
                    self.state.purge(
                        history_before=now - self.settings.history_days * 86400.0,
                        offenders_before=now - reset if reset > 0 else None,
                    )
                    next_purge = now + _PURGE_INTERVAL
                if len(self.scheduler) > 2 * len(self.state.active) + 1024:
                    items = [(e.key, e.expires) for e in self.state.active.values() if e.expires is not None]
                    for e in self.state.active.values():
                        e.scheduled = e.expires  # the item rebuild() gives it, or none
                    self.scheduler.rebuild(items)
            except Exception:
                self.log.exception("writing the active-response state failed; retrying")

    # -- configuration -------------------------------------------------------------------------------

    def reload(
        self,
        config: OssecConfig,
        inventory: Inventory,
        protection: SelfProtection | None = None,
        agents: Mapping[str, str] | None = None,
    ) -> None:
        """New bindings, inventory and protected addresses; active responses keep their schedule (and
        are reverted with the executable they were applied with, even if the command is gone)."""
        if agents is not None:
            self._agents = dict(agents)
        policy = Policy(
            config,
            manager_host=self.settings.manager_host,
            manager_mode=self._manager_mode,
            agents=self._agents,
        )
        self.policy = policy
        self.inventory = inventory
        if protection is not None:
            self.protection = protection
        self.audit.node_name = config.node_name or "undefined"

    # -- alerts --------------------------------------------------------------------------------------

    def facts(self, alert: Mapping[str, Any]) -> AlertFacts | None:
        try:
            return facts_from_alert(alert)
        except AlertShapeError as exc:
            self._unusable(alert, exc)
            return None

    def _unusable(self, alert: Mapping[str, Any], exc: AlertShapeError) -> None:
        self.counts["unusable_alerts"] += 1
        self.log.warning("alert %s ignored: %s", alert.get("id", "?"), exc)

    async def handle_alert(self, alert: Mapping[str, Any], facts: AlertFacts | None = None) -> list[Decision]:
        """Decide and start the responses ``alert`` asks for; return the decisions."""
        if facts is None:
            try:  # self.facts(alert), without the call
                facts = facts_from_alert(alert)
            except AlertShapeError as exc:
                self._unusable(alert, exc)
                return []
        self.counts["alerts"] += 1
        bindings, intents, skips = self.policy.planned(facts, self.inventory, self.protection)
        if not bindings:
            return []
        decisions: list[Decision] = []
        for skip in skips:
            d = skip_decision(skip, facts)
            decisions.append(d)
            self._audit_decision(d, facts)
            self.log.info(
                "response %s: %s (rule %s, alert %s)", d.outcome, d.reason, facts.rule_id, facts.alert_id
            )
        now = self.clock()
        active = self.state.active
        for intent in intents:
            entry = active.get(intent.key)
            if entry is not None and entry.phase != "reverting" and intent.binding.stateful:
                # Most decisions of an attack: nothing to await, so no coroutine either.
                decisions.append(self._refresh(intent, entry, facts, now))
            else:
                decisions.append(await self._apply(intent, entry, facts, now))
        return decisions

    def simulate(self, alert: Mapping[str, Any]) -> list[Decision]:
        """What ``handle_alert`` would decide now, changing nothing."""
        facts = facts_from_alert(alert)
        plan = self.policy.plan(facts, self.inventory, self.protection)
        if not plan.bindings:
            return [Decision("skipped", plan.unbound, rule_id=facts.rule_id, alert_id=facts.alert_id or None)]
        return simulate_plan(plan, self.state.active, self.state.offenders, self.clock(), self.settings)

    def _refresh(self, intent: Intent, entry: Entry, facts: AlertFacts, now: float) -> Decision:
        """A new trigger of a key being added or active (Wazuh's abort): the expiry is extended, the
        offence counted, the decision audited; nothing runs."""
        key = intent.key
        d = refresh_decision(intent, entry, self.state.offenders.get(key), facts, now, self.settings)
        self.counts["refresh"] += 1
        self._audit_refresh(d, intent, facts)
        self.state.set_offender(key, d.offences, now)
        entry.expires = d.expires
        entry.timeout = d.timeout
        entry.offences = d.offences
        self.state.touch(entry)
        self._schedule(entry)
        return d

    async def _apply(self, intent: Intent, entry: Entry | None, facts: AlertFacts, now: float) -> Decision:
        """Every decision but a refresh: add, re-add while reverting, or a one-shot run."""
        b = intent.binding
        p = preview(intent, entry, self.state.offenders.get(intent.key), now, self.settings)
        d = decision_of(intent, facts, p)
        self.counts[p.outcome] += 1
        self._audit_decision(d, facts)
        if p.outcome == "run":
            job = Job(
                "add", b.command, intent.key, intent.host, intent.srcip, intent.user, 0,
                b.command.extra_args, alert_json(facts.alert), stateful=False,
            )  # fmt: skip
            if not self.dispatcher.offer(job):
                await self.dispatcher.submit(job)
            return d
        self.state.set_offender(intent.key, p.offence, now)
        if entry is None:
            # Positional, in the dataclass's order (keywords cost twice as much): key, command, executable,
            # host, srcip, user, started, expires, timeout, offences, phase, attempts, applied,
            # last_result, last_message, last_attempt, origin, ar_name, rule_id, alert_id, extra_args,
            # busy. rule_id interned: one string per rule, not per response.
            command = b.command
            entry = Entry(
                intent.key, command.name, command.executable, intent.host, intent.srcip, intent.user, now,
                p.expires, p.timeout, p.offence, "adding", 0, False, None, None, None, "alert", b.name,
                sys.intern(str(facts.rule_id)), facts.alert_id or None, command.extra_args, True,
            )  # fmt: skip
            text = alert_json(facts.alert)
            self.state.put(entry, text)
            detail = {
                "rule_id": entry.rule_id,
                "alert_id": entry.alert_id,
                "timeout": p.timeout,
                "offences": p.offence,
                "reason": d.reason,
            }
            self.state.record_detail("triggered", entry.key, entry.command, entry.host, entry.subject, detail)
            self._schedule(entry)
            await self._submit_add(entry, text)
            return d
        entry.expires = p.expires
        entry.timeout = p.timeout
        entry.offences = p.offence
        self.state.touch(entry)
        if p.outcome == "readd":
            self._record(entry, "readded", rule_id=str(facts.rule_id), alert_id=facts.alert_id or None)
            if entry.busy:
                entry.readd = True  # the delete is running: apply again once it is done
            else:
                await self._readd(entry)
        else:  # a refresh that did not take the fast path (handle_alert decides which): the same steps
            self._schedule(entry)
        return d

    def _audit_refresh(self, d: Decision, intent: Intent, facts: AlertFacts) -> None:
        """``_audit_decision`` of a refresh, byte for byte, from the intent's serialised constant parts
        (key, command, target, subject; block, reason) and a small dict of what changes per alert."""
        pieces = intent.refresh_audit
        if pieces is None:
            before: dict[str, Any] = {"key": d.key, "command": d.command, "target": d.target}
            if d.srcip is not None:
                before["srcip"] = d.srcip
            if d.user is not None:
                before["user"] = d.user
            pieces = intent.refresh_audit = record_pieces(
                "refreshed", before, {"block": d.block, "reason": d.reason}
            )
        dumps = orjson.dumps
        if facts.alert_id and d.expires is not None and d.offences:
            # The usual refresh has every member: formatted in one go (the strings and the float by
            # orjson, as in the generic record).
            middle = b'"rule_id":"%d","alert_id":%s,"agent_id":%s,"timeout":%d,"expires":%s,"offences":%d' % (
                facts.rule_id, dumps(facts.alert_id), dumps(facts.agent_id), d.timeout, dumps(d.expires),
                d.offences,
            )  # fmt: skip
        else:
            changing: dict[str, Any] = {"rule_id": str(facts.rule_id)}
            if facts.alert_id:
                changing["alert_id"] = facts.alert_id
            changing["agent_id"] = facts.agent_id
            changing["timeout"] = d.timeout
            if d.expires is not None:
                changing["expires"] = d.expires
            if d.offences:
                changing["offences"] = d.offences
            middle = dumps(changing)[1:-1]
        self.audit.write_serialised(pieces[0], middle, pieces[1])

    def _audit_decision(self, d: Decision, facts: AlertFacts) -> None:
        # Built field by field: this runs for every decision, so no keyword-argument dict to filter.
        skipped = d.outcome in ("skipped", "refused")
        record: dict[str, Any] = {}
        if d.key is not None:
            record["key"] = d.key
        if d.command is not None:
            record["command"] = d.command
        if d.target is not None:
            record["target"] = d.target
        srcip = d.srcip if d.srcip is not None else facts.srcip if skipped else None
        if srcip is not None:
            record["srcip"] = srcip
        if d.user is not None:
            record["user"] = d.user
        record["rule_id"] = str(facts.rule_id)
        if facts.alert_id:
            record["alert_id"] = facts.alert_id
        record["agent_id"] = facts.agent_id
        if not skipped:
            record["timeout"] = d.timeout
            if d.expires is not None:
                record["expires"] = d.expires
            if d.offences:
                record["offences"] = d.offences
        if d.block is not None:
            record["block"] = d.block
        record["reason"] = d.reason
        self.audit.write(record, _AUDIT_EVENTS.get(d.outcome, d.outcome))

    # -- submitting work -----------------------------------------------------------------------------

    def _command(self, entry: Entry) -> Command:
        """The command an entry was applied with, even if ossec.conf no longer has it."""
        cmd = self.policy.config.commands.get(entry.command)
        if cmd is not None and cmd.executable == entry.executable:
            return cmd
        k = (entry.command, entry.executable)
        if k not in self._commands:
            self._commands[k] = Command(
                name=entry.command,
                executable=entry.executable,
                timeout_allowed=True,
                path="(state)",
                line=None,
            )
        return self._commands[k]

    def _job(self, action: Action, entry: Entry, alert: str, attempt: int = 1) -> Job:
        timeout = int(entry.expires - self.clock()) if entry.expires is not None else 0
        return Job(
            action, self._command(entry), entry.key, entry.host, entry.srcip, entry.user,
            timeout if timeout > 0 else 0, entry.extra_args, alert, True, attempt,
        )  # fmt: skip

    async def _submit_add(self, entry: Entry, alert: str) -> None:
        entry.busy = True
        job = self._job("add", entry, alert)
        if not self.dispatcher.offer(job):
            await self.dispatcher.submit(job)  # waits for room: back-pressure

    async def _submit_delete(self, entry: Entry, attempt: int) -> None:
        entry.busy = True
        await self.dispatcher.submit(self._job("delete", entry, self.state.alert_text_of(entry.key), attempt))

    async def _revert(self, entry: Entry, reason: str) -> None:
        """Start reverting ``entry`` now (or once its running action is done)."""
        if entry.busy:
            entry.revert_due = True
            return
        if entry.phase == "active" and not entry.applied:
            # Every add attempt failed as unreachable, or the executor skipped it: nothing to undo.
            self.state.remove(entry.key)
            self._record(
                entry, "expired", reason=f"{reason}; never applied (last result: {entry.last_result})"
            )
            self.audit.decision(
                "expired", key=entry.key, command=entry.command, target=entry.host, reason="never applied"
            )
            return
        entry.phase = "reverting"
        entry.attempts = 0
        entry.revert_due = False
        self.state.touch(entry)
        self._record(entry, "reverting", reason=reason)
        await self._submit_delete(entry, attempt=1)

    async def _readd(self, entry: Entry) -> None:
        now = self.clock()
        entry.phase = "adding"
        entry.attempts = 0
        entry.readd = False
        entry.started = now
        if entry.expires is not None:
            entry.expires = first_expiry(now, entry.timeout)
            self._schedule(entry)
        self.state.touch(entry)
        await self._submit_add(entry, self.state.alert_text_of(entry.key))

    def _record(self, entry: Entry, event: str, **detail: Any) -> None:
        self.state.record_detail(event, entry.key, entry.command, entry.host, entry.subject, detail)

    # -- expiry --------------------------------------------------------------------------------------

    def _schedule(self, entry: Entry) -> None:
        """Make sure the expiry heap brings ``entry`` up no later than its expiry. An extended expiry
        (every refresh) pushes nothing: the earlier item moves on when it comes up (``_follow``)."""
        expires = entry.expires
        if expires is None:
            return
        at = entry.scheduled
        if at is not None and at <= expires:
            return
        entry.scheduled = expires
        self.scheduler.schedule(entry.key, expires)

    def _follow(self, key: str, at: float) -> float | None:
        """The heap item (``at``, ``key``) came up: None to drop it, ``at`` when the key is due, or the
        later expiry to move it to."""
        entry = self.state.active.get(key)
        if entry is None or entry.scheduled != at:
            return None  # superseded by an earlier item, or the key is gone
        expires = entry.expires
        if expires is not None and expires > at and entry.phase != "reverting":
            entry.scheduled = expires
            return expires
        entry.scheduled = None
        if expires is None or entry.phase == "reverting":
            return None
        return at

    async def _on_due(self, keys: list[str]) -> None:
        for key in keys:
            entry = self.state.active.get(key)
            if entry is not None:
                await self._revert(entry, reason="timeout expired")

    # -- results -------------------------------------------------------------------------------------

    def _before_run(self, jobs: list[Job]) -> None:
        # Write-ahead: the row of everything about to run is on disk first, so a crash cannot leave a
        # block that nobody knows about.
        self.state.flush_keys(job.key for job in jobs)

    async def _on_results(self, batch: Batch, pairs: list[tuple[Job, ItemResult]]) -> None:
        for job, result in pairs:
            if not job.stateful:
                self._one_shot_result(batch, job, result)
                continue
            entry = self.state.active.get(job.key)
            if entry is None:
                # Forgotten by an operator while running: report what happened, change nothing.
                self._audit_result(batch, job, result, note="no longer in the state")
                continue
            entry.attempts = job.attempt
            entry.last_result = result.status
            entry.last_message = result.message or None
            entry.last_attempt = self.clock()
            self._audit_result(batch, job, result)
            if batch.action == "add":
                await self._add_result(batch, job, result, entry)
            else:
                await self._delete_result(batch, job, result, entry)
            if entry.key in self.state.active:
                self.state.touch(entry)
        # The results reach the state file with the next flush (flush_interval), coalesced with the
        # refreshes: the rows were written ahead, so a crash before then only runs these actions again
        # at the next start (docs/active-response.md). The audit goes out now.
        self.audit.flush()

    def _audit_result(self, batch: Batch, job: Job, result: ItemResult, note: str | None = None) -> None:
        status = result.status
        if status != "ok" and status != "skipped":
            event = "failed"
        elif batch.action == "delete":
            event = "reverted"
        else:
            event = "executed" if status == "ok" else "not_applied"
        # The record built directly, None fields left out (as audit.decision does): one per result.
        record: dict[str, Any] = {
            "action": batch.action,
            "key": job.key,
            "command": batch.command,
            "target": job.host,
        }
        if job.srcip is not None:
            record["srcip"] = job.srcip
        if job.user is not None:
            record["user"] = job.user
        record["status"] = status
        record["changed"] = result.changed
        record["attempt"] = job.attempt
        record["batch"] = batch.batch_id
        if result.message:
            record["message"] = result.message
        if note is not None:
            record["note"] = note
        self.audit.write(record, event)
        if status == "ok":
            self.audit.executed(
                action=batch.action,
                executable=batch.executable,
                extra_args=job.extra_args,
                alert_text=job.alert_json,  # as queued: no second serialisation of the alert
                target=job.host,
            )
        elif status == "failed" or status == "unreachable":
            self.audit.failed(
                action=batch.action,
                executable=batch.executable,
                target=job.host,
                subject=job.srcip or job.user or "-",
                status=status,
                message=result.message,
            )
        self.counts[_RESULT_COUNTS[batch.action, status]] += 1

    def _one_shot_result(self, batch: Batch, job: Job, result: ItemResult) -> None:
        self._audit_result(batch, job, result)
        self.state.record(
            "executed" if result.status == "ok" else "failed",
            job.key,
            batch.command,
            job.host,
            job.srcip or job.user,
            action=batch.action,
            status=result.status,
            attempt=job.attempt,
            message=result.message or None,
        )
        if result.status in ("failed", "unreachable") and job.attempt < self.settings.add_attempts:
            self._retry(job, batch)

    def _retry(self, job: Job, batch: Batch) -> None:
        delay = retry_delay(job.attempt, self.settings.retry_initial, self.settings.retry_max)
        self.audit.decision(
            "retry",
            action=batch.action,
            key=job.key,
            target=job.host,
            attempt=job.attempt + 1,
            delay=delay,
        )
        job.attempt += 1
        self.dispatcher.retry_later(job, delay)

    async def _add_result(self, batch: Batch, job: Job, result: ItemResult, entry: Entry) -> None:
        status = result.status
        if status == "failed":
            entry.applied = True  # it may have half-applied: revert it later to be sure
        if status in ("ok", "skipped"):
            entry.applied = entry.applied or status == "ok"
            entry.phase = "active"
            entry.busy = False
            self._record(
                entry,
                "applied" if status == "ok" else "not_applied",
                attempt=job.attempt,
                message=result.message or None,
            )
        elif job.attempt < self.settings.add_attempts and not entry.revert_due:
            self._record(
                entry, "add_failed", status=status, attempt=job.attempt, message=result.message or None
            )
            self._retry(job, batch)
            return
        else:
            entry.phase = "active"
            entry.busy = False
            self._record(
                entry, "gave_up", status=status, attempts=job.attempt, message=result.message or None
            )
            self.audit.decision(
                "gave_up", key=entry.key, target=entry.host, attempts=job.attempt, status=status
            )
            self.log.error(
                "%s on %s for %s: gave up after %d attempts (%s: %s)",
                entry.command,
                entry.host,
                entry.subject,
                job.attempt,
                status,
                result.message,
            )
            if entry.expires is None and not entry.applied:
                self.state.remove(entry.key)
                return
        expired = entry.expires is not None and entry.expires <= self.clock()
        if entry.revert_due or expired:
            entry.revert_due = False
            await self._revert(entry, reason="timeout expired while the add was running")

    async def _delete_result(self, batch: Batch, job: Job, result: ItemResult, entry: Entry) -> None:
        if result.status in ("ok", "skipped"):
            entry.busy = False
            self._record(entry, "reverted", attempt=job.attempt, status=result.status)
            if entry.readd:
                await self._readd(entry)
            else:
                self.state.remove(entry.key)
            return
        # Reverts are retried until they work or an operator forgets the entry (tld ar unblock --forget).
        self._record(
            entry, "revert_failed", status=result.status, attempt=job.attempt, message=result.message or None
        )
        if job.attempt % 10 == 0 or job.attempt == 1:
            self.log.error(
                "reverting %s on %s for %s failed (attempt %d, %s: %s); retrying",
                entry.command,
                entry.host,
                entry.subject,
                job.attempt,
                result.status,
                result.message,
            )
        self._retry(job, batch)

    # -- operator requests ---------------------------------------------------------------------------

    async def block(
        self,
        command: str,
        host: str,
        *,
        srcip: str | None = None,
        user: str | None = None,
        timeout: int | None = None,
    ) -> dict[str, Any]:
        """An operator's block: validated, whitelisted and self-protected like an alert's."""
        cmd = self.policy.config.commands.get(command)
        if cmd is None:
            known = ", ".join(self.policy.config.commands) or "none"
            raise EngineError(f"unknown command {command!r} (ossec.conf has: {known})")
        if (srcip is None) == (user is None):
            raise EngineError("give exactly one of srcip and user")
        timeout = 0 if timeout is None else timeout
        if timeout < 0:
            raise EngineError("the timeout must not be negative")
        if timeout > 0 and not cmd.timeout_allowed:
            raise EngineError(
                f"command {command!r} has no <timeout_allowed>yes</timeout_allowed>: it cannot be timed"
            )
        known_hosts = set(self.inventory.hosts) | {IMPLICIT_LOCALHOST}
        if host not in known_hosts:
            raise EngineError(f"{host!r} is not an inventory host")
        kind = subject_of(cmd)
        subject: str
        alert: dict[str, Any]
        if srcip is not None:
            if kind == "user":
                raise EngineError(f"{command!r} acts on a user name, not an address")
            parsed = parse_srcip(srcip)
            if isinstance(parsed, Refusal):
                raise EngineError(str(parsed))
            rule = self.policy.whitelist.match(str(parsed), parsed)
            if rule is not None:
                raise EngineError(f"{parsed} is whitelisted by {rule.describe()}")
            why = self.protection.reason(host, parsed)
            if why is not None:
                raise EngineError(why)
            subject = str(parsed)
            alert = {
                "rule": {"level": 0, "description": "manual block", "id": "0"},
                "data": {"srcip": subject},
            }
        else:
            assert user is not None
            if kind == "srcip":
                raise EngineError(f"{command!r} acts on an address, not a user name")
            checked = check_user(user)
            if isinstance(checked, Refusal):
                raise EngineError(str(checked))
            subject = checked
            alert = {
                "rule": {"level": 0, "description": "manual block", "id": "0"},
                "data": {"dstuser": subject},
            }
        key = make_key(cmd.name, host, subject)
        now = self.clock()
        entry = self.state.active.get(key)
        if entry is not None:
            entry.expires = (
                None if timeout == 0 or entry.expires is None else max(entry.expires, now + timeout)
            )
            self.state.touch(entry)
            self._record(entry, "manual_refresh", expires=entry.expires)
            self._schedule(entry)
            if entry.phase == "reverting":
                if entry.busy:
                    entry.readd = True
                else:
                    await self._readd(entry)
            self.audit.decision(
                "manual_block", key=key, command=cmd.name, target=host, reason="already active: extended"
            )
            self.state.flush()
            return {"ok": True, "key": key, "outcome": "refresh", "expires": entry.expires}
        entry = Entry(
            key=key,
            command=cmd.name,
            executable=cmd.executable,
            host=host,
            srcip=subject if srcip is not None else None,
            user=subject if user is not None else None,
            started=now,
            expires=first_expiry(now, timeout),
            timeout=timeout,
            offences=0,
            phase="adding",
            origin="manual",
            ar_name=f"{cmd.name}{timeout}",
            extra_args=cmd.extra_args,
            busy=True,
        )
        self.state.put(entry, alert)
        self._record(entry, "manual_block", timeout=timeout)
        self.audit.decision("manual_block", key=key, command=cmd.name, target=host, timeout=timeout)
        self._schedule(entry)
        await self._submit_add(entry, alert_json(alert))
        return {"ok": True, "key": key, "outcome": "add", "expires": entry.expires}

    async def unblock(
        self,
        *,
        key: str | None = None,
        srcip: str | None = None,
        host: str | None = None,
        forget: bool = False,
    ) -> dict[str, Any]:
        """Revert (or, with ``forget``, drop without reverting) the named active responses."""
        entries = self.select(key=key, srcip=srcip, host=host)
        if not entries:
            raise EngineError("no active response matches")
        done: list[dict[str, str]] = []
        for entry in entries:
            if forget:
                self.state.remove(entry.key)
                self._record(entry, "forgotten", reason="operator: removed without reverting")
                self.audit.decision(
                    "forgotten", key=entry.key, target=entry.host, reason="tld ar unblock --forget"
                )
                done.append({"key": entry.key, "outcome": "forgotten"})
            elif entry.phase == "reverting":
                done.append(
                    {"key": entry.key, "outcome": f"already being reverted (attempt {entry.attempts})"}
                )
            else:
                self._record(entry, "manual_unblock")
                self.audit.decision("manual_unblock", key=entry.key, target=entry.host)
                await self._revert(entry, reason="operator unblock")
                done.append({"key": entry.key, "outcome": "reverting"})
        self.state.flush()
        return {"ok": True, "unblocked": done}

    def select(
        self, *, key: str | None = None, srcip: str | None = None, host: str | None = None
    ) -> list[Entry]:
        if key is not None:
            entry = self.state.active.get(key)
            return [entry] if entry is not None else []
        if srcip is None:
            raise EngineError("give a key or --srcip")
        parsed = parse_srcip(srcip)
        if isinstance(parsed, Refusal):
            raise EngineError(str(parsed))
        wanted = str(parsed)
        return [
            e for e in self.state.active.values() if e.srcip == wanted and (host is None or e.host == host)
        ]

    def status(self) -> dict[str, Any]:
        phases = Counter(e.phase for e in self.state.active.values())
        st = self.dispatcher.stats
        return {
            "active": len(self.state.active),
            "phases": dict(phases),
            "offenders": len(self.state.offenders),
            "bound_blocks": len(self.policy.bindings),
            "inventory_hosts": len(self.inventory.hosts),
            "queued": self.dispatcher.queued,
            "running": st.running,
            "waiting_retry": st.waiting_retry,
            "batches": st.batches,
            "items": st.items,
            "decisions": dict(self.counts),
        }
