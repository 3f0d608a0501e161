"""Which responses an alert asks for, and on which hosts: Wazuh 4.x binding and location rules.

Binding (Wazuh's ``Rule_AddAR``): rules of level 0 or with ``no_ar`` never trigger. With both
``<level>`` and ``<rules_group>`` set, a rule needs ``level >= <level>`` AND a group match; otherwise
either one suffices; ``<rules_id>`` is OR-ed on top. ``<rules_group>`` is an OS_Regex searched in the
comma-joined group string (``sshd,|pci_dss_11.4,``). A block with none of the three binds nothing.

Locations: ``local`` is the host that produced the event (the manager for agent 000), ``server`` the
manager, ``defined-agent`` the agent of ``<agent_id>``, ``all`` every inventory host except the manager
(Wazuh: every connected agent, never the manager). ``<target>`` (ours, not Wazuh's) narrows the hosts
of the location to an inventory group or host pattern.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..config.model import (
    LOCATION_ALL,
    LOCATION_DEFINED_AGENT,
    LOCATION_LOCAL,
    LOCATION_SERVER,
    ActiveResponse,
    Command,
    OssecConfig,
)
from ..errors import SourceError, SourceErrors
from ..ruleset.osregex import OsRegex, PatternError, compile_os_regex
from .alertfacts import MANAGER_AGENT_ID, AlertFacts, group_string_of
from .inventory import Inventory, hosts_text
from .selfprotect import SelfProtection
from .validate import IPAddress, Refusal, check_user, dotted_quad, parse_srcip_text, strip_mapped
from .whitelist import WhiteList

Subject = Literal["srcip", "user", "auto"]
IMPLICIT_LOCALHOST = "localhost"  # Ansible's implicit local host: the manager when it is not listed

# Wazuh's stock executables and what they act on; anything else uses srcip if the alert has one,
# else dstuser.
SRCIP_EXECUTABLES = frozenset(
    (
        "firewall-drop",
        "firewalld-drop",
        "host-deny",
        "route-null",
        "route-null.exe",
        "netsh",
        "netsh.exe",
        "pf",
        "ipfw",
        "npf",
        "ip-customblock",
        "nftables-drop",
    )
)
USER_EXECUTABLES = frozenset(("disable-account",))
_BOUND_CACHE_LIMIT = 10_000
# Enough for the attackers active at one time; a wave of more distinct addresses only costs recomputing.
_SRCIP_CACHE_LIMIT = 20_000


def subject_of(command: Command) -> Subject:
    if command.executable in SRCIP_EXECUTABLES:
        return "srcip"
    if command.executable in USER_EXECUTABLES:
        return "user"
    return "auto"


def make_key(command: str, host: str, subject: str | None) -> str:
    """The state key: ``command/host/subject`` (subject ``-`` for a response that acts on neither)."""
    return f"{command}/{host}/{subject or '-'}"


def split_key(key: str) -> tuple[str, str, str] | None:
    """(command, host, subject) of a key, or None when it is not one."""
    first, last = key.find("/"), key.rfind("/")
    if first <= 0 or last <= first + 1 or last == len(key) - 1:
        return None
    return key[:first], key[first + 1 : last], key[last + 1 :]


@dataclass(frozen=True)
class Binding:
    """One enabled <active-response> block with its command."""

    index: int  # order in ossec.conf
    response: ActiveResponse
    command: Command
    group_regex: OsRegex | None
    offenders: tuple[int, ...]  # repeated_offenders minutes: the block's own, else execd's first
    subject: Subject

    @property
    def where(self) -> str:
        r = self.response
        return f"{r.path}:{r.line}" if r.line else r.path

    @functools.cached_property
    def name(self) -> str:
        """Wazuh's name for the response, e.g. ``firewall-drop600``."""
        return self.response.name

    @functools.cached_property
    def label(self) -> str:
        """``ossec.conf:42 firewall-drop600``: where the block is, for messages and the audit."""
        return f"{self.where} {self.name}"

    @functools.cached_property  # read for every decision
    def stateful(self) -> bool:
        """Recorded and revertable (``<timeout_allowed>yes``); otherwise a one-shot action."""
        return self.command.timeout_allowed

    def binds(self, level: int, group_string: str, rule_id: int) -> bool:
        r = self.response
        if r.level and self.group_regex is not None:
            hit = level >= r.level and self.group_regex.search(group_string) is not None
        else:
            hit = bool(r.level) and level >= r.level
            hit = hit or (self.group_regex is not None and self.group_regex.search(group_string) is not None)
        return hit or rule_id in r.rules_id


