"""The ``client.keys`` file: one line ``ID NAME IP KEY`` per agent, as in Wazuh.

Parsing is strict: every problem is reported with the file and line, and the whole file is refused.
Like Wazuh, a line whose NAME starts with ``!`` or ``#`` is a removed agent: it no longer authenticates
but its ID stays reserved so it is never handed out again. Lines starting with ``#`` are comments.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from ..errors import SourceError, SourceErrors
from .atomicfile import write_atomic

MANAGER_ID = "000"  # Wazuh reserves 000 for the manager itself
KEY_HEX_CHARS = 64

_ID = re.compile(r"[0-9]{3,8}")
_NAME = re.compile(r"[A-Za-z0-9._-]{2,128}")
_KEY = re.compile(r"[0-9a-fA-F]{64}")


def new_agent_key() -> str:
    """A fresh random agent key: 64 hex characters (256 bits)."""
    return secrets.token_hex(KEY_HEX_CHARS // 2)


def id_problem(agent_id: str) -> str | None:
    if not _ID.fullmatch(agent_id):
        return f"agent ID {agent_id!r} must be 3 to 8 digits, like '001'"
    if int(agent_id) == 0:
        return f"agent ID {agent_id!r} is reserved for the manager"
    return None


def name_problem(name: str) -> str | None:
    if not _NAME.fullmatch(name):
        return f"agent name {name[:140]!r} must be 2 to 128 characters from letters, digits, '.', '_' and '-'"
    return None


def ip_problem(ip: str) -> str | None:
    if ip == "any":
        return None
    try:
        ipaddress.ip_network(ip, strict=False)
    except ValueError:
        return f"agent IP {ip!r} must be 'any', an IP address or a network in CIDR form (10.0.0.0/8)"
    return None


def key_problem(key: str) -> str | None:
    if not _KEY.fullmatch(key):
        return f"agent key must be {KEY_HEX_CHARS} hexadecimal characters (found {len(key)} characters)"
    return None


def normalized_address(address: str) -> str:
    """The peer address as shown in logs and alerts: IPv4-mapped IPv6 (::ffff:a.b.c.d) becomes a.b.c.d."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def address_allowed(ip_field: str, address: str) -> bool:
    """Whether a peer at ``address`` may use a key whose IP field is ``ip_field``."""
    if ip_field == "any":
        return True
    try:
        peer = ipaddress.ip_address(normalized_address(address))
        network = ipaddress.ip_network(ip_field, strict=False)
    except ValueError:
        return False
    return peer.version == network.version and peer in network


@dataclass(frozen=True)
class AgentKey:
    """One active agent: who it is, where it may connect from, and its shared secret."""

    id: str
    name: str
    ip: str
    key: str

    def line(self) -> str:
        return f"{self.id} {self.name} {self.ip} {self.key}"

    def allows(self, address: str) -> bool:
        return address_allowed(self.ip, address)

    def problems(self) -> list[str]:
        found = [id_problem(self.id), name_problem(self.name), ip_problem(self.ip), key_problem(self.key)]
        return [p for p in found if p]


@dataclass(frozen=True)
class RemovedKey:
    """A removed agent's line, kept verbatim so its ID is never reused."""

    id: str
    text: str


@dataclass(frozen=True)
class CommentLine:
    text: str


KeyLine = AgentKey | RemovedKey | CommentLine


@dataclass(frozen=True)
class KeyFile:
    """The parsed file, in file order (comments and removed agents are kept when it is rewritten)."""

    lines: tuple[KeyLine, ...] = ()

    @property
    def agents(self) -> tuple[AgentKey, ...]:
        return tuple(line for line in self.lines if isinstance(line, AgentKey))

    def by_id(self, agent_id: str) -> AgentKey | None:
        return next((a for a in self.agents if a.id == agent_id), None)

    def by_name(self, name: str) -> AgentKey | None:
        return next((a for a in self.agents if a.name == name), None)

    def next_id(self) -> str:
        """One more than the highest ID ever used, removed agents included (as Wazuh does)."""
        used = [int(line.id) for line in self.lines if isinstance(line, AgentKey | RemovedKey)]
        return f"{max(used, default=0) + 1:03d}"

    def with_agent(self, agent: AgentKey) -> KeyFile:
        problems = agent.problems()
        if problems:
            raise ValueError("; ".join(problems))
        ids = {line.id for line in self.lines if isinstance(line, AgentKey | RemovedKey)}
        if agent.id in ids:
            raise ValueError(f"agent ID {agent.id} is already used")
        if self.by_name(agent.name):
            raise ValueError(f"an agent named {agent.name!r} already exists")
        return KeyFile((*self.lines, agent))

    def without_agent(self, agent_id: str) -> KeyFile:
        """Mark an agent removed the way Wazuh does (``ID !NAME IP KEY``), keeping its ID reserved."""
        out: list[KeyLine] = []
        for line in self.lines:
            if isinstance(line, AgentKey) and line.id == agent_id:
                out.append(RemovedKey(line.id, f"{line.id} !{line.name} {line.ip} {line.key}"))
            else:
                out.append(line)
        return KeyFile(tuple(out))

    def render(self) -> str:
        return "".join(_render_line(line) + "\n" for line in self.lines)


