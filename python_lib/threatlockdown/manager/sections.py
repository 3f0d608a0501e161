"""The <auth> (manager) and <client> (agent) sections of ossec.conf.

The shared config reader accepts these sections without looking into them; the daemons read the few
elements they use here, with Wazuh's names and defaults, and report bad values with file and line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from ..errors import SourceError, SourceErrors
from ..xmlsrc import line_of, read_xml_file, text_of

DEFAULT_AGENT_PORT = 1514
DEFAULT_ENROLLMENT_PORT = 1515
DEFAULT_RECONNECT_SECONDS = 60


@dataclass(frozen=True)
class AuthSection:
    """<auth>: the enrollment service (Wazuh's authd)."""

    disabled: bool = False
    port: int = DEFAULT_ENROLLMENT_PORT
    use_password: bool = False
    use_source_ip: bool = False
    force: bool = False  # <force><enabled>: a new enrollment replaces an agent of the same name


@dataclass(frozen=True)
class ClientSection:
    """<client>: where an agent sends its events."""

    address: str | None = None
    port: int = DEFAULT_AGENT_PORT
    reconnect_seconds: int = DEFAULT_RECONNECT_SECONDS  # <time-reconnect>: longest wait between tries


def _sections(roots: list[etree._Element], name: str) -> list[etree._Element]:
    return [s for root in roots if root.tag == "ossec_config" for s in root if s.tag == name]


class _Reader:
    def __init__(self, path: str) -> None:
        self.path = path
        self.errors: list[SourceError] = []

    def flag(self, el: etree._Element) -> bool | None:
        value = text_of(el).lower()
        if value in ("yes", "no"):
            return value == "yes"
        self.errors.append(
            SourceError(
                self.path, line_of(el), str(el.tag), f"invalid value {text_of(el)!r} (expected yes or no)"
            )
        )
        return None

    def number(self, el: etree._Element, low: int, high: int, what: str) -> int | None:
        value = text_of(el)
        if value.isdigit() and low <= int(value) <= high:
            return int(value)
        self.errors.append(
            SourceError(
                self.path, line_of(el), str(el.tag), f"invalid {what} {value!r} (expected {low} to {high})"
            )
        )
        return None


def read_auth_section(conf: Path) -> AuthSection:
    """<auth> of ``conf`` (the last one wins, as in Wazuh); raises SourceErrors for bad values."""
    reader = _Reader(str(conf))
    disabled, port, use_password, use_source_ip, force = False, DEFAULT_ENROLLMENT_PORT, False, False, False
    for section in _sections(read_xml_file(conf), "auth"):
        for el in section:
            if not isinstance(el.tag, str):
                continue
            if el.tag == "disabled":
                disabled = bool(reader.flag(el))
            elif el.tag == "port":
                port = reader.number(el, 1, 65535, "port") or port
            elif el.tag == "use_password":
                use_password = bool(reader.flag(el))
            elif el.tag == "use_source_ip":
                use_source_ip = bool(reader.flag(el))
            elif el.tag == "force":
                for sub in el:
                    if sub.tag == "enabled":
                        force = bool(reader.flag(sub))
            # Other Wazuh <auth> elements (ssl_*, purge, limit_maxagents, ...) are not used here.
    if reader.errors:
        raise SourceErrors(reader.errors)
    return AuthSection(disabled, port, use_password, use_source_ip, force)


def read_client_section(conf: Path) -> ClientSection:
    """<client> of ``conf``: the first <server> block and <time-reconnect>."""
    reader = _Reader(str(conf))
    address: str | None = None
    port = DEFAULT_AGENT_PORT
    reconnect = DEFAULT_RECONNECT_SECONDS
    for section in _sections(read_xml_file(conf), "client"):
        for el in section:
            if el.tag == "server" and address is None:
                for sub in el:
                    if sub.tag == "address":
                        address = text_of(sub) or None
                        if address is None:
                            reader.errors.append(
                                SourceError(str(conf), line_of(sub), "address", "value is empty")
                            )
                    elif sub.tag == "port":
                        port = reader.number(sub, 1, 65535, "port") or port
            elif el.tag == "time-reconnect":
                reconnect = reader.number(el, 1, 86400, "number of seconds") or reconnect
    if reader.errors:
        raise SourceErrors(reader.errors)
    return ClientSection(address, port, reconnect)


def split_host_port(value: str, default_port: int) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT``, ``[V6]:PORT`` or a bare IPv6 address -> (host, port)."""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest.startswith(":") and rest[1:].isdigit():
            return host, int(rest[1:])
        return host, default_port
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{value!r}: port must be a number from 1 to 65535")
        return host, int(port)
    return value, default_port