@dataclass(slots=True)  # built per alert: a frozen dataclass costs more to build
class Intent:
    """A response to carry out (or refresh) on one host."""

    binding: Binding
    host: str
    why: str  # how the host was chosen
    key: str
    srcip: str | None
    user: str | None
    # Built once: intents are cached with the plan, and a refresh is the most frequent decision.
    refresh_reason: str = field(init=False)
    # The engine's JSON audit members of a refresh that never change for this intent (before and after
    # the per-alert ones), serialised on first use.
    refresh_audit: tuple[bytes, bytes] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.refresh_reason = (
            f"{self.why}: already active; expiry extended, not executed again (Wazuh's abort)"
        )


@dataclass(frozen=True, slots=True)
class Skip:
    """A response (or a whole alert's responses) not carried out, and why."""

    outcome: Literal["skipped", "refused"]
    reason: str
    binding: Binding | None = None
    host: str | None = None
    key: str | None = None


# What Policy.planned answers: the bound blocks, the responses to carry out, what was skipped or refused.
Planned = tuple[tuple[Binding, ...], tuple[Intent, ...], tuple[Skip, ...]]


@dataclass(slots=True)
class AlertPlan:
    facts: AlertFacts
    bindings: tuple[Binding, ...]
    intents: list[Intent] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    unbound: str = ""  # why nothing is bound, for `tld ar simulate`


