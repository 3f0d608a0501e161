"""Exact reuse of what a message decodes to, and of its rule walk, when the same message comes again.

Decoding reads only the program name and the message after the header, so for a given ruleset its
result (decoder names and fields) is a function of that pair. The rule walk is too, as long as it
checked no condition that reads anything else: correlation memory, the clock, the host or agent name,
the location or the whole line (RuleEngine.walk reports this as ``volatile``). Logs repeat themselves
(cron, systemd, PAM session lines), and a repeated message then costs a dictionary lookup instead of
its decoding and walk. Ignore windows, firedtimes and correlation memory are still applied to every
event by RuleEngine.settle, so state evolves exactly as without the memo.

The memo is bounded: messages longer than MAX_MESSAGE_CHARS are not kept, and it holds at most two
generations of ``capacity`` entries each. New entries go into the young generation; when that is full
it becomes the old one (the previous old one is dropped) and a hit in the old generation moves the
entry back into the young one. Messages that keep coming back so survive, at the cost of one more
dictionary lookup on a miss instead of least-recently-used bookkeeping on every event.
"""

from __future__ import annotations

from ..ruleset.engine import WalkResult
from ..ruleset.event import Event

DEFAULT_CAPACITY = 8192
MAX_MESSAGE_CHARS = 1024


class Outcome:
    """What one (program name, message) decoded to, and its walk when that can be reused."""

    __slots__ = (
        "decoder_id",
        "decoder_name",
        "decoder_parent",
        "fields",
        "final",
        "kept",
        "parent_of_final",
        "quiet",
    )

    def __init__(self, event: Event, walk: WalkResult) -> None:
        self.decoder_name = event.decoder_name
        self.decoder_parent = event.decoder_parent
        self.decoder_id = event.decoder_id
        # A private copy: the event's own dict goes on to alerts and correlation memory.
        self.fields = dict(event.fields) if event.fields else None
        # False: the walk read more than the message and must run again for every event.
        self.kept = not walk.volatile
        self.final = walk.final
        self.parent_of_final = walk.parent_of_final
        # The kept walk ends in no rule or in a level-0 rule: such an event changes no engine state.
        self.quiet = self.kept and (walk.final is None or walk.final.rule.level == 0)

    def apply(self, event: Event) -> None:
        """Give ``event`` (fresh from the pre-decoder) the decoding remembered here."""
        event.decoder_name = self.decoder_name
        event.decoder_parent = self.decoder_parent
        event.decoder_id = self.decoder_id
        if self.fields is not None:
            event.fields = self.fields.copy()


class LineMemo:
    """Outcomes by (program name, message), for one ruleset (one analysis session).

    The per-line path looks keys up in ``young`` and ``old`` itself (recall written out), and calls
    ``keep`` for a hit in ``old``.
    """

    __slots__ = ("capacity", "old", "young")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self.young: dict[tuple[str, str], Outcome] = {}
        self.old: dict[tuple[str, str], Outcome] = {}

    def get(self, program_name: str, log: str) -> Outcome | None:
        key = (program_name, log)
        return self.young.get(key) or self.recall(key)

    def recall(self, key: tuple[str, str]) -> Outcome | None:
        """The outcome for ``key`` from the old generation (moved back to the young one), or None."""
        found = self.old.get(key)
        if found is not None:
            self.keep(key, found)
        return found

    def put(self, key: tuple[str, str], event: Event, walk: WalkResult) -> None:
        """Remember ``event``'s decoding under ``key`` (its program name and message), and ``walk``
        unless it read more than the message."""
        if self.capacity <= 0 or len(key[1]) > MAX_MESSAGE_CHARS:
            return
        young = self.young
        if len(young) >= self.capacity:
            self.old = young
            young = self.young = {}
        young[key] = Outcome(event, walk)

    def keep(self, key: tuple[str, str], outcome: Outcome) -> None:
        """Put ``outcome``, found in the old generation, back into the young one."""
        young = self.young
        if len(young) >= self.capacity:
            self.old = young
            young = self.young = {}
        young[key] = outcome

    def __len__(self) -> int:
        """Entries held (a message in both generations counts twice)."""
        return len(self.young) + len(self.old)
