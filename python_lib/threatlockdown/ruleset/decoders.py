"""Wazuh-format decoders: loading from XML and decoding events.

Selection follows Wazuh 4.x: parents are tried in load order (those with a ``program_name`` only for
events that have one); the first parent whose program_name and prematch match is chosen, with no
fallback. Its first child whose prematch matches (or the first child without prematch) is used; children
sharing a name form a chain whose regexes run one after the other. Children report the parent's name
unless ``use_own_name`` is set.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from ..errors import SourceError
from ..xmlsrc import line_of, raw_text_of, text_of
from .event import Event
from .osregex import OsMatch, OsRegex, PatternError, compile_pattern
from .quickfilter import required_literals, split_alternatives
from .variables import Variables

# Decoder ``order`` names that are static fields in Wazuh; ``user`` is stored as dstuser.
_ORDER_ALIASES = {"user": "dstuser", "extra_data": "extra_data", "data": "data"}

_DECODER_ELEMENTS = frozenset(
    {
        "parent",
        "program_name",
        "prematch",
        "regex",
        "order",
        "fts",
        "ftscomment",
        "plugin_decoder",
        "use_own_name",
        "type",
        "accumulate",
        "json_null_field",
        "json_array_structure",
        "var",
    }
)
_OFFSETS = frozenset({"after_parent", "after_prematch", "after_regex"})
_PLUGINS = frozenset({"JSON_Decoder", "json_decoder"})

Pattern = OsMatch | OsRegex


@dataclass(eq=False)
class Decoder:
    name: str
    path: str
    line: int | None
    parent: str | None = None
    program_name: Pattern | None = None
    prematch: OsRegex | None = None
    prematch_after_parent: bool = False
    prematch_quick: tuple[str, ...] | None = None  # literals the prematch cannot match without
    prematch_kind: str = "osregex"
    regex: OsRegex | None = None
    regex_offset: str | None = None
    order: tuple[str, ...] = ()
    plugin: str | None = None
    plugin_offset: str | None = None
    use_own_name: bool = False
    type: str = "syslog"
    json_null_field: str = "string"  # Wazuh 4.x default: a JSON null becomes the text "null"
    children: list[Decoder] = field(default_factory=list)
    # True when the next sibling has the same name: its regex continues this one's.
    chained: bool = False
    next_in_chain: Decoder | None = None
    # The name alerts show and <decoded_as> compares with.
    shown_name: str = ""
    # How a parent picks its child: precomputed from children (see _build_dispatch).
    dispatch: tuple[_Step, ...] = ()
    # Precomputed by DecoderSet.finish for the decoding loop: the order as field names (aliases
    # applied) and the search functions of prematch and regex (the compiled regex's own method when
    # the pattern has a single alternative, saving a Python call per search).
    order_keys: tuple[str, ...] = ()
    prematch_find: Callable[[str], re.Match[str] | None] | None = None
    regex_find: Callable[[str], re.Match[str] | None] | None = None
    # The regex chain starting here as (search, offset code, field names), one per member.
    chain: tuple[tuple[Callable[[str], re.Match[str] | None], int, tuple[str, ...]], ...] = ()


@dataclass(frozen=True, slots=True)
class _Step:
    """One step of child selection: a single child, or a run of start-anchored children in one regex.

    Children are tried in order and the first whose prematch matches wins. When several consecutive
    children only match at the start of the message, one alternation tried at position 0 gives the
    same answer (Python tries alternatives in order) for the cost of one regex call.
    """

    child: Decoder | None = None
    combined: re.Pattern[str] | None = None
    by_group: dict[str, Decoder] | None = None


@dataclass
class DecoderSet:
    """All parents in load order, split like Wazuh into with/without program_name lists."""

    parents: list[Decoder] = field(default_factory=list)
    by_name: dict[str, list[Decoder]] = field(default_factory=dict)
    _pn_cache: dict[str, tuple[Decoder, ...]] = field(default_factory=dict)
    _nopn: tuple[Decoder, ...] = ()

    def finish(self) -> None:
        for parent in self.parents:
            parent.shown_name = parent.name
            _precompute(parent)
            kids = parent.children
            for i, child in enumerate(kids):
                child.shown_name = child.name if child.use_own_name else parent.name
                child.chained = i + 1 < len(kids) and kids[i + 1].name == child.name
                child.next_in_chain = kids[i + 1] if child.chained else None
                _precompute(child)
            parent.dispatch = _build_dispatch(kids)
        # Chains follow next_in_chain, so they are built once every list has been linked.
        for parent in self.parents:
            parent.chain = _chain_of(parent)
            for child in parent.children:
                child.chain = _chain_of(child)
        self._nopn = tuple(p for p in self.parents if p.program_name is None)
        self._pn_cache.clear()

    def candidates(self, program_name: str) -> tuple[Decoder, ...]:
        """Parents worth trying for an event; cached per program name (a small, bounded set)."""
        if not program_name:
            return self._nopn
        cached = self._pn_cache.get(program_name)
        if cached is None:
            lowered = program_name.lower()
            cached = tuple(
                p
                for p in self.parents
                if p.program_name is None or _pattern_hits(p.program_name, program_name, lowered)
            )
            if len(self._pn_cache) > 4096:
                self._pn_cache.clear()
            self._pn_cache[program_name] = cached
        return cached

    def decode(self, event: Event, lowered: str | None = None) -> None:
        """Fill event.decoder_* and event.fields; ``lowered`` is event.log.lower() if the caller has it."""
        log = event.log
        if lowered is None:
            lowered = log.lower()
        program_name = event.program_name
        parents = self._pn_cache.get(program_name) if program_name else self._nopn
        if parents is None:
            parents = self.candidates(program_name)
        for parent in parents:
            pmatch = 0
            find = parent.prematch_find
            if find is not None:
                quick = parent.prematch_quick
                if quick is not None:
                    # The prematch needs one of these literals: most parents are ruled out here.
                    for needle in quick:
                        if needle in lowered:
                            break
                    else:
                        continue
                m = find(log)
                if m is None:
                    continue
                pmatch = m.end()
            _decode_with(parent, event, log, lowered, pmatch)
            return


def _precompute(dec: Decoder) -> None:
    dec.order_keys = tuple(_ORDER_ALIASES.get(name, name) for name in dec.order)
    dec.prematch_find = _finder(dec.prematch)
    dec.regex_find = _finder(dec.regex)


# Where a chain member's regex starts (Decoder.chain).
_AT_START, _AFTER_PARENT, _AFTER_PREMATCH, _AFTER_REGEX = range(4)
_OFFSET_CODES = {
    "after_parent": _AFTER_PARENT,
    "after_prematch": _AFTER_PREMATCH,
    "after_regex": _AFTER_REGEX,
}


def _chain_of(dec: Decoder) -> tuple[tuple[Callable[[str], re.Match[str] | None], int, tuple[str, ...]], ...]:
    links = []
    node: Decoder | None = dec
    while node is not None and node.regex_find is not None:
        links.append(
            (node.regex_find, _OFFSET_CODES.get(node.regex_offset or "", _AT_START), node.order_keys)
        )
        node = node.next_in_chain
    return tuple(links)


def _finder(pattern: OsRegex | None) -> Callable[[str], re.Match[str] | None] | None:
    if pattern is None:
        return None
    return pattern.search if pattern.alternatives else pattern.regex.search


def _heads(kids: list[Decoder]) -> list[Decoder]:
    """The children child selection visits: chain members after a chain's first are never tried."""
    heads: list[Decoder] = []
    i = 0
    while i < len(kids):
        heads.append(kids[i])
        while i < len(kids) and kids[i].chained:
            i += 1
        i += 1
    return heads


