"""One analysis session: pre-decoding, decoding and rule matching with shared correlation state.

``tld logtest``, ``tld analyze`` and the manager daemon each drive a session; sessions never share state.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..ruleset.engine import Match, Node, RuleEngine
from ..ruleset.event import Event
from ..ruleset.loader import Ruleset
from ..ruleset.predecoder import BSD_LINE, predecode_event, predecode_journald, strip_solaris_id
from ..ruleset.rules import Rule
from .alert import TimestampFormatter, alert_line, alert_object
from .alertline import AgentPart, AlertLineEncoder
from .eventtime import ReplayClock
from .linememo import DEFAULT_CAPACITY, LineMemo, Outcome

# Wazuh truncates events at 64 KiB (OS_MAXSTR); longer lines are cut, never rejected.
MAX_EVENT_CHARS = 65536


@dataclass(frozen=True)
class AgentInfo:
    """Who sent an event. The manager itself is agent 000."""

    id: str = "000"
    name: str = ""
    ip: str = ""


def manager_hostname() -> str:
    return socket.gethostname().split(".")[0]


@dataclass(slots=True)
class ProcessResult:
    event: Event
    match: Match
    epoch: float
    counter: int  # the session's event count: the alert id's second part
    manager_name: str
    log_alert_level: int
    stamp: Callable[[float], str]
    encoder: AlertLineEncoder

    @property
    def alert_id(self) -> str:
        """Wazuh's "<seconds>.<counter>"."""
        return f"{int(self.epoch)}.{self.counter}"

    @property
    def rule(self) -> Rule | None:
        return self.match.rule

    @property
    def alert(self) -> bool:
        """A rule of level > 0 matched and its level reaches log_alert_level."""
        rule = self.match.rule
        return self.match.alert and rule is not None and rule.level >= self.log_alert_level

    @property
    def logged(self) -> bool:
        """Written to alerts.json (alert, and the rule does not say no_log)."""
        rule = self.match.rule
        return self.alert and rule is not None and "no_log" not in rule.options

    def output(self) -> dict[str, Any]:
        return alert_object(
            self.event,
            self.match,
            epoch=self.epoch,
            alert_id=self.alert_id,
            manager_name=self.manager_name,
            timestamp=self.stamp(self.epoch),
        )

    def output_line(self) -> bytes:
        """output() as one compact alerts.json line (UTF-8, no newline)."""
        match = self.match
        if match.rule is None:
            return alert_line(self.output())
        event, encoder = self.event, self.encoder
        agent = encoder.agent_part(event.agent_id, event.agent_name, event.agent_ip, self.manager_name)
        line = encoder.line(
            event, match.rule, match.firedtimes, match.previous, self.epoch, self.counter, agent
        )
        return line[:-1]