class Policy:
    """The enabled bindings of an ossec.conf, ready to be asked about alerts."""

    def __init__(
        self,
        config: OssecConfig,
        *,
        manager_host: str | None = None,
        manager_mode: bool = True,
        agents: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.manager_host = manager_host
        self.manager_mode = manager_mode  # running on the manager: it can be reached as localhost
        self.agents = dict(agents or {})  # agent id -> name (client.keys), for defined-agent
        self.whitelist = WhiteList(config.global_.white_list)
        bindings: list[Binding] = []
        errors: list[SourceError] = []
        for index, response in enumerate(config.active_responses):
            if response.disabled:
                continue
            command = config.commands.get(response.command)
            if command is None:  # the config reader already refused this; be safe
                errors.append(
                    SourceError(
                        response.path, response.line, "command", f"unknown command {response.command!r}"
                    )
                )
                continue
            group_regex = None
            if response.rules_group is not None:
                try:
                    group_regex = compile_os_regex(response.rules_group)
                except PatternError as exc:
                    errors.append(SourceError(response.path, response.line, "rules_group", str(exc)))
                    continue
            if response.target is not None:
                problem = target_problem(response.target)
                if problem is not None:
                    errors.append(SourceError(response.path, response.line, "target", problem))
                    continue
            offenders = response.repeated_offenders or config.execd_repeated_offenders
            bindings.append(Binding(index, response, command, group_regex, offenders, subject_of(command)))
        if errors:
            raise SourceErrors(errors)
        self.bindings = tuple(bindings)
        self._cache: dict[tuple[int, int, str], tuple[Binding, ...]] = {}
        # Per rule id: the raw group lists of the last alert and the group string built from them.
        self._groups: dict[int, tuple[tuple[Any, ...], str]] = {}
        # Per raw srcip text: the canonical address text (or None) and why it cannot be acted on (or
        # None). Not the ipaddress object: the cache holds thousands and nothing needs it after the check.
        self._srcips: dict[str, tuple[str | None, Skip | None]] = {}
        self._hosts_cache: dict[tuple[int, str, str, str], tuple[list[tuple[str, str]], list[str]]] = {}
        self._hosts_inventory: Inventory | None = None
        self._plans: dict[tuple[Any, ...], Planned] = {}
        self._plan_inventory: Inventory | None = None
        self._plan_protection: SelfProtection | None = None

    @property
    def disabled_reason(self) -> str | None:
        """Wazuh's execd obeys the first <disabled>yes it finds; a block holding only that turns
        every response off here too (a <disabled> inside a block only disables that block)."""
        if self.config.execd_disabled and not any(r.disabled for r in self.config.active_responses):
            return f"active response is disabled by <disabled>yes</disabled> in {self.config.path}"
        return None

    # -- binding -------------------------------------------------------------------------------------

    def group_string(self, facts: AlertFacts) -> str:
        """The rule's group string: exact from the manager, else rebuilt from the alert (cached per rule
        id, checked against the alert's group lists so a changed rule is noticed)."""
        if facts.group_string is not None:
            return facts.group_string
        rule = facts.rule
        if type(rule) is not dict and not isinstance(rule, Mapping):
            return ""
        # The values of GROUP_KEYS, spelled out (a tuple display costs less than a call or map(); a
        # unit test changes each of them in turn and expects the change to be noticed).
        get = rule.get
        raw = (get("groups"), get("pci_dss"), get("gdpr"), get("gpg13"), get("hipaa"), get("nist_800_53"),
               get("tsc"), get("cis"))  # fmt: skip
        cached = self._groups.get(facts.rule_id)
        if cached is not None and cached[0] == raw:
            return cached[1]
        text = group_string_of(rule)
        if len(self._groups) >= _BOUND_CACHE_LIMIT:
            self._groups.clear()
        self._groups[facts.rule_id] = (raw, text)
        return text

    def bound(self, facts: AlertFacts, groups: str | None = None) -> tuple[Binding, ...]:
        """The bindings of the alert's rule; ``groups``: its group string, if already known."""
        if facts.level <= 0 or facts.no_ar:
            return ()
        cache_key = (facts.rule_id, facts.level, groups if groups is not None else self.group_string(facts))
        found = self._cache.get(cache_key)
        if found is None:
            groups = cache_key[2]
            found = tuple(b for b in self.bindings if b.binds(facts.level, groups, facts.rule_id))
            if len(self._cache) >= _BOUND_CACHE_LIMIT:
                self._cache.clear()
            self._cache[cache_key] = found
        return found

    # -- hosts ---------------------------------------------------------------------------------------

    def manager_host_of(self, inventory: Inventory, manager_name: str = "") -> str | None:
        """The inventory host of the manager: <manager_host>, the host with agent id 000, the host named
        like the manager, else (when running on the manager) Ansible's implicit localhost."""
        if self.manager_host:
            return self.manager_host
        host = inventory.by_agent_id.get(MANAGER_AGENT_ID)
        if host is None and manager_name:
            host = inventory.by_agent_name.get(manager_name)
        if host is None and self.manager_mode:
            host = IMPLICIT_LOCALHOST
        return host

    def _hosts(
        self, binding: Binding, facts: AlertFacts, inventory: Inventory
    ) -> tuple[list[tuple[str, str]], list[str]]:
        """hosts_for, cached per binding and event origin (alerts from one agent repeat)."""
        if inventory is not self._hosts_inventory:
            self._hosts_cache.clear()
            self._hosts_inventory = inventory
        key = (binding.index, facts.agent_id, facts.agent_name, facts.manager_name)
        found = self._hosts_cache.get(key)
        if found is None:
            if len(self._hosts_cache) >= _BOUND_CACHE_LIMIT:
                self._hosts_cache.clear()
            found = self._hosts_cache[key] = self.hosts_for(binding, facts, inventory)
        return found

    def hosts_for(
        self, binding: Binding, facts: AlertFacts, inventory: Inventory
    ) -> tuple[list[tuple[str, str]], list[str]]:
        """[(host, why)] for the binding's locations, and the reasons of locations that found no host."""
        r = binding.response
        found: dict[str, str] = {}
        problems: list[str] = []
        manager_name = facts.manager_name or (facts.agent_name if facts.from_manager else "")
        manager = self.manager_host_of(inventory, manager_name)
        no_manager = (
            "the manager is not in the inventory (set <manager_host> in etc/response.xml, or "
            "threatlockdown_agent_id: '000' on its host)"
        )
        if LOCATION_SERVER in r.locations:
            if manager is None:
                problems.append(f"location server: {no_manager}")
            else:
                found.setdefault(manager, "location server (the manager)")
        if LOCATION_LOCAL in r.locations:
            if facts.from_manager:
                if manager is None:
                    problems.append(f"location local, event from the manager: {no_manager}")
                else:
                    found.setdefault(manager, "location local (the event came from the manager)")
            else:
                host = inventory.agent_host(facts.agent_id, facts.agent_name)
                if host is None:
                    problems.append(
                        f"location local: agent {facts.agent_id} ({facts.agent_name or 'no name'}) has no "
                        f"inventory host (none named {facts.agent_name!r}, none with "
                        f"threatlockdown_agent_name {facts.agent_name!r} or threatlockdown_agent_id "
                        f"{facts.agent_id!r})"
                    )
                else:
                    found.setdefault(host, f"location local (agent {facts.agent_id} {facts.agent_name})")
        if LOCATION_DEFINED_AGENT in r.locations and r.agent_id is not None:
            name = self.agents.get(r.agent_id.zfill(3))
            host = inventory.agent_host(r.agent_id, name)
            if host is None:
                problems.append(
                    f"location defined-agent: agent {r.agent_id} has no inventory host (no host with "
                    f"threatlockdown_agent_id {r.agent_id!r}"
                    + (f", none named {name!r})" if name else "; not in client.keys)")
                )
            else:
                found.setdefault(host, f"location defined-agent (agent {r.agent_id})")
        if LOCATION_ALL in r.locations:
            every = [h for h in inventory.hosts if h != manager]
            if not every:
                problems.append("location all: the inventory has no agent hosts")
            for host in every:
                found.setdefault(host, "location all")
        hosts = list(found.items())
        if r.target is not None and hosts:
            chosen = set(inventory.select(r.target))
            narrowed = [(h, f"{why}, in <target> {r.target!r}") for h, why in hosts if h in chosen]
            if not narrowed:
                listed = hosts_text([h for h, _ in hosts])
                problems.append(f"<target> {r.target!r} contains none of the location's hosts ({listed})")
            hosts = narrowed
        return hosts, problems

    # -- the whole decision, before state ------------------------------------------------------------

    def plan(self, facts: AlertFacts, inventory: Inventory, protection: SelfProtection) -> AlertPlan:
        """Every response ``facts`` asks for, with its host and key, and everything skipped or refused."""
        bindings, intents, skips = self.planned(facts, inventory, protection)
        if not bindings:
            return AlertPlan(facts, bindings, unbound=self._why_unbound(facts))
        return AlertPlan(facts, bindings, list(intents), list(skips))

    def planned(self, facts: AlertFacts, inventory: Inventory, protection: SelfProtection) -> Planned:
        """``plan`` without the AlertPlan: (bindings, intents, skips), what the engine needs per alert.

        The outcome depends only on a few fields of the alert, and an attack repeats them (same rule,
        agent, address) many times: it is cached per those fields for as long as the inventory and the
        protected addresses stay the same objects (a reload brings new ones). The lists and their
        Intent and Skip objects are shared between alerts: never change them."""
        if inventory is not self._plan_inventory or protection is not self._plan_protection:
            self._plans.clear()
            self._plan_inventory, self._plan_protection = inventory, protection
        groups = facts.group_string if facts.group_string is not None else self.group_string(facts)
        key = (
            facts.rule_id,
            facts.level,
            facts.no_ar,
            groups,
            facts.agent_id,
            facts.agent_name,
            facts.manager_name,
            facts.srcip,
            facts.dstuser,
            facts.decoder,
        )
        found = self._plans.get(key)
        if found is None:
            bindings = self.bound(facts, groups)
            if not bindings:  # not kept here: bound() keeps it per rule, and addresses would crowd out
                return bindings, (), ()
            fresh = self._plan(facts, bindings, inventory, protection)
            if len(self._plans) >= _SRCIP_CACHE_LIMIT:
                self._plans.clear()
            found = self._plans[key] = (bindings, tuple(fresh.intents), tuple(fresh.skips))
        return found

    def _plan(
        self,
        facts: AlertFacts,
        bindings: tuple[Binding, ...],
        inventory: Inventory,
        protection: SelfProtection,
    ) -> AlertPlan:
        plan = AlertPlan(facts, bindings)
        if not bindings:
            plan.unbound = self._why_unbound(facts)
            return plan
        disabled = self.disabled_reason
        if disabled is not None:
            plan.skips.append(Skip("skipped", disabled))
            return plan
        if facts.from_audit_log:
            plan.skips.append(
                Skip(
                    "skipped",
                    f"the alert is about a response (decoder {facts.decoder}); "
                    "responses never trigger responses",
                )
            )
            return plan

        srcip: str | None = None
        srcip_problem: Skip | None = None
        if facts.srcip is not None:
            srcip, srcip_problem = self._check_srcip(facts.srcip)
        user: str | None = None
        user_problem: Skip | None = None
        if facts.dstuser is not None:
            checked = check_user(facts.dstuser)
            if isinstance(checked, Refusal):
                user_problem = Skip("refused", str(checked))
            else:
                user = checked

        best: dict[str, Intent] = {}
        for binding in bindings:
            subject = binding.subject
            if subject == "auto":
                subject = (
                    "srcip" if facts.srcip is not None else "user" if facts.dstuser is not None else "auto"
                )
            problem: Skip | None = None
            if subject == "srcip":
                problem = srcip_problem or (
                    None
                    if srcip is not None
                    else Skip("skipped", f"the alert has no srcip ({binding.command.executable} acts on it)")
                )
            elif subject == "user":
                problem = user_problem or (
                    None
                    if user is not None
                    else Skip(
                        "skipped", f"the alert has no dstuser ({binding.command.executable} acts on it)"
                    )
                )
            if problem is not None:
                plan.skips.append(Skip(problem.outcome, problem.reason, binding))
                continue
            hosts, problems = self._hosts(binding, facts, inventory)
            for why in problems:
                plan.skips.append(Skip("skipped", why, binding))
            value = srcip if subject == "srcip" else user if subject == "user" else None
            for host, why in hosts:
                key = make_key(binding.command.name, host, value)
                if subject == "srcip" and srcip is not None and protection.enabled:
                    reason = protection.reason_text(host, srcip)
                    if reason is not None:
                        plan.skips.append(Skip("skipped", reason, binding, host, key))
                        continue
                intent = Intent(binding, host, why, key, srcip if subject == "srcip" else None, user)
                current = best.get(key)
                if current is None or _lasts_longer(binding, current.binding):
                    best[key] = intent
        if user_problem is not None and not any(s.reason == user_problem.reason for s in plan.skips):
            # The user name was not needed by any response, but it is still a possible attack: say so.
            plan.skips.append(Skip("refused", f"{user_problem.reason} (responses acting on srcip go ahead)"))
        plan.intents = list(best.values())
        return plan

    def _check_srcip(self, raw: str) -> tuple[str | None, Skip | None]:
        """The address in canonical text, or the reason it is skipped or refused; cached, as attackers
        repeat."""
        found = self._srcips.get(raw)
        if found is not None:
            return found
        stripped = strip_mapped(raw)
        value = dotted_quad(stripped)
        parsed: tuple[IPAddress, str] | Refusal | None = None
        if value is not None:  # the usual case, without an ipaddress object
            text: str | None = stripped
            rule = self.whitelist.match_value(stripped, 4, value)
        else:
            parsed = parse_srcip_text(raw)
            addr, text = (None, None) if isinstance(parsed, Refusal) else parsed
            rule = self.whitelist.match(stripped, addr)
        problem: Skip | None = None
        if rule is not None:
            problem = Skip("skipped", f"srcip {raw!r} is whitelisted by {rule.describe()}")
        elif isinstance(parsed, Refusal):
            problem = Skip("refused", str(parsed))
        if len(self._srcips) >= _SRCIP_CACHE_LIMIT:
            self._srcips.clear()
        found = self._srcips[raw] = (text if problem is None else None, problem)
        return found

    def _why_unbound(self, facts: AlertFacts) -> str:
        if facts.level <= 0:
            return f"rule {facts.rule_id} has level 0: level-0 rules never trigger a response"
        if facts.no_ar:
            return f"rule {facts.rule_id} has <options>no_ar</options>"
        if not self.bindings:
            return "no enabled <active-response> block"
        return (
            f"no <active-response> is bound to rule {facts.rule_id} (level {facts.level}, "
            f"groups {self.group_string(facts)!r})"
        )


def _lasts_longer(a: Binding, b: Binding) -> bool:
    """Two blocks hit the same key: the one whose response lasts longer wins (0 = until reverted)."""
    ta = a.response.timeout if a.stateful else -1
    tb = b.response.timeout if b.stateful else -1
    if ta == 0 or tb == 0:
        return ta == 0 and tb != 0
    return ta > tb


def target_problem(pattern: str) -> str | None:
    """Why a <target> pattern cannot be used, or None."""
    for term in re.split(r"[,:]", pattern):
        term = term.strip().lstrip("&!")
        if term.startswith("~"):
            try:
                re.compile(term[1:])
            except re.error as exc:
                return f"invalid regular expression {term[1:]!r} in <target>: {exc}"
    if not any(t.strip() for t in re.split(r"[,:]", pattern)):
        return "empty <target> pattern"
    return None


def describe_locations(bindings: Sequence[Binding]) -> str:
    return ", ".join(sorted({loc for b in bindings for loc in b.response.locations}))
