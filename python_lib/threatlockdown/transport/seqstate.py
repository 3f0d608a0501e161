"""Manager side: the last event sequence number persisted for each agent, one small file per agent.

The file is ``queue/agent-seq/<ID>.json`` = ``{"stream": "<32 hex>", "last_seq": N}``. ``stream``
names the agent's spool: an agent whose spool was wiped (reinstall) starts a new stream at seq 1, and
the manager must not drop those events as duplicates of the old stream.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import SourceError, SourceErrors
from .atomicfile import write_atomic

_STREAM = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class StreamState:
    stream: str
    last_seq: int


class SeqStateStore:
    def __init__(self, directory: Path) -> None:
        self._dir = directory

    def path_for(self, agent_id: str) -> Path:
        return self._dir / f"{agent_id}.json"

    def load(self, agent_id: str) -> StreamState | None:
        path = self.path_for(agent_id)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise SourceErrors([SourceError(str(path), None, None, f"cannot read: {exc}")]) from exc
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise SourceErrors([SourceError(str(path), None, None, f"not JSON: {exc}")]) from None
        stream = data.get("stream") if isinstance(data, dict) else None
        last = data.get("last_seq") if isinstance(data, dict) else None
        if not isinstance(stream, str) or not _STREAM.fullmatch(stream):
            raise SourceErrors([SourceError(str(path), 1, "stream", "must be 32 lowercase hex characters")])
        if not isinstance(last, int) or isinstance(last, bool) or last < 0:
            raise SourceErrors([SourceError(str(path), 1, "last_seq", "must be a non-negative integer")])
        return StreamState(stream, last)

    def save(self, agent_id: str, state: StreamState) -> None:
        data = json.dumps({"stream": state.stream, "last_seq": state.last_seq}) + "\n"
        write_atomic(self.path_for(agent_id), data.encode("ascii"), mode=0o640)
