"""<remote>: where syslog senders (or agents) connect."""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from ..xmlsrc import line_of
from .findings import Findings, quote
from .model import Remote
from .values import address_problem, children, leaf_text, parse_uint, required_text, tag_of

DEFAULT_PORTS = {"syslog": 514, "secure": 1514}
DEFAULT_PROTOCOL = "tcp"  # Wazuh 4.x default for both connection types
REMOTE_ELEMENTS = (
    "connection",
    "port",
    "protocol",
    "allowed-ips",
    "denied-ips",
    "local_ip",
    "ipv6",
    "queue_size",
    "rids_closing_time",
    "connection_overtake_time",
    "allow_agents_enrollment",
    "agents",
)
# Wazuh compares these element names without regard to case.
_ANY_CASE = frozenset(("connection", "port", "protocol", "ipv6", "local_ip", "agents"))
_SINGLE = ("connection", "port", "protocol", "local_ip")


@dataclass
class _RemoteFields:
    connection: str | None = None
    port: int | None = None
    protocol: tuple[str, ...] = ()
    protocol_line: int | None = None
    allowed: list[str] = field(default_factory=list)
    denied: list[str] = field(default_factory=list)
    local_ip: str | None = None
    queue_size_line: int | None = None
    seen: dict[str, int | None] = field(default_factory=dict)


def read_remote(block: etree._Element, found: Findings) -> Remote | None:
    errors_before = len(found.errors)
    f = _RemoteFields()
    for child in children(block):
        raw = tag_of(child)
        tag = raw.lower() if raw.lower() in _ANY_CASE else raw
        if tag not in REMOTE_ELEMENTS:
            found.unknown_element(line_of(child), "remote", raw, REMOTE_ELEMENTS)
            continue
        if tag in _SINGLE and tag in f.seen:
            found.error(line_of(child), "remote", f"<{tag}> appears twice (first at line {f.seen[tag]})")
            continue
        f.seen.setdefault(tag, line_of(child))
        _read_element(child, tag, f, found)

    line = line_of(block)
    if "connection" not in f.seen:
        found.error(line, "remote", "missing <connection> ('syslog' or 'secure')")
    if f.connection == "syslog":
        _check_syslog(line, f, found)
    if len(found.errors) > errors_before or f.connection is None:
        return None
    return Remote(
        connection=f.connection,
        port=f.port if f.port is not None else DEFAULT_PORTS[f.connection],
        protocol=f.protocol or (DEFAULT_PROTOCOL,),
        allowed_ips=tuple(f.allowed),
        denied_ips=tuple(f.denied),
        local_ip=f.local_ip,
        path=found.path,
        line=line,
    )


def _read_element(child: etree._Element, tag: str, f: _RemoteFields, found: Findings) -> None:
    line = line_of(child)
    if tag == "connection":
        text = required_text(child, found)
        if text in DEFAULT_PORTS:
            f.connection = text
        elif text is not None:
            found.error(line, tag, f"invalid value {quote(text)} (expected 'syslog' or 'secure')")
    elif tag == "port":
        text = leaf_text(child, found)
        port = parse_uint(text or "")
        if text is not None and (port is None or not 1 <= port <= 65535):
            found.error(line, tag, f"invalid port {quote(text)} (expected 1 to 65535)")
        f.port = port
    elif tag == "protocol":
        f.protocol_line = line
        f.protocol = _protocols(child, found)
    elif tag in ("allowed-ips", "denied-ips"):
        text = required_text(child, found)
        if text is not None and text != "any":
            problem = address_problem(text)
            if problem is not None:
                found.error(line, tag, f"invalid IP address or network {quote(text)}: {problem}")
                return
        if text is not None:
            (f.allowed if tag == "allowed-ips" else f.denied).append(text)
    elif tag == "local_ip":
        text = required_text(child, found)
        if text is not None:
            problem = address_problem(text, allow_network=False)
            if problem is not None:
                found.error(line, tag, f"invalid IP address {quote(text)}: {problem}")
            else:
                f.local_ip = text
    elif tag in ("ipv6", "allow_agents_enrollment"):
        text = leaf_text(child, found)
        if text is not None and text.lower() not in ("yes", "no"):
            # Wazuh only warns here and keeps its default.
            found.info(line, tag, f"invalid value {quote(text)} ignored (expected 'yes' or 'no')")
    elif tag == "queue_size":
        f.queue_size_line = line
        leaf_text(child, found)
    elif tag != "agents":  # rids_closing_time, connection_overtake_time: Wazuh warns and uses defaults
        leaf_text(child, found)


def _protocols(child: etree._Element, found: Findings) -> tuple[str, ...]:
    text = leaf_text(child, found)
    if text is None:
        return ()
    chosen: list[str] = []
    for word in (w.strip() for w in text.split(",")):
        if word.lower() in ("tcp", "udp"):
            if word.lower() not in chosen:
                chosen.append(word.lower())
        elif word:
            # Wazuh skips unknown words with a warning; a typo here changes what we listen on.
            found.info(line_of(child), "protocol", f"unknown protocol {quote(word)} ignored")
    if not chosen:
        found.info(
            line_of(child), "protocol", f"no valid protocol in {quote(text)}; using {DEFAULT_PROTOCOL}"
        )
    return tuple(chosen)


def _check_syslog(line: int | None, f: _RemoteFields, found: Findings) -> None:
    if len(f.protocol) > 1:
        # Only secure connections listen on TCP and UDP at once in Wazuh.
        found.info(
            f.protocol_line,
            "protocol",
            f"a syslog <remote> listens on one protocol; using {DEFAULT_PROTOCOL}",
        )
        f.protocol = (DEFAULT_PROTOCOL,)
    if f.queue_size_line is not None:
        found.error(f.queue_size_line, "queue_size", "only valid for a secure <remote>")
    if not f.allowed:
        # Wazuh's remoted exits in that case: nobody would be allowed to send.
        found.error(line, "remote", "a syslog <remote> needs at least one <allowed-ips>")
