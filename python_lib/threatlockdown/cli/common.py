"""Options and loading shared by the analysis commands (logtest, analyze)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..analysis.session import AnalysisSession
from ..errors import SourceErrors
from ..ruleset.loader import SHIPPED_DECODERS, SHIPPED_RULES, Ruleset, RulesetSources, load_ruleset

DEFAULT_HOME = "/var/ossec"


def home_from(args: argparse.Namespace) -> Path:
    home = getattr(args, "home", None) or os.environ.get("TLD_HOME") or DEFAULT_HOME
    return Path(home)


def add_home_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--home", metavar="DIR", help=f"installation home (default: $TLD_HOME or {DEFAULT_HOME})"
    )


def add_ruleset_options(parser: argparse.ArgumentParser) -> None:
    add_home_option(parser)
    parser.add_argument(
        "-c",
        "--config",
        metavar="OSSEC_CONF",
        help="ossec.conf whose <ruleset> and <alerts> to use (default: HOME/etc/ossec.conf "
        "when it exists, else the shipped ruleset)",
    )
    parser.add_argument(
        "--ruleset", metavar="DIR", help="use DIR/decoders and DIR/rules instead of the shipped ruleset"
    )


def ruleset_sources(args: argparse.Namespace) -> tuple[RulesetSources, int]:
    """Where to load rules from and the log_alert_level, from -c/--home/--ruleset."""
    home = home_from(args)
    config_path = Path(args.config) if args.config else home / "etc" / "ossec.conf"
    sources = RulesetSources(home=home)
    level = 3
    if args.config or config_path.is_file():
        from ..config.reader import load_config

        cfg = load_config(config_path)
        rs = cfg.ruleset
        sources = RulesetSources(
            decoder_dirs=tuple(rs.decoder_dirs) or sources.decoder_dirs,
            rule_dirs=tuple(rs.rule_dirs) or sources.rule_dirs,
            decoder_excludes=tuple(rs.decoder_excludes),
            rule_excludes=tuple(rs.rule_excludes),
            rule_includes=tuple(rs.rule_includes),
            decoder_includes=tuple(getattr(rs, "decoder_includes", ())),
            lists=tuple(rs.lists),
            home=home,
        )
        level = cfg.alerts.log_alert_level
    if args.ruleset:
        base = Path(args.ruleset).resolve()
        sources = RulesetSources(
            decoder_dirs=tuple(
                str(base / "decoders") if d == SHIPPED_DECODERS else d for d in sources.decoder_dirs
            ),
            rule_dirs=tuple(str(base / "rules") if d == SHIPPED_RULES else d for d in sources.rule_dirs),
            decoder_excludes=sources.decoder_excludes,
            rule_excludes=sources.rule_excludes,
            rule_includes=sources.rule_includes,
            decoder_includes=sources.decoder_includes,
            lists=sources.lists,
            home=home,
        )
    return sources, level


def load_for_cli(args: argparse.Namespace) -> tuple[Ruleset, int] | None:
    """Load the ruleset, printing every error (file:line: <element>: ...) and returning None on failure."""
    try:
        sources, level = ruleset_sources(args)
        ruleset = load_ruleset(sources)
    except SourceErrors as exc:
        for err in exc.errors:
            print(f"error: {err}", file=sys.stderr)
        print(f"{len(exc.errors)} error(s); nothing analysed", file=sys.stderr)
        return None
    for warn in ruleset.warnings:
        print(f"warning: {warn}", file=sys.stderr)
    return ruleset, level


def new_session(ruleset: Ruleset, level: int) -> AnalysisSession:
    return AnalysisSession(ruleset, log_alert_level=level)