@dataclass
class AnalysisSession:
    ruleset: Ruleset
    log_alert_level: int = 3
    manager_name: str = field(default_factory=manager_hostname)
    # Event time: wall clock by default; a replay passes a function of the event.
    clock: Callable[[Event], float] | None = None
    # Decoding and stateless rule walks of repeated messages are reused (linememo.py); 0 turns it off.
    memo_capacity: int = DEFAULT_CAPACITY
    engine: RuleEngine = field(init=False)
    memo: LineMemo = field(init=False)
    _counter: int = 0
    _stamp: TimestampFormatter = field(default_factory=TimestampFormatter)
    _encoder: AlertLineEncoder = field(default_factory=AlertLineEncoder)

    def __post_init__(self) -> None:
        self.engine = RuleEngine(self.ruleset.rules)
        self.memo = LineMemo(self.memo_capacity)

    def process(self, line: str, location: str = "stdin", agent: AgentInfo | None = None) -> ProcessResult:
        if len(line) > MAX_EVENT_CHARS:
            line = line[:MAX_EVENT_CHARS]
        event = predecode_event(line, location)
        now, match = self._evaluate(event, agent)
        return self._result(event, match, now)

    def process_journald(
        self, record: Mapping[str, Any], location: str = "journald", agent: AgentInfo | None = None
    ) -> ProcessResult:
        full_log, pre = predecode_journald(record)
        event = Event.from_predecoded(pre, full_log[:MAX_EVENT_CHARS], location)
        now, match = self._evaluate(event, agent)
        return self._result(event, match, now)

    def process_alert(
        self, line: str, location: str = "stdin", agent: AgentInfo | None = None
    ) -> ProcessResult | None:
        """process() for callers that only want alerts: None when the line gives none.

        Engine state, alert ids and firedtimes evolve exactly as with process(); only the objects for
        events that are not alerts are never built.
        """
        for event, now, node, firedtimes, previous in self._alerting((line,), location, agent):
            return self._result(event, Match(node.rule, firedtimes, previous, alert=True), now)
        return None

    def alert_rules(
        self, lines: Iterable[str], location: str = "stdin", agent: AgentInfo | None = None
    ) -> Iterator[Rule]:
        """The rule of each alert ``lines`` give, in order; state evolves as with process() per line.

        The per-line loop of ``tld analyze`` without --alerts: nothing is built for an alert but its rule.
        """
        return (alert[2].rule for alert in self._alerting(lines, location, agent))

    def alert_lines(
        self, lines: Iterable[str], location: str = "stdin", agent: AgentInfo | None = None
    ) -> Iterator[tuple[Rule, bytes | None]]:
        """alert_rules with each alert's alerts.json line (newline included; None when the rule says
        no_log): the line process(line).output_line() gives, made without the objects process() makes.
        """
        encoder = self._encoder
        encode = encoder.line
        agent_part: AgentPart | None = None  # every event here has the same agent: made once
        for event, now, node, firedtimes, previous in self._alerting(lines, location, agent):
            rule = node.rule
            if "no_log" in rule.options:
                yield rule, None
                continue
            if agent_part is None:
                agent_part = encoder.agent_part(
                    event.agent_id, event.agent_name, event.agent_ip, self.manager_name
                )
            yield rule, encode(event, rule, firedtimes, previous, now, self._counter, agent_part)

    def _alerting(
        self, lines: Iterable[str], location: str, agent: AgentInfo | None
    ) -> Iterator[tuple[Event, float, Node, int, list[Event]]]:
        """The alerts ``lines`` give, in order: (event, event time, the node that fires, its firedtimes,
        the correlated events), with the session's counter at that line's value.

        Pre-decodes, decodes, walks and settles each line exactly as process() would. This is the
        per-line path of tld analyze, so what process() shares through _walk and RuleEngine.settle is
        written out here, and what every line uses is looked up once.
        """
        memo = self.memo
        clock = self.clock
        replay = clock if type(clock) is ReplayClock else None
        # A remembered quiet walk may skip the Event unless a clock other than the replay one reads it.
        skip_quiet = clock is None or replay is not None
        decode = self.ruleset.decoders.decode
        walk = self.engine.walk
        fire = self.engine.fire
        level = self.log_alert_level
        match_header = BSD_LINE.match
        counter = self._counter  # kept in a local, stored before each yield and at the end
        try:
            for text in lines:
                line = text if len(text) <= MAX_EVENT_CHARS else text[:MAX_EVENT_CHARS]
                head = match_header(line)
                if head is None:
                    event = predecode_event(line, location)
                    key = (event.program_name, event.log)
                    known = memo.young.get(key)
                    if known is None:
                        # LineMemo.recall written out.
                        known = memo.old.get(key)
                        if known is not None:
                            memo.keep(key, known)
                else:
                    # bsd_header() written out (the common BSD header).
                    timestamp, host, program, _pid, log = head.groups(default="")
                    if log.startswith("[ID "):
                        log = strip_solaris_id(log)
                    key = (program, log)
                    known = memo.young.get(key)
                    if known is None:
                        # LineMemo.recall written out.
                        known = memo.old.get(key)
                        if known is not None:
                            memo.keep(key, known)
                    if known is not None and known.quiet and skip_quiet:
                        # A remembered walk that ends in no rule or a level-0 rule: settling would
                        # change nothing, so no Event is needed. Only the replay clock's memory (the
                        # time of lines without a timestamp) and the counter move, as they would.
                        if replay is not None:
                            replay.time_of(timestamp)
                        counter += 1
                        continue
                    event = Event(line, location, log, program, timestamp, host, True)
                if agent is not None:
                    event.agent_id, event.agent_name, event.agent_ip = agent.id, agent.name, agent.ip
                if known is None:
                    lowered = event.log.lower()
                    decode(event, lowered)
                else:
                    # Outcome.apply written out.
                    event.decoder_name = known.decoder_name
                    event.decoder_parent = known.decoder_parent
                    event.decoder_id = known.decoder_id
                    if known.fields is not None:
                        event.fields = known.fields.copy()
                # The clock reads the event after decoding, as in _walk (a ReplayClock only its timestamp).
                if replay is not None:
                    now = replay.time_of(event.timestamp)
                else:
                    now = clock(event) if clock is not None else time.time()
                if known is None:
                    walked = walk(event, lowered, now)
                    memo.put(key, event, walked)
                    final, parent_of_final, previous = walked.final, walked.parent_of_final, walked.previous
                elif known.kept:
                    # A remembered walk searched no correlation memory: its previous list is empty, and
                    # a fresh one keeps Match.previous from being shared between events.
                    final, parent_of_final, previous = known.final, known.parent_of_final, []
                else:
                    walked = walk(event, event.log.lower(), now)
                    final, parent_of_final, previous = walked.final, walked.parent_of_final, walked.previous
                counter += 1
                if final is None or final.rule.level == 0:
                    continue  # settling would change nothing and give no alert
                fired = fire(event, now, final, parent_of_final, previous)
                if fired is None or fired[0].rule.level < level:
                    continue
                self._counter = counter
                yield event, now, fired[0], fired[1], fired[2]
                counter = self._counter  # the consumer may have processed lines meanwhile
        except GeneratorExit:
            raise  # closed at a yield, where the counter was stored
        except BaseException:
            self._counter = counter
            raise
        self._counter = counter

    def _evaluate(self, event: Event, agent: AgentInfo | None) -> tuple[float, Match]:
        if agent is not None:
            event.agent_id, event.agent_name, event.agent_ip = agent.id, agent.name, agent.ip
        now, final, parent_of_final, previous = self._walk(
            event, self.memo.get(event.program_name, event.log)
        )
        self._counter += 1
        return now, self.engine.settle(event, now, final, parent_of_final, previous)

    def _walk(
        self, event: Event, known: Outcome | None
    ) -> tuple[float, Node | None, Node | None, list[Event]]:
        """Decode ``event`` and walk the rules, or reuse ``known``, the memo's outcome for its message.

        Returns the event time, the final node, its parent and the correlated events.
        """
        if known is None:
            lowered = event.log.lower()
            self.ruleset.decoders.decode(event, lowered)
            now = self.clock(event) if self.clock is not None else time.time()
            walk = self.engine.walk(event, lowered, now)
            self.memo.put((event.program_name, event.log), event, walk)
            return now, walk.final, walk.parent_of_final, walk.previous
        known.apply(event)
        now = self.clock(event) if self.clock is not None else time.time()
        if known.kept:
            # A fresh list: Match.previous must never be shared between events.
            return now, known.final, known.parent_of_final, []
        walk = self.engine.walk(event, event.log.lower(), now)
        return now, walk.final, walk.parent_of_final, walk.previous

    def _result(self, event: Event, match: Match, now: float) -> ProcessResult:
        return ProcessResult(
            event,
            match,
            now,
            self._counter,
            self.manager_name,
            self.log_alert_level,
            self._stamp,
            self._encoder,
        )
