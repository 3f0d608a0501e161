"""The event as it flows through pre-decoding, decoding and rule matching."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Predecoded:
    """What the header parser found (Wazuh's ``predecoder`` block of an alert)."""

    log: str  # the message after the header; decoders and rules look at this
    program_name: str = ""
    timestamp: str = ""  # the raw timestamp text of the header
    hostname: str = ""
    # Wazuh puts predecoder.hostname in alerts only for classic BSD headers.
    hostname_in_alert: bool = False
    pid: str = ""


@dataclass(slots=True)
class Event:
    """One log line and everything learned about it."""

    full_log: str
    location: str
    log: str
    program_name: str = ""
    timestamp: str = ""
    hostname: str = ""
    hostname_in_alert: bool = False
    agent_id: str = "000"
    agent_name: str = ""
    agent_ip: str = ""
    decoder_name: str = ""
    decoder_parent: str = ""
    decoder_id: str = ""  # the name rules' <decoded_as> compares with
    # Decoded fields; the ``user`` order goes into ``dstuser`` as Wazuh does.
    fields: dict[str, str] = field(default_factory=dict)
    # Wazuh's "ftscomment"/accumulate are not needed by our alerts.

    @classmethod
    def from_predecoded(cls, p: Predecoded, full_log: str, location: str) -> Event:
        return cls(
            full_log=full_log,
            location=location,
            log=p.log,
            program_name=p.program_name,
            timestamp=p.timestamp,
            hostname=p.hostname,
            hostname_in_alert=p.hostname_in_alert,
        )

    @property
    def srcip(self) -> str:
        return self.fields.get("srcip", "")

    @property
    def user(self) -> str:
        """dstuser, else srcuser: what a rule's <user> compares with."""
        return self.fields.get("dstuser") or self.fields.get("srcuser", "")
