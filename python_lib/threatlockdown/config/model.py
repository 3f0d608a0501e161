"""What an ossec.conf says, as frozen values that remember the file and line they came from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import SourceError

# The location keywords an <active-response> can name (Wazuh 4.x).
LOCATION_SERVER = "server"
LOCATION_LOCAL = "local"
LOCATION_DEFINED_AGENT = "defined-agent"
LOCATION_ALL = "all"
LOCATIONS = (LOCATION_SERVER, LOCATION_LOCAL, LOCATION_DEFINED_AGENT, LOCATION_ALL)


@dataclass(frozen=True)
class Located:
    """Where a block came from."""

    path: str
    line: int | None


@dataclass(frozen=True)
class WhiteListEntry:
    """One <global><white_list> value, kept as written (IP, network or hostname pattern)."""

    value: str
    line: int | None
    path: str


@dataclass(frozen=True, kw_only=True)
class GlobalConfig:
    """The <global> settings we use; every other accepted element is kept as text in ``other``."""

    white_list: tuple[WhiteListEntry, ...] = ()
    jsonout_output: bool = True
    alerts_log: bool = True
    logall: bool = False
    logall_json: bool = False
    email_notification: bool = False
    # Repeated elements (e.g. <email_to>) are joined with ','.
    other: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Command:
    """A <command>: a name that <active-response> blocks refer to and the response it runs."""

    name: str
    executable: str  # a file name in Wazuh's active-response/bin; for us it names a response playbook
    timeout_allowed: bool = False
    extra_args: tuple[str, ...] = ()
    expect: str | None = None  # accepted for old files; Wazuh ignores it since 4.2
    path: str
    line: int | None

    @property
    def located(self) -> Located:
        return Located(self.path, self.line)


@dataclass(frozen=True, kw_only=True)
class ActiveResponse:
    """An <active-response> block binding rules to a command."""

    command: str  # '' only in a disabled block that names no command
    locations: frozenset[str]  # subset of LOCATIONS
    agent_id: str | None = None
    level: int = 0  # 0 = not used
    rules_group: str | None = None
    rules_id: tuple[int, ...] = ()
    timeout: int = 0  # seconds; 0 = never reverted
    repeated_offenders: tuple[int, ...] = ()  # minutes
    disabled: bool = False  # Wazuh drops disabled blocks; we keep them so tools can show them
    target: str | None = None  # our extension: an inventory group or host pattern
    path: str
    line: int | None

    @property
    def name(self) -> str:
        """The name Wazuh gives the response in ar.conf and AR messages, e.g. ``firewall-drop600``."""
        return f"{self.command}{self.timeout}"

    @property
    def located(self) -> Located:
        return Located(self.path, self.line)


@dataclass(frozen=True, kw_only=True)
class LocalFile:
    """A <localfile>: one log source."""

    log_format: str  # as written, e.g. "syslog", "journald", "multi-line: 3"
    location: str | None
    command: str | None = None  # for log formats "command" and "full_command"
    filters: tuple[tuple[str, str], ...] = ()  # journald (field, pattern) pairs
    multiline_lines: int | None = None  # N of "multi-line: N"
    # Other accepted elements as text; labels as "label:KEY"; repeated elements joined with ','.
    other: Mapping[str, str] = field(default_factory=dict)
    path: str
    line: int | None

    @property
    def located(self) -> Located:
        return Located(self.path, self.line)


@dataclass(frozen=True, kw_only=True)
class Remote:
    """A <remote>: a listener for syslog senders or agents."""

    connection: str  # "syslog" or "secure"
    port: int
    protocol: tuple[str, ...]  # "tcp" and/or "udp"
    allowed_ips: tuple[str, ...] = ()
    denied_ips: tuple[str, ...] = ()
    local_ip: str | None = None
    path: str
    line: int | None

    @property
    def located(self) -> Located:
        return Located(self.path, self.line)


# Used when no <decoder_dir>/<rule_dir> is configured, as Wazuh does (relative to the install dir).
DEFAULT_DECODER_DIR = "ruleset/decoders"
DEFAULT_RULE_DIR = "ruleset/rules"
# File name pattern Wazuh applies to a directory without a ``pattern`` attribute (an OS_Regex).
DEFAULT_DIR_PATTERN = ".xml$"


@dataclass(frozen=True, kw_only=True)
class RulesetConfig:
    """The <ruleset> block(s): where decoders, rules and CDB lists come from."""

    decoder_dirs: tuple[str, ...] = (DEFAULT_DECODER_DIR,)
    rule_dirs: tuple[str, ...] = (DEFAULT_RULE_DIR,)
    decoder_includes: tuple[str, ...] = ()
    decoder_excludes: tuple[str, ...] = ()
    rule_includes: tuple[str, ...] = ()
    rule_excludes: tuple[str, ...] = ()
    lists: tuple[str, ...] = ()
    # The ``pattern`` attribute of a <decoder_dir>/<rule_dir>, by directory, when one was given.
    decoder_dir_patterns: Mapping[str, str] = field(default_factory=dict)
    rule_dir_patterns: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class AlertsConfig:
    log_alert_level: int = 3
    email_alert_level: int = 12


@dataclass(frozen=True, kw_only=True)
class OssecConfig:
    """A whole ossec.conf after validation."""

    path: str
    global_: GlobalConfig = field(default_factory=GlobalConfig)
    commands: Mapping[str, Command] = field(default_factory=dict)  # in file order
    active_responses: tuple[ActiveResponse, ...] = ()
    localfiles: tuple[LocalFile, ...] = ()
    remotes: tuple[Remote, ...] = ()
    ruleset: RulesetConfig = field(default_factory=RulesetConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    node_name: str | None = None  # <cluster><node_name>; AR messages use it as origin.name
    # What Wazuh's execd reads: the first <repeated_offenders> and the first <disabled> found in any
    # <active-response> block, whichever block that is.
    execd_repeated_offenders: tuple[int, ...] = ()
    execd_disabled: bool = False
    infos: tuple[SourceError, ...] = ()  # notices that do not make the file invalid
