"""What the engine decides for one planned response, given the state; shared by the engine and
``tld ar simulate`` so that a simulation says exactly what the engine would do."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from .alertfacts import AlertFacts
from .policy import AlertPlan, Intent, Skip
from .settings import ResponseSettings
from .state import Entry, Offender
from .timeouts import first_expiry, offence_number, refreshed_expiry, timeout_for

Outcome = Literal["add", "refresh", "readd", "run", "skipped", "refused"]


@dataclass(slots=True)  # not frozen: built per decision, and frozen dataclasses are slow to build
class Decision:
    outcome: Outcome
    reason: str
    key: str | None = None
    command: str | None = None
    target: str | None = None
    srcip: str | None = None
    user: str | None = None
    timeout: int = 0
    expires: float | None = None
    offences: int = 0
    rule_id: int | None = None
    alert_id: str | None = None
    block: str | None = None  # the <active-response>: "ossec.conf:42 firewall-drop600"

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(slots=True)
class Preview:
    outcome: Outcome
    offence: int
    timeout: int
    expires: float | None


def preview(
    intent: Intent, entry: Entry | None, offender: Offender | None, now: float, settings: ResponseSettings
) -> Preview:
    """The outcome of ``intent`` at ``now``: add, refresh (Wazuh's abort), re-add or a one-shot run."""
    b = intent.binding
    if not b.stateful:
        return Preview("run", 0, 0, None)
    n = offence_number(
        offender.count if offender else 0, offender.last if offender else None, now, settings.offender_reset
    )
    timeout = timeout_for(n, b.response.timeout, b.offenders)
    if entry is None:
        return Preview("add", n, timeout, first_expiry(now, timeout))
    expires = refreshed_expiry(entry.expires, now, timeout)
    return Preview("readd" if entry.phase == "reverting" else "refresh", n, timeout, expires)


def refresh_decision(
    intent: Intent,
    entry: Entry,
    offender: Offender | None,
    facts: AlertFacts,
    now: float,
    settings: ResponseSettings,
) -> Decision:
    """``decision_of(intent, facts, preview(...))`` when ``preview`` says "refresh" (a stateful intent
    whose key is being added or is active): the most frequent decision, built without the Preview.
    A unit test holds the two equal.

    offence_number, timeout_for and refreshed_expiry are written out here (a Python call costs more
    than each of them): the same arithmetic, see timeouts.py for the rules."""
    b = intent.binding
    reset = settings.offender_reset
    if offender is None or offender.count <= 0 or (reset > 0 and now - offender.last >= reset):
        n = 1
    else:
        n = offender.count + 1
    timeout = base = b.response.timeout
    repeated = b.offenders
    if base <= 0:
        timeout = 0
    elif n > 1 and repeated:
        index, last = n - 2, len(repeated) - 1
        timeout = repeated[index if index < last else last] * 60
    expires = entry.expires
    if expires is not None and timeout > 0:
        later = now + timeout
        if later > expires:
            expires = later
    else:
        expires = None
    return Decision(
        "refresh", intent.refresh_reason, intent.key, b.command.name, intent.host, intent.srcip,
        intent.user, timeout, expires, n, facts.rule_id, facts.alert_id or None, b.label,
    )  # fmt: skip


def reason_of(outcome: Outcome, intent: Intent, p: Preview) -> str:
    b = intent.binding
    if outcome == "refresh":  # most decisions of an attack: the text is built once per intent
        return intent.refresh_reason
    lasts = (
        f"for {p.timeout} s" if p.timeout else "until reverted" if b.stateful else "once (no timeout_allowed)"
    )
    offence = f", offence {p.offence}" if p.offence > 1 else ""
    if outcome == "add":
        return f"{intent.why}: {b.command.name} {lasts}{offence}"
    if outcome == "readd":
        return f"{intent.why}: being reverted; applied again {lasts}{offence}"
    return f"{intent.why}: {b.command.name} runs once (the command has no timeout_allowed)"


def decision_of(intent: Intent, facts: AlertFacts, p: Preview, reason: str | None = None) -> Decision:
    b = intent.binding
    # Positional: built for every decision, and keyword arguments cost twice as much.
    return Decision(
        p.outcome, reason or reason_of(p.outcome, intent, p), intent.key, b.command.name, intent.host,
        intent.srcip, intent.user, p.timeout, p.expires, p.offence, facts.rule_id, facts.alert_id or None,
        b.label,
    )  # fmt: skip


def skip_decision(skip: Skip, facts: AlertFacts) -> Decision:
    b = skip.binding
    return Decision(
        outcome=skip.outcome,
        reason=skip.reason,
        key=skip.key,
        command=b.command.name if b is not None else None,
        target=skip.host,
        rule_id=facts.rule_id,
        alert_id=facts.alert_id or None,
        block=b.label if b is not None else None,
    )


def simulate_plan(
    plan: AlertPlan,
    active: Mapping[str, Entry],
    offenders: Mapping[str, Offender],
    now: float,
    settings: ResponseSettings,
) -> list[Decision]:
    """The decisions for ``plan`` against a state, changing nothing."""
    out = [skip_decision(s, plan.facts) for s in plan.skips]
    for intent in plan.intents:
        p = preview(intent, active.get(intent.key), offenders.get(intent.key), now, settings)
        out.append(decision_of(intent, plan.facts, p))
    return out
