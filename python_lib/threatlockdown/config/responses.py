"""<command> and <active-response> blocks, with Wazuh 4.x semantics and friendlier errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from lxml import etree

from ..xmlsrc import line_of
from .findings import Findings, did_you_mean, quote
from .model import (
    LOCATION_ALL,
    LOCATION_DEFINED_AGENT,
    LOCATION_LOCAL,
    LOCATION_SERVER,
    LOCATIONS,
    ActiveResponse,
    Command,
)
from .values import children, leaf_text, parse_int, parse_uint, required_text, tag_of, whole_number, yes_no

COMMAND_ELEMENTS = ("name", "executable", "timeout_allowed", "extra_args", "expect")
AR_ELEMENTS = (
    "disabled",
    "command",
    "location",
    "agent_id",
    "level",
    "rules_group",
    "rules_id",
    "timeout",
    "repeated_offenders",
    "ca_store",
    "ca_verification",
    "target",
)
# Elements of a block that only configures execd / agent upgrades (the usual agent-side block).
_SETTINGS_ONLY = frozenset(("disabled", "repeated_offenders", "ca_store", "ca_verification"))
MAX_AR_LEVEL = 20  # Wazuh accepts 0..20 in <active-response><level>
# execd splits <repeated_offenders> into at most 5 pieces and ignores the rest.
MAX_REPEATED_OFFENDERS = 5

# Exact location words (case-insensitive) and the keyword each stands for.
_LOCATION_WORDS = {
    "server": LOCATION_SERVER,
    "as": LOCATION_SERVER,
    "analysisd": LOCATION_SERVER,
    "analysis-server": LOCATION_SERVER,
    "local": LOCATION_LOCAL,
    "defined-agent": LOCATION_DEFINED_AGENT,
    "all": LOCATION_ALL,
    "any": LOCATION_ALL,
}
_LOCATION_SEPARATORS = re.compile(r"[\s,|;]+")
_LIST_SEPARATORS = re.compile(r"[\s,]+")


@dataclass(frozen=True)
class DefinedCommand:
    command: Command
    order: int  # position of the <command> in the file, to tell "defined later" from "never defined"


@dataclass
class CommandTable:
    """Every <command> of the file; remembers uses that come before the definition."""

    defined: dict[str, DefinedCommand] = field(default_factory=dict)
    early_uses: dict[str, int | None] = field(default_factory=dict)  # name -> line of the first such use
    broken: set[str] = field(default_factory=set)  # names of <command>s that had errors of their own

    def add(self, command: Command, order: int, found: Findings) -> None:
        first = self.defined.get(command.name)
        if first is not None:
            found.error(
                command.line,
                "command",
                f"command {quote(command.name)} is already defined at line {first.command.line}",
            )
            return
        self.defined[command.name] = DefinedCommand(command, order)

    def lookup(self, name: str, order: int, line: int | None, found: Findings) -> Command | None:
        entry = self.defined.get(name)
        if entry is None and name in self.broken:
            return None  # its own errors are already reported
        if entry is None:
            hint = did_you_mean(name, self.defined)
            found.error(line, "active-response", f"unknown command {quote(name)}{hint}")
            return None
        if entry.order > order:
            # Wazuh looks commands up while reading, so this is fatal there; say where to move it.
            self.early_uses.setdefault(name, line)
            return None
        return entry.command

    def report_early_uses(self, found: Findings) -> None:
        for name, use_line in self.early_uses.items():
            cmd = self.defined[name].command
            found.error(
                cmd.line,
                "command",
                f"command {quote(name)} is defined after its first use at line {use_line} "
                "(move this <command> above that <active-response>)",
            )

    def commands(self) -> dict[str, Command]:
        return {name: entry.command for name, entry in self.defined.items()}


def _once(
    block: etree._Element, parent: str, known: tuple[str, ...], found: Findings
) -> Iterator[etree._Element]:
    """The known children of a block, each tag once; unknown and repeated ones become errors."""
    seen: dict[str, int | None] = {}
    for child in children(block):
        tag = tag_of(child)
        if tag not in known:
            found.unknown_element(line_of(child), parent, tag, known)
        elif tag in seen:
            found.error(line_of(child), parent, f"<{tag}> appears twice (first at line {seen[tag]})")
        else:
            seen[tag] = line_of(child)
            yield child


def command_name_of(block: etree._Element) -> str | None:
    """The <name> text of a <command> block, valid or not."""
    for child in children(block):
        if tag_of(child) == "name":
            return (child.text or "").strip()
    return None


def read_command(block: etree._Element, found: Findings) -> Command | None:
    errors_before = len(found.errors)
    name: str | None = None
    executable: str | None = None
    timeout_allowed: bool | None = False
    extra_args: tuple[str, ...] = ()
    expect: str | None = None
    for child in _once(block, "command", COMMAND_ELEMENTS, found):
        tag = tag_of(child)
        if tag == "name":
            name = required_text(child, found)
            if name is not None and name.startswith("!"):
                # Wazuh reserves '!' for commands sent through its API.
                found.error(line_of(child), "name", f"command name {quote(name)} must not start with '!'")
        elif tag == "executable":
            executable = required_text(child, found)
            if executable is not None and ("/" in executable or ".." in executable):
                found.error(
                    line_of(child),
                    "executable",
                    f"{quote(executable)} must be a plain name without '/' or '..' "
                    "(it names a response, like a file in Wazuh's active-response/bin)",
                )
        elif tag == "timeout_allowed":
            timeout_allowed = yes_no(child, found)
        elif tag == "extra_args":
            extra_args = tuple((leaf_text(child, found) or "").split())
        else:  # expect
            expect = leaf_text(child, found)
            found.info(line_of(child), "expect", "ignored (deprecated since Wazuh 4.2)")
    if not any(tag_of(c) == "name" for c in children(block)):
        found.error(line_of(block), "command", "missing <name>")
    if not any(tag_of(c) == "executable" for c in children(block)):
        found.error(line_of(block), "command", "missing <executable>")
    if len(found.errors) > errors_before or name is None or executable is None or timeout_allowed is None:
        return None
    return Command(
        name=name,
        executable=executable,
        timeout_allowed=timeout_allowed,
        extra_args=extra_args,
        expect=expect,
        path=found.path,
        line=line_of(block),
    )


@dataclass(frozen=True)
class ResponseBlock:
    """What one <active-response> block contributes."""

    response: ActiveResponse | None  # None: invalid, dropped as Wazuh does, or execd settings only
    repeated_offenders: tuple[int, ...] | None  # None when the block has no <repeated_offenders>
    disabled: bool | None  # None when the block has no <disabled>


@dataclass
class _Fields:
    """The raw values of one <active-response> block."""

    disabled: bool | None = None
    command: str | None = None
    command_line: int | None = None
    location: str | None = None
    location_line: int | None = None
    agent_id: str | None = None
    agent_id_line: int | None = None
    level: int = 0
    rules_group: str | None = None
    rules_id: tuple[int, ...] = ()
    timeout: int = 0
    timeout_line: int | None = None
    repeated_offenders: tuple[int, ...] | None = None
    target: str | None = None
    block_line: int | None = None
    present: set[str] = field(default_factory=set)  # tags that appear in the block


def read_active_response(
    block: etree._Element, order: int, table: CommandTable, found: Findings
) -> ResponseBlock:
    errors_before = len(found.errors)
    f = _read_fields(block, found)
    line = line_of(block)
    if f.present and f.present <= _SETTINGS_ONLY:
        # No response at all, only what execd (or the agent upgrade module) reads.
        return ResponseBlock(None, f.repeated_offenders, f.disabled)
    if f.disabled:
        # Wazuh stops here for a disabled block; we keep what it says, best effort, for display.
        locations = _locations(f.location or "", f.location_line, found, quiet=True)
        return ResponseBlock(_build(f, f.command or "", locations, found), f.repeated_offenders, f.disabled)
    if f.command is None or f.location is None:
        if "repeated_offenders" in f.present:
            # Wazuh's analysisd skips such a block without a word; execd still reads the offenders.
            found.info(
                line,
                "active-response",
                "block without both <command> and <location>: only its <repeated_offenders> is used",
            )
        else:
            for needed in ("command", "location"):
                if needed not in f.present:
                    found.error(line, "active-response", f"missing <{needed}>")
        return ResponseBlock(None, f.repeated_offenders, f.disabled)

    locations = _locations(f.location, f.location_line, found, quiet=False)
    command = table.lookup(f.command, order, f.command_line, found)
    if locations is not None and LOCATION_DEFINED_AGENT in locations and "agent_id" not in f.present:
        found.error(line, "active-response", "location 'defined-agent' needs an <agent_id>")
    if len(found.errors) > errors_before or locations is None or command is None:
        return ResponseBlock(None, f.repeated_offenders, f.disabled)

    if f.agent_id is not None:
        if LOCATION_DEFINED_AGENT not in locations:
            found.info(f.agent_id_line, "agent_id", "ignored: only used with location 'defined-agent'")
        elif not parse_uint(f.agent_id):
            found.info(
                f.agent_id_line,
                "agent_id",
                f"{quote(f.agent_id)} is not an agent ID; this <active-response> is ignored, as Wazuh does "
                "(use location 'server' to run a response on the manager)",
            )
            return ResponseBlock(None, f.repeated_offenders, f.disabled)
    if f.timeout > 0 and not command.timeout_allowed:
        found.info(
            f.timeout_line,
            "timeout",
            f"command {quote(command.name)} does not have <timeout_allowed>yes</timeout_allowed>: "
            f"timeout {f.timeout} is ignored and the response is never reverted",
        )
        f.timeout = 0
    return ResponseBlock(_build(f, command.name, locations, found), f.repeated_offenders, f.disabled)


def _build(f: _Fields, command: str, locations: frozenset[str] | None, found: Findings) -> ActiveResponse:
    return ActiveResponse(
        command=command,
        locations=locations or frozenset(),
        agent_id=f.agent_id,
        level=f.level,
        rules_group=f.rules_group,
        rules_id=f.rules_id,
        timeout=f.timeout,
        repeated_offenders=f.repeated_offenders or (),
        disabled=bool(f.disabled),
        target=f.target,
        path=found.path,
        line=f.block_line,
    )


def _read_fields(block: etree._Element, found: Findings) -> _Fields:
    f = _Fields(block_line=line_of(block))
    for child in _once(block, "active-response", AR_ELEMENTS, found):
        tag = tag_of(child)
        f.present.add(tag)
        line = line_of(child)
        if tag == "disabled":
            f.disabled = yes_no(child, found)
        elif tag == "command":
            f.command, f.command_line = required_text(child, found), line
        elif tag == "location":
            f.location, f.location_line = required_text(child, found), line
        elif tag == "agent_id":
            f.agent_id, f.agent_id_line = required_text(child, found), line
        elif tag == "level":
            expected = f"an integer from 0 to {MAX_AR_LEVEL}"
            f.level = whole_number(child, found, high=MAX_AR_LEVEL, what=expected) or 0
        elif tag == "rules_group":
            f.rules_group = required_text(child, found)
        elif tag == "rules_id":
            f.rules_id = _rule_ids(child, found)
        elif tag == "timeout":
            f.timeout, f.timeout_line = _timeout(child, found), line
        elif tag == "repeated_offenders":
            f.repeated_offenders = _repeated_offenders(child, found)
        elif tag == "target":
            f.target = required_text(child, found)
        else:  # ca_store, ca_verification: agent upgrade settings, not ours
            leaf_text(child, found)
    return f


def _locations(text: str, line: int | None, found: Findings, *, quiet: bool) -> frozenset[str] | None:
    """The location keywords of ``text``; None (with errors) when a word means nothing."""
    result: set[str] = set()
    ok = True
    for word in (w for w in _LOCATION_SEPARATORS.split(text) if w):
        keyword = _LOCATION_WORDS.get(word.lower())
        if keyword is not None:
            result.add(keyword)
            continue
        # Wazuh finds its keywords anywhere in the text (OS_Regex, case-insensitive): 'localhost'
        # means 'local' there. Accept what Wazuh accepts, but say how it is read.
        read_as = sorted({kw for w, kw in _LOCATION_WORDS.items() if w in word.lower()})
        if read_as:
            result.update(read_as)
            if not quiet:
                found.info(line, "location", f"{quote(word)} is read as {', '.join(map(repr, read_as))}")
        elif not quiet:
            hint = did_you_mean(word, _LOCATION_WORDS) or f" (expected one of {', '.join(LOCATIONS)})"
            found.error(line, "location", f"unknown location {quote(word)}{hint}")
            ok = False
    if not result and ok and not quiet:
        found.error(
            line, "location", f"no location in {quote(text)} (expected one of {', '.join(LOCATIONS)})"
        )
        ok = False
    return frozenset(result) if ok else None


def _numbers(child: etree._Element, found: Findings, what: str) -> tuple[int, ...] | None:
    """A comma/space separated list of whole numbers; None (and an error) on the first bad item."""
    text = required_text(child, found)
    if text is None:
        return None
    numbers: list[int] = []
    for item in (i for i in _LIST_SEPARATORS.split(text) if i):
        number = parse_uint(item)
        if number is None or number == 0:
            found.error(line_of(child), tag_of(child), f"invalid {what} {quote(item)} in {quote(text)}")
            return None
        numbers.append(number)
    if not numbers:
        found.error(line_of(child), tag_of(child), f"no {what} in {quote(text)}")
        return None
    return tuple(numbers)


def _rule_ids(child: etree._Element, found: Findings) -> tuple[int, ...]:
    # Wazuh stops reading at the first character that is not a digit or separator; we report it.
    return _numbers(child, found, "rule ID") or ()


def _repeated_offenders(child: etree._Element, found: Findings) -> tuple[int, ...] | None:
    minutes = _numbers(child, found, "number of minutes")
    if minutes is not None and len(minutes) > MAX_REPEATED_OFFENDERS:
        found.info(
            line_of(child),
            "repeated_offenders",
            f"only the first {MAX_REPEATED_OFFENDERS} values are used; the rest is ignored, as in Wazuh",
        )
        minutes = minutes[:MAX_REPEATED_OFFENDERS]
    return minutes


def _timeout(child: etree._Element, found: Findings) -> int:
    text = required_text(child, found)
    if text is None:
        return 0
    seconds = parse_int(text)
    if seconds is None:
        found.error(
            line_of(child), "timeout", f"invalid value {quote(text)} (expected a whole number of seconds)"
        )
        return 0
    if seconds < 0:
        # Wazuh takes it (wazuh/wazuh#15171) and the block is then never reverted; a typo, surely.
        found.error(
            line_of(child),
            "timeout",
            f"negative timeout {quote(text)} (use 0 for a response that is never reverted)",
        )
        return 0
    return seconds