def _start_anchored(dec: Decoder) -> bool:
    pat = dec.prematch
    if pat is None or dec.prematch_after_parent or dec.prematch_kind != "osregex":
        return False
    return all(alt.startswith("^") for alt in split_alternatives(pat.source))


def _build_dispatch(kids: list[Decoder]) -> tuple[_Step, ...]:
    steps: list[_Step] = []
    run: list[Decoder] = []

    def flush() -> None:
        if len(run) >= 2:
            names = {f"c{i}": dec for i, dec in enumerate(run)}
            parts = "|".join(
                f"(?P<{n}>{dec.prematch.regex.pattern})" for n, dec in names.items() if dec.prematch
            )
            flags = run[0].prematch.regex.flags if run[0].prematch else 0
            steps.append(_Step(combined=re.compile(parts, flags), by_group=names))
        else:
            steps.extend(_Step(child=dec) for dec in run)
        run.clear()

    for dec in _heads(kids):
        if _start_anchored(dec):
            run.append(dec)
            continue
        flush()
        steps.append(_Step(child=dec))
    flush()
    return tuple(steps)


def _may_match(needles: tuple[str, ...] | None, lowered: str) -> bool:
    """False only when the pattern cannot match: none of its required literals is in the text."""
    if needles is None:
        return True
    for needle in needles:  # noqa: SIM110 - a plain loop is faster than any() on this hot path
        if needle in lowered:
            return True
    return False


