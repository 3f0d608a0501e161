"""``<var name="X">value</var>`` definitions and ``$X`` substitution in rule and decoder files."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_VAR_REF = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


@dataclass
class Variables:
    """Variables are global once defined, in load order, as in Wazuh."""

    values: dict[str, str] = field(default_factory=dict)

    def define(self, name: str, value: str) -> None:
        self.values[name] = value

    def expand(self, text: str) -> str:
        if "$" not in text or not self.values:
            return text
        return _VAR_REF.sub(lambda m: self.values.get(m.group(1), m.group(0)), text)
