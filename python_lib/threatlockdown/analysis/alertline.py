"""alerts.json lines assembled from pre-serialised parts: the bytes of alert_line(alert_object(...)).

Most of an alert never changes from one alert of a rule to the next (its level, id, MITRE object,
groups and compliance lists), nor from one event of an agent, decoder or minute to the next. Those parts
are serialised once and kept as bytes. Per alert only the counters, the alert id, the seconds of the
timestamp and the event's own values (full log, pre-decoder, data, location) are serialised, the last
group in one orjson call. ``tld analyze --alerts`` writes one line per alert, so every operation here
is paid about 100,000 times on the 250,000-line benchmark; the code is written out for that.

Anything orjson refuses (a lone surrogate kept from undecodable input) goes through alert_line
instead, so such an alert gets exactly the bytes it always had.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from ..ruleset.engine import Match
from ..ruleset.event import Event
from ..ruleset.rules import Rule
from .alert import (
    STATIC_FIELDS,
    alert_line,
    alert_object,
    data_object,
    describe,
    format_timestamp,
    minute_texts,
    predecoder_fields,
    static_parts,
)

# Caches keyed by values that come from logs or agents start again empty past this many entries.
MAX_CACHED = 4096
_STATIC_FIELD_SET = frozenset(STATIC_FIELDS)
_dumps = orjson.dumps
# "SS.000" by the offset of a whole second from the start of its minute (0.0 to 59.0). The offset is
# looked up as epoch - start: for an epoch inside the minute the difference is exact (Sterbenz lemma),
# so a key is found exactly when the epoch is a whole second of the minute; from any other epoch the
# difference is not a whole number from 0 to 59.
_WHOLE_SECONDS = {float(second): b"%02d.000" % second for second in range(60)}
# How data_object orders a fields dict with given names: True when they are already in that order,
# False when some name nests (has a dot), else a dict of the names in that order, to be filled.
_DataPlan = bool | dict[str, None]


class AgentPart:
    """The "agent" and "manager" keys of an alert, serialised (None: orjson refused a name)."""

    __slots__ = ("manager_name", "text")

    def __init__(self, text: bytes | None, manager_name: str) -> None:
        self.text = text
        self.manager_name = manager_name


class _RuleParts:
    """One rule's alert text: ``before`` runs from the end of the timestamp through "id" and "mitre"
    (the description in it unless it has $(field)), ``after`` from "mail" to the comma before "agent".
    """

    __slots__ = ("after", "before", "counted", "described", "frequency", "full_log", "middle", "plain")

    def __init__(self, rule: Rule) -> None:
        mitre_part, tail, rule_id = static_parts(rule)
        ident: dict[str, Any] = {"id": rule_id}
        if mitre_part is not None:
            ident["mitre"] = mitre_part
        # orjson gives {...}: the inner text continues the rule object after the description.
        rest = b"," + _dumps(ident)[1:-1]
        start = b'","rule":{"level":%d,"description":' % rule.level
        self.described = "$(" in rule.description
        if self.described:
            self.before, self.middle = start, rest
        else:
            self.before, self.middle = start + _dumps(rule.description) + rest, b""
        self.frequency = b"" if rule.frequency is None else b',"frequency":%d' % rule.frequency
        self.counted = "no_counter" not in rule.options
        self.full_log = "no_full_log" not in rule.options
        # tail always holds "mail": its inner text is never empty.
        self.after = b"," + _dumps(tail)[1:] + b","
        # The description is fixed and firedtimes counted: the shortest way through line().
        self.plain = self.counted and not self.described


class AlertLineEncoder:
    """Builds alerts.json lines for one session, remembering the serialised parts it has made.

    Not thread-safe (like the session that owns it).
    """

    __slots__ = ("_agents", "_data_plans", "_decoders", "_head", "_minute", "_rules", "_start", "_zone")

    def __init__(self) -> None:
        self._rules: dict[Rule, _RuleParts] = {}
        self._agents: dict[tuple[str, str, str, str], AgentPart] = {}
        # (decoder parent, decoder name) -> the serialised decoder object
        self._decoders: dict[tuple[str, str], orjson.Fragment] = {}
        # the names of a fields dict, in order -> its data plan
        self._data_plans: dict[tuple[str, ...], _DataPlan] = {}
        # The remembered minute (see minute_texts): its number, first second (NaN: none) and texts.
        self._minute: int | None = None
        self._start = float("nan")
        self._head = b""
        self._zone = b""

    def agent_part(self, agent_id: str, agent_name: str, agent_ip: str, manager_name: str) -> AgentPart:
        """The "agent" and "manager" keys of alerts of this agent, for line()."""
        who = (agent_id, agent_name, agent_ip, manager_name)
        part = self._agents.get(who)
        if part is None:
            agent: dict[str, str] = {"id": agent_id, "name": agent_name or manager_name}
            if agent_ip:
                agent["ip"] = agent_ip
            text: bytes | None
            try:
                text = b'"agent":%b,"manager":%b,' % (_dumps(agent), _dumps({"name": manager_name}))
            except TypeError:  # orjson.JSONEncodeError is one
                text = None
            part = AgentPart(text, manager_name)
            if len(self._agents) >= MAX_CACHED:
                self._agents.clear()
            self._agents[who] = part
        return part

    def line(
        self,
        event: Event,
        rule: Rule,
        firedtimes: int,
        previous: list[Event],
        epoch: float,
        counter: int,
        agent: AgentPart,
    ) -> bytes:
        """The alerts.json line, newline included, of the alert ``rule`` fired for ``event``:
        alert_line(alert_object(...)) + newline.

        ``previous``: the correlated events, newest first; the alert id is "<int(epoch)>.<counter>";
        ``agent``: agent_part() of the event's agent and the manager.
        """
        try:
            agent_text = agent.text
            if agent_text is None:
                raise TypeError("the agent has a name orjson refuses")
            parts = self._rules.get(rule)
            if parts is None:
                parts = self._rules[rule] = _RuleParts(rule)
            second = _WHOLE_SECONDS.get(epoch - self._start)
            if second is None:
                second = self._seconds(epoch)
            decoder = None
            if event.decoder_name:
                decoder = self._decoders.get((event.decoder_parent, event.decoder_name))
                if decoder is None:
                    decoder = self._decoder_part(event)
            data: dict[str, Any] = event.fields
            if data:
                names = tuple(data)
                plan = self._data_plans.get(names)
                if plan is None:
                    plan = self._data_plan(names)
                if plan is False:
                    data = data_object(data)
                elif plan is not True:
                    # The plan's keys are the fields' names in data order, which an update keeps.
                    data = {**plan, **data}
            if (
                event.hostname_in_alert
                and event.hostname
                and event.program_name
                and event.timestamp
                and decoder is not None
                and data
                and parts.full_log
                and not previous
            ):
                # The usual syslog alert, built in one go.
                rest: dict[str, Any] = {
                    "full_log": event.full_log,
                    "predecoder": {
                        "program_name": event.program_name,
                        "timestamp": event.timestamp,
                        "hostname": event.hostname,
                    },
                    "decoder": decoder,
                    "data": data,
                    "location": event.location,
                }
            else:
                rest = _rest(event, parts.full_log, previous, decoder, data)
            # In both: "%d" of a float is its int(), the alert id's seconds.
            if parts.plain and not previous:
                return b"".join(
                    (
                        b'{"timestamp":"',
                        self._head,
                        second,
                        self._zone,
                        parts.before,
                        b',"firedtimes":%d' % firedtimes,
                        parts.after,
                        agent_text,
                        b'"id":"%d.%d",' % (epoch, counter),
                        _dumps(rest)[1:],
                        b"\n",
                    )
                )
            return b"".join(
                (
                    b'{"timestamp":"',
                    self._head,
                    second,
                    self._zone,
                    parts.before,
                    _dumps(describe(rule, event)) + parts.middle if parts.described else b"",
                    parts.frequency if previous else b"",
                    b',"firedtimes":%d' % firedtimes if parts.counted else b"",
                    parts.after,
                    agent_text,
                    b'"id":"%d.%d",' % (epoch, counter),
                    _dumps(rest)[1:],
                    b"\n",
                )
            )
        except TypeError:  # orjson.JSONEncodeError is one
            match = Match(rule, firedtimes, previous, alert=True)
            obj = alert_object(
                event,
                match,
                epoch=epoch,
                alert_id=f"{int(epoch)}.{counter}",
                manager_name=agent.manager_name,
                shared=True,
            )
            return alert_line(obj) + b"\n"

    def _seconds(self, epoch: float) -> bytes:
        """The timestamp text of ``epoch`` that follows the remembered minute's head, after making the
        epoch's minute the remembered one; without a head (minute_texts gave None) the whole text."""
        second, millis = divmod(math.floor(epoch * 1000 + 0.001), 1000)  # as alert._split_millis
        minute, sec = divmod(second, 60)
        if minute != self._minute:
            texts = minute_texts(minute)
            if texts is None:
                self._minute, self._start, self._head, self._zone = None, float("nan"), b"", b""
                return format_timestamp(epoch).encode()
            self._minute, self._start = minute, float(minute * 60)
            self._head, self._zone = texts[0].encode(), texts[1].encode()
        return b"%02d.%03d" % (sec, millis)

    def _decoder_part(self, event: Event) -> orjson.Fragment:
        decoder: dict[str, str] = {}
        if event.decoder_parent:
            decoder["parent"] = event.decoder_parent
        decoder["name"] = event.decoder_name
        fragment = orjson.Fragment(_dumps(decoder))
        if len(self._decoders) >= MAX_CACHED:
            self._decoders.clear()
        self._decoders[(event.decoder_parent, event.decoder_name)] = fragment
        return fragment

    def _data_plan(self, names: tuple[str, ...]) -> _DataPlan:
        plan: _DataPlan = True
        if any("." in name for name in names):
            plan = False
        else:
            present = frozenset(names)
            order = tuple(name for name in STATIC_FIELDS if name in present) + tuple(
                name for name in names if name not in _STATIC_FIELD_SET
            )
            if order != names:
                plan = dict.fromkeys(order)
        if len(self._data_plans) >= MAX_CACHED:
            self._data_plans.clear()
        self._data_plans[names] = plan
        return plan


def _rest(
    event: Event,
    full_log: bool,
    previous: list[Event],
    decoder: orjson.Fragment | None,
    data: dict[str, Any],
) -> dict[str, Any]:
    """The alert's keys after "id", in alert_object's order (any event)."""
    rest: dict[str, Any] = {}
    if previous:
        rest["previous_output"] = "\n".join([e.full_log for e in previous])
    if full_log:
        rest["full_log"] = event.full_log
    pre = predecoder_fields(event)
    if pre:
        rest["predecoder"] = pre
    if decoder is not None:
        rest["decoder"] = decoder
    if data:
        rest["data"] = data
    rest["location"] = event.location
    return rest