def _pattern_hits(pattern: Pattern, text: str, lowered: str) -> bool:
    if isinstance(pattern, OsMatch):
        return pattern.matches(lowered)
    return pattern.search(text) is not None


def _decode_with(parent: Decoder, event: Event, log: str, lowered: str, pmatch: int) -> None:
    event.decoder_name = event.decoder_id = parent.shown_name
    event.decoder_parent = ""
    kids = parent.children
    chosen: Decoder | None = None
    cmatch = pmatch
    if not kids:
        chosen = parent
    else:
        for step in parent.dispatch:
            if step.combined is not None:
                found = step.combined.match(log)
                if found is None:
                    continue
                assert step.by_group is not None and found.lastgroup is not None
                chosen, cmatch = step.by_group[found.lastgroup], found.end()
                break
            child = step.child
            assert child is not None
            find = child.prematch_find
            if find is None:
                chosen, cmatch = child, pmatch
                break
            start = pmatch if child.prematch_after_parent else 0
            if _may_match(child.prematch_quick, lowered):
                m = find(log[start:] if start else log)
                if m is not None:
                    chosen, cmatch = child, start + m.end()
                    break
        if chosen is not None and chosen.prematch_find is not None:
            # A child chosen by its prematch names the event (its parent's name unless use_own_name).
            event.decoder_name = event.decoder_id = chosen.shown_name
            event.decoder_parent = parent.name
    if chosen is None:
        return
    if chosen.plugin is not None:
        start = (
            pmatch
            if chosen.plugin_offset == "after_parent"
            else (cmatch if chosen.plugin_offset == "after_prematch" else 0)
        )
        _json_plugin(chosen, event, log[start:])
        # Wazuh 4.x goes on with same-name regex children after a plugin (its ar_log_json relies on it).
        if not chosen.chained:
            return
        chosen = chosen.next_in_chain
        if chosen is None:
            return
    # The chain: this decoder's regex and those of the same-name siblings after it, each run on its
    # own (a failed member does not stop the others) until a member without a regex.
    prev_end = -1
    fields = event.fields
    for find, offset, keys in chosen.chain:
        if offset == _AT_START:
            start = 0
        elif offset == _AFTER_PREMATCH:
            start = cmatch
        elif offset == _AFTER_PARENT:
            start = pmatch
        else:  # after_regex: where the last successful regex of the chain ended
            start = prev_end if prev_end >= 0 else cmatch
        m = find(log[start:] if start else log)
        if m is None:
            # A failed member leaves the end of the last successful regex for the next after_regex.
            continue
        prev_end = start + m.end()
        groups = m.groups()
        if len(keys) == 1:
            # The common single-field order: the first group that took part in the match.
            for value in groups:
                if value is not None:
                    fields[keys[0]] = value
                    break
        elif keys:
            if None in groups:
                groups = tuple(g for g in groups if g is not None)
            # Pairs in order, later names overwriting earlier ones, as one assignment each would.
            fields.update(zip(keys, groups, strict=False))


def _json_plugin(dec: Decoder, event: Event, text: str) -> None:
    start = text.find("{")
    if start < 0:
        return
    try:
        obj = json.loads(text[start:])
        if not isinstance(obj, dict):
            return
        flat = list(_flatten(obj, "", dec.json_null_field))
    except (ValueError, RecursionError):
        # A log line can nest thousands of levels within 64 KiB: treat it as not JSON (cJSON refuses
        # more than 1000 levels too) instead of letting RecursionError end the analysis.
        return
    for key, value in flat:
        event.fields[key] = value


def _flatten(obj: dict[str, Any], prefix: str, null_mode: str) -> Iterator[tuple[str, str]]:
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _flatten(value, f"{name}.", null_mode)
        elif value is None:
            if null_mode == "empty":
                yield name, ""
            elif null_mode == "string":
                yield name, "null"
        elif isinstance(value, bool):
            yield name, "true" if value else "false"
        elif isinstance(value, str):
            yield name, value
        else:
            yield name, json.dumps(value, separators=(",", ":"))


# ---------------------------------------------------------------- loading


