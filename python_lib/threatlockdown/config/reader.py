"""Reads and validates an ossec.conf: every problem is reported, each with its file, line and element."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from ..errors import SourceError, SourceErrors
from ..xmlsrc import line_of, parse_xml_text, read_xml_file
from .findings import Findings
from .global_section import AlertsBuilder, GlobalBuilder, cluster_node_name
from .localfile import read_localfile
from .model import ActiveResponse, LocalFile, OssecConfig, Remote
from .remote import read_remote
from .responses import CommandTable, command_name_of, read_active_response, read_command
from .ruleset import RulesetBuilder
from .values import children, tag_of

ROOT = "ossec_config"
MODELLED_SECTIONS = (
    "global",
    "alerts",
    "command",
    "active-response",
    "localfile",
    "remote",
    "ruleset",
    "cluster",
)
# Sections Wazuh 4.x accepts that we do not use: accepted so real files load, and not looked into.
IGNORED_SECTIONS = (
    "agent-upgrade",
    "agentless",
    "anti_tampering",
    "auth",
    "client",
    "client_buffer",
    "database_output",
    "email_alerts",
    "fluent-forward",
    "gcp-bucket",
    "gcp-pubsub",
    "github",
    "indexer",
    "integration",
    "labels",
    "logging",
    "ms-graph",
    "office365",
    "reports",
    "rootcheck",
    "rule_test",
    "sca",
    "socket",
    "syscheck",
    "syslog_output",
    "task-manager",
    "vulnerability-detection",
    "vulnerability-detector",
    "wdb",
    "wodle",
)
SECTIONS = (*MODELLED_SECTIONS, *IGNORED_SECTIONS)


def default_config_path() -> Path:
    """The ossec.conf shipped with the package."""
    return Path(__file__).resolve().parent.parent / "data" / "ossec.conf"


def read_config(path: str | Path) -> tuple[OssecConfig | None, list[SourceError]]:
    """Read and check ``path``; return the config, or None and every error found."""
    name = str(path)
    try:
        roots = read_xml_file(path)
    except SourceErrors as exc:
        return None, exc.errors
    return _from_roots(roots, name, blank=not roots and _is_blank(Path(path)))


def read_config_text(text: str, path: str = "<string>") -> tuple[OssecConfig | None, list[SourceError]]:
    """Like read_config, for text already in memory; ``path`` names it in messages."""
    try:
        roots = parse_xml_text(text, path)
    except SourceErrors as exc:
        return None, exc.errors
    return _from_roots(roots, path, blank=not text.strip())


def load_config(path: str | Path) -> OssecConfig:
    """Read and check ``path``; raise SourceErrors listing every problem."""
    config, errors = read_config(path)
    if config is None:
        raise SourceErrors(errors)
    return config


def _is_blank(path: Path) -> bool:
    try:
        return not path.read_bytes().strip()
    except OSError:
        return False


@dataclass
class _Sections:
    """The children of every <ossec_config> root, in file order."""

    elements: list[etree._Element] = field(default_factory=list)
    roots: int = 0


def _collect_sections(roots: list[etree._Element], found: Findings) -> _Sections:
    sections = _Sections()
    for root in roots:
        tag = tag_of(root)
        if tag != ROOT:
            found.error(line_of(root), tag, f"not allowed at the top level (expected <{ROOT}>)")
            continue
        sections.roots += 1
        sections.elements.extend(children(root))
    return sections


def _from_roots(
    roots: list[etree._Element], path: str, *, blank: bool
) -> tuple[OssecConfig | None, list[SourceError]]:
    found = Findings(path)
    if blank:
        found.error(None, None, f"file is empty (expected <{ROOT}>)")
        return None, found.errors
    sections = _collect_sections(roots, found)
    if sections.roots == 0 and not found.errors:
        found.error(None, None, f"no <{ROOT}> element found")
    config = _Assembler(path, found).run(sections.elements)
    found.errors.sort(key=lambda e: e.line or 0)
    if found.errors:
        return None, found.errors
    return config, []


@dataclass
class _Assembler:
    """Reads the sections in two passes: <command>s first, so that order mistakes get a clear message."""

    path: str
    found: Findings
    table: CommandTable = field(default_factory=CommandTable)
    global_: GlobalBuilder = field(default_factory=GlobalBuilder)
    alerts: AlertsBuilder = field(default_factory=AlertsBuilder)
    ruleset: RulesetBuilder = field(default_factory=RulesetBuilder)
    responses: list[ActiveResponse] = field(default_factory=list)
    localfiles: list[LocalFile] = field(default_factory=list)
    remotes: list[Remote] = field(default_factory=list)
    node_name: str | None = None
    repeated_offenders: tuple[int, ...] | None = None
    execd_disabled: bool | None = None

    def run(self, sections: list[etree._Element]) -> OssecConfig:
        for order, section in enumerate(sections):
            if tag_of(section) == "command":
                self._command(section, order)
        for order, section in enumerate(sections):
            self._section(section, order)
        self.table.report_early_uses(self.found)
        self.found.infos.sort(key=lambda e: e.line or 0)
        return OssecConfig(
            path=self.path,
            global_=self.global_.build(),
            commands=self.table.commands(),
            active_responses=tuple(self.responses),
            localfiles=tuple(self.localfiles),
            remotes=tuple(self.remotes),
            ruleset=self.ruleset.build(),
            alerts=self.alerts.build(),
            node_name=self.node_name,
            execd_repeated_offenders=self.repeated_offenders or (),
            execd_disabled=bool(self.execd_disabled),
            infos=tuple(self.found.infos),
        )

    def _command(self, section: etree._Element, order: int) -> None:
        command = read_command(section, self.found)
        if command is not None:
            self.table.add(command, order, self.found)
            return
        name = command_name_of(section)
        if name:
            self.table.broken.add(name)

    def _section(self, section: etree._Element, order: int) -> None:
        tag = tag_of(section)
        found = self.found
        if tag in ("command", *IGNORED_SECTIONS):
            return
        if tag == "global":
            self.global_.read(section, found)
        elif tag == "alerts":
            self.alerts.read(section, found)
        elif tag == "ruleset":
            self.ruleset.read(section, found)
        elif tag == "cluster":
            if self.node_name is None:
                self.node_name = cluster_node_name(section, found)
        elif tag == "active-response":
            self._active_response(section, order)
        elif tag == "localfile":
            localfile = read_localfile(section, found)
            if localfile is not None:
                self.localfiles.append(localfile)
        elif tag == "remote":
            self._remote(section)
        else:
            found.unknown_element(line_of(section), ROOT, tag, SECTIONS)

    def _active_response(self, section: etree._Element, order: int) -> None:
        block = read_active_response(section, order, self.table, self.found)
        if block.response is not None:
            self.responses.append(block.response)
        # execd takes the first of each, from whichever block has it.
        if self.repeated_offenders is None:
            self.repeated_offenders = block.repeated_offenders
        if self.execd_disabled is None:
            self.execd_disabled = block.disabled

    def _remote(self, section: etree._Element) -> None:
        remote = read_remote(section, self.found)
        if remote is None:
            return
        if remote.connection == "secure":
            first = next((r for r in self.remotes if r.connection == "secure"), None)
            if first is not None:
                self.found.error(
                    remote.line, "remote", f"only one secure <remote> is allowed (first at line {first.line})"
                )
                return
        for other in self.remotes:
            shared = [p for p in remote.protocol if p in other.protocol]
            if other.port == remote.port and shared:
                self.found.error(
                    remote.line,
                    "remote",
                    f"port {remote.port}/{shared[0]} is already used by the <remote> at line {other.line}",
                )
                return
        self.remotes.append(remote)
