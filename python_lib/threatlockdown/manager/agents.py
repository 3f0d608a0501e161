"""Events from agents enter the same queue as the manager's own collectors."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from ..analysis.session import AgentInfo
from ..collect.event import RawEvent, cut_text
from ..transport import AgentEvent, AgentIdentity

_MANAGER = AgentInfo()


@dataclass(frozen=True, slots=True)
class AgentRawEvent(RawEvent):
    """An event read by an agent; ``agent`` gives the alert its agent.id, agent.name and agent.ip."""

    agent: AgentInfo = _MANAGER


class AgentIntake:
    """The transport server's ``on_events``: queue a batch and return once every event of it is acked,
    i.e. its alerts are on disk. Only then does the transport persist the sequence number and ack the
    agent, so an agent batch is never acknowledged before it is analysed."""

    def __init__(self, queue: asyncio.Queue[RawEvent]) -> None:
        self._queue = queue
        self.batches = 0

    async def on_events(self, identity: AgentIdentity, events: list[AgentEvent]) -> None:
        if not events:
            return
        agent = AgentInfo(identity.id, identity.name, identity.ip)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        remaining = len(events)

        def acker() -> Callable[[], None]:
            fired = False

            def ack() -> None:
                nonlocal fired, remaining
                if fired:
                    return
                fired = True
                remaining -= 1
                if remaining == 0 and not done.done():
                    done.set_result(None)

            return ack

        source = f"agent:{identity.id}"
        for ev in events:
            raw = AgentRawEvent(
                ev.location,
                cut_text(ev.text),
                ev.log_format,
                record=ev.record,
                ack=acker(),
                source=source,
                agent=agent,
            )
            await self._queue.put(raw)
        await done
        self.batches += 1
