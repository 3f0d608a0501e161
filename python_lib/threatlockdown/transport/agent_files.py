"""Agent side: its own key line (etc/client.keys) and the pinned manager fingerprint."""

from __future__ import annotations

from pathlib import Path

from ..errors import SourceError, SourceErrors
from .atomicfile import write_atomic
from .identity import normalize_fingerprint
from .keys import AgentKey, KeyFile, read_client_keys, write_client_keys
from .paths import HomeLayout


def write_agent_files(home: Path, agent: AgentKey, fingerprint: str) -> None:
    """Save what an enrolled agent needs: its key line, and the manager certificate fingerprint."""
    problems = agent.problems()
    if problems:
        raise ValueError("; ".join(problems))
    layout = HomeLayout(home)
    write_client_keys(layout.client_keys, KeyFile((agent,)))
    write_pinned_fingerprint(home, fingerprint)


def write_pinned_fingerprint(home: Path, fingerprint: str) -> None:
    text = normalize_fingerprint(fingerprint) + "\n"
    write_atomic(HomeLayout(home).pinned_fingerprint, text.encode("ascii"), mode=0o644)


def read_agent_key(home: Path) -> AgentKey:
    """The agent's own entry: its client.keys must hold exactly one active agent."""
    path = HomeLayout(home).client_keys
    agents = read_client_keys(path).agents
    if len(agents) != 1:
        hint = (
            "enroll the agent, or copy its line from the manager"
            if not agents
            else "keep only this agent's line"
        )
        raise SourceErrors(
            [SourceError(str(path), None, None, f"holds {len(agents)} agents, expected 1 ({hint})")]
        )
    return agents[0]


def read_pinned_fingerprint(home: Path) -> str:
    path = HomeLayout(home).pinned_fingerprint
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        hint = "enroll the agent, or give the manager certificate fingerprint in the configuration"
        raise SourceErrors([SourceError(str(path), None, None, f"file not found: {hint}")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceErrors([SourceError(str(path), None, None, f"cannot read: {exc}")]) from None
    try:
        return normalize_fingerprint(text)
    except ValueError as exc:
        raise SourceErrors([SourceError(str(path), 1, None, str(exc))]) from None
