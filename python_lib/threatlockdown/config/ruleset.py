"""<ruleset>: where decoders, rules and CDB lists are read from."""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from ..xmlsrc import line_of
from .findings import Findings
from .model import DEFAULT_DECODER_DIR, DEFAULT_RULE_DIR, RulesetConfig
from .values import children, required_text, tag_of

RULESET_ELEMENTS = (
    "decoder_dir",
    "rule_dir",
    "decoder_include",
    "decoder_exclude",
    "rule_include",
    "rule_exclude",
    "list",
)


@dataclass
class RulesetBuilder:
    """Accumulates every <ruleset> block of the file, in order."""

    values: dict[str, list[str]] = field(default_factory=lambda: {name: [] for name in RULESET_ELEMENTS})
    patterns: dict[str, dict[str, str]] = field(default_factory=lambda: {"decoder_dir": {}, "rule_dir": {}})

    def read(self, block: etree._Element, found: Findings) -> None:
        for child in children(block):
            tag = tag_of(child)
            if tag not in RULESET_ELEMENTS:
                found.unknown_element(line_of(child), "ruleset", tag, RULESET_ELEMENTS)
                continue
            text = required_text(child, found)
            if text is None:
                continue
            self.values[tag].append(text)
            if tag in self.patterns:
                # Wazuh reads the attribute name without regard to case.
                for key, value in child.attrib.items():
                    if str(key).lower() == "pattern":
                        self.patterns[tag][text] = str(value)

    def build(self) -> RulesetConfig:
        v = self.values
        return RulesetConfig(
            # No directory configured means Wazuh's default one, as analysisd does.
            decoder_dirs=tuple(v["decoder_dir"]) or (DEFAULT_DECODER_DIR,),
            rule_dirs=tuple(v["rule_dir"]) or (DEFAULT_RULE_DIR,),
            decoder_includes=tuple(v["decoder_include"]),
            decoder_excludes=tuple(v["decoder_exclude"]),
            rule_includes=tuple(v["rule_include"]),
            rule_excludes=tuple(v["rule_exclude"]),
            lists=tuple(v["list"]),
            decoder_dir_patterns=dict(self.patterns["decoder_dir"]),
            rule_dir_patterns=dict(self.patterns["rule_dir"]),
        )
