"""Finding and loading decoder and rule files, as ossec.conf's <ruleset> says.

Relative directories resolve against the home directory (``/var/ossec``). ``ruleset/decoders`` and
``ruleset/rules`` fall back to the ruleset shipped inside the package when the home has no copy, so a
fresh home works without installing anything. Files load in name order within each directory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ..errors import SourceError, SourceErrors
from ..xmlsrc import read_xml_file
from .decoders import DecoderLoader, DecoderSet
from .rules import ListResolver, RuleLoader, RuleSet
from .variables import Variables

SHIPPED_DECODERS = "ruleset/decoders"
SHIPPED_RULES = "ruleset/rules"


def shipped_ruleset_dir() -> Path:
    return Path(str(resources.files("threatlockdown") / "data" / "ruleset"))


@dataclass(frozen=True)
class RulesetSources:
    """Which directories and files to load (the <ruleset> section, already resolved)."""

    decoder_dirs: tuple[str, ...] = (SHIPPED_DECODERS, "etc/decoders")
    rule_dirs: tuple[str, ...] = (SHIPPED_RULES, "etc/rules")
    decoder_excludes: tuple[str, ...] = ()
    rule_excludes: tuple[str, ...] = ()
    rule_includes: tuple[str, ...] = ()
    decoder_includes: tuple[str, ...] = ()
    lists: tuple[str, ...] = ()
    home: Path | None = None


@dataclass
class Ruleset:
    decoders: DecoderSet
    rules: RuleSet
    files: list[str] = field(default_factory=list)
    warnings: list[SourceError] = field(default_factory=list)


def _resolve_dir(name: str, home: Path | None) -> Path | None:
    path = Path(name)
    if path.is_absolute():
        return path
    if home is not None and (home / path).is_dir():
        return home / path
    if name.rstrip("/") in (SHIPPED_DECODERS, SHIPPED_RULES):
        return shipped_ruleset_dir() / Path(name).name
    return home / path if home is not None else None


def _files(
    dirs: Sequence[str], includes: Sequence[str], excludes: Sequence[str], home: Path | None
) -> list[Path]:
    excluded = {Path(e).name for e in excludes} | {e for e in excludes}
    out: list[Path] = []
    for d in dirs:
        base = _resolve_dir(d, home)
        if base is None or not base.is_dir():
            continue
        for f in sorted(base.glob("*.xml")):
            if f.name in excluded or str(f) in excluded:
                continue
            out.append(f)
    for inc in includes:
        p = Path(inc)
        if not p.is_absolute() and home is not None:
            p = home / p
        if p not in out and p.name not in excluded:
            out.append(p)
    return out


def load_ruleset(sources: RulesetSources | None = None) -> Ruleset:
    """Load decoders then rules; raise SourceErrors listing every fatal problem."""
    src = sources or RulesetSources()
    variables = Variables()
    errors: list[SourceError] = []
    loaded: list[str] = []

    dloader = DecoderLoader(variables=variables)
    for f in _files(src.decoder_dirs, src.decoder_includes, src.decoder_excludes, src.home):
        try:
            dloader.load_elements(str(f), read_xml_file(f))
            loaded.append(str(f))
        except SourceErrors as exc:
            errors.extend(exc.errors)
    errors.extend(dloader.errors)

    rloader = RuleLoader(variables=variables, list_resolver=ListResolver(src.home, src.lists))
    for f in _files(src.rule_dirs, src.rule_includes, src.rule_excludes, src.home):
        try:
            rloader.load_elements(str(f), read_xml_file(f))
            loaded.append(str(f))
        except SourceErrors as exc:
            errors.extend(exc.errors)
    errors.extend(rloader.errors)
    if errors:
        raise SourceErrors(errors)
    rules = rloader.finish()
    return Ruleset(decoders=dloader.finish(), rules=rules, files=loaded, warnings=list(rules.warnings))