@dataclass
class DecoderLoader:
    """Builds a DecoderSet from decoder files; collects every error instead of stopping at the first."""

    variables: Variables = field(default_factory=Variables)
    errors: list[SourceError] = field(default_factory=list)
    decoders: DecoderSet = field(default_factory=DecoderSet)

    def load_elements(self, path: str, elements: Iterable[etree._Element]) -> None:
        for el in elements:
            if el.tag == "var":
                name = el.get("name")
                if not name:
                    self._err(path, el, "var", "missing name attribute")
                else:
                    self.variables.define(name, text_of(el))
            elif el.tag == "decoder":
                dec = self._parse(path, el)
                if dec is not None:
                    self._add(path, el, dec)
            else:
                self._err(path, el, el.tag, "unknown element in a decoder file (expected <decoder> or <var>)")

    def _err(self, path: str, el: etree._Element, tag: str, msg: str) -> None:
        self.errors.append(SourceError(path, line_of(el), str(tag), msg))

    def _pattern(self, path: str, el: etree._Element, default: str) -> Any:
        try:
            return compile_pattern(
                self.variables.expand(raw_text_of(el)), el.get("type", ""), default=default
            )
        except PatternError as exc:
            self._err(path, el, str(el.tag), f"invalid pattern: {exc}")
            return None

    def _parse(self, path: str, el: etree._Element) -> Decoder | None:
        name = (el.get("name") or "").strip()
        if not name:
            self._err(path, el, "decoder", "missing name attribute")
            return None
        dec = Decoder(name=name, path=path, line=line_of(el))
        ok = True
        for child in el:
            if not isinstance(child.tag, str):
                continue
            tag = child.tag
            if tag not in _DECODER_ELEMENTS:
                self._err(path, child, tag, f"unknown element in decoder '{name}'")
                ok = False
                continue
            value = text_of(child)
            if tag == "parent":
                dec.parent = value
            elif tag == "program_name":
                dec.program_name = self._pattern(path, child, "osmatch")
                ok = ok and dec.program_name is not None
            elif tag == "prematch":
                pat = self._pattern(path, child, "osregex")
                if isinstance(pat, OsMatch):
                    self._err(path, child, tag, "prematch must be osregex or pcre2")
                    pat = None
                dec.prematch = pat
                ok = ok and pat is not None
                if pat is not None:
                    dec.prematch_kind = child.get("type") or "osregex"
                    dec.prematch_quick = required_literals(pat.source, dec.prematch_kind)
                offset = child.get("offset")
                if offset not in (None, "after_parent"):
                    self._err(path, child, tag, f"invalid offset '{offset}' (prematch allows after_parent)")
                    ok = False
                dec.prematch_after_parent = offset == "after_parent"
            elif tag == "regex":
                pat = self._pattern(path, child, "osregex")
                if isinstance(pat, OsMatch):
                    self._err(path, child, tag, "regex must be osregex or pcre2")
                    pat = None
                dec.regex = pat
                ok = ok and pat is not None
                offset = child.get("offset")
                if offset is not None and offset not in _OFFSETS:
                    self._err(path, child, tag, f"invalid offset '{offset}'")
                    ok = False
                dec.regex_offset = offset
            elif tag == "order":
                dec.order = tuple(p.strip() for p in value.split(",") if p.strip())
            elif tag == "plugin_decoder":
                if value not in _PLUGINS:
                    self._err(path, child, tag, f"unknown plugin decoder '{value}' (supported: JSON_Decoder)")
                    ok = False
                dec.plugin = value
                dec.plugin_offset = child.get("offset")
            elif tag == "use_own_name":
                dec.use_own_name = value.lower() in ("true", "yes")
            elif tag == "type":
                dec.type = value or "syslog"
            elif tag == "json_null_field":
                dec.json_null_field = value
        return dec if ok else None

    def _add(self, path: str, el: etree._Element, dec: Decoder) -> None:
        ds = self.decoders
        if dec.parent is None:
            if dec.program_name is None and dec.prematch is None and dec.plugin is None:
                self._err(
                    path, el, "decoder", f"decoder '{dec.name}' has no parent, program_name or prematch"
                )
                return
            # Several parents may share a name (e.g. two ways to recognise PAM); children join them all.
            ds.parents.append(dec)
            ds.by_name.setdefault(dec.name, []).append(dec)
            return
        parents = ds.by_name.get(dec.parent)
        if not parents:
            parent_el = el.find("parent")
            self._err(
                path,
                parent_el if parent_el is not None else el,
                "parent",
                f"decoder '{dec.name}': unknown parent '{dec.parent}'"
                " (a parent must be defined before its children)",
            )
            return
        for parent in parents:
            parent.children.append(dec)

    def finish(self) -> DecoderSet:
        self.decoders.finish()
        return self.decoders