def _render_line(line: KeyLine) -> str:
    if isinstance(line, AgentKey):
        return line.line()
    return line.text


def parse_client_keys(text: str, path: str) -> KeyFile:
    """Parse a whole client.keys file; raises SourceErrors listing every bad line."""
    errors: list[SourceError] = []
    lines: list[KeyLine] = []
    seen_ids: dict[str, int] = {}
    seen_names: dict[str, int] = {}
    for number, raw in enumerate(text.split("\n"), start=1):
        if raw == "":
            continue
        parsed = _parse_line(raw, path, number, errors)
        if parsed is None:
            continue
        if isinstance(parsed, AgentKey | RemovedKey):
            if parsed.id in seen_ids:
                errors.append(
                    SourceError(
                        path, number, "ID", f"agent ID {parsed.id} already used on line {seen_ids[parsed.id]}"
                    )
                )
                continue
            seen_ids[parsed.id] = number
        if isinstance(parsed, AgentKey):
            if parsed.name in seen_names:
                errors.append(
                    SourceError(
                        path,
                        number,
                        "NAME",
                        f"agent name {parsed.name!r} already used on line {seen_names[parsed.name]}",
                    )
                )
                continue
            seen_names[parsed.name] = number
        lines.append(parsed)
    if errors:
        raise SourceErrors(errors)
    return KeyFile(tuple(lines))


def _parse_line(raw: str, path: str, number: int, errors: list[SourceError]) -> KeyLine | None:
    if raw.startswith("#"):
        return CommentLine(raw)
    if raw.endswith("\r"):
        errors.append(
            SourceError(path, number, None, "line ends with a carriage return (Windows line ending)")
        )
        return None
    if raw[0].isspace():
        errors.append(
            SourceError(path, number, None, "line starts with white space; expected 'ID NAME IP KEY'")
        )
        return None
    fields = raw.split(" ")
    if len(fields) >= 2 and fields[1][:1] in ("!", "#"):
        problem = id_problem(fields[0])
        if problem:
            errors.append(SourceError(path, number, "ID", problem))
            return None
        return RemovedKey(fields[0], raw)
    if len(fields) != 4 or "" in fields:
        errors.append(
            SourceError(
                path,
                number,
                None,
                f"expected 'ID NAME IP KEY' separated by single spaces, found {raw[:80]!r}",
            )
        )
        return None
    agent = AgentKey(*fields)
    checks = (
        ("ID", id_problem(agent.id)),
        ("NAME", name_problem(agent.name)),
        ("IP", ip_problem(agent.ip)),
        ("KEY", key_problem(agent.key)),
    )
    bad = [SourceError(path, number, element, problem) for element, problem in checks if problem]
    if bad:
        errors.extend(bad)
        return None
    return agent


def read_client_keys(path: Path, *, missing_ok: bool = False) -> KeyFile:
    """Read and parse ``path``; a missing file is an empty key file when ``missing_ok``."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if missing_ok:
            return KeyFile()
        raise SourceErrors([SourceError(str(path), None, None, "file not found")]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SourceErrors([SourceError(str(path), line, None, "not UTF-8 text")]) from None
    return parse_client_keys(text, str(path))


def write_client_keys(path: Path, keys: KeyFile) -> None:
    """Replace the file atomically; it holds secrets, so it is readable by its owner only."""
    write_atomic(path, keys.render().encode("utf-8"), mode=0o600)
