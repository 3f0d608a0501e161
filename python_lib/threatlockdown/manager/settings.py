"""Everything the manager daemon reads at start and at reload: ossec.conf, the ruleset, <auth>."""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from ..cli.common import ruleset_sources
from ..config.model import LocalFile, OssecConfig, Remote
from ..config.reader import load_config
from ..errors import SourceError, SourceErrors
from ..ruleset.loader import Ruleset, load_ruleset
from .home import Home
from .sections import AuthSection, read_auth_section

# Wazuh's authd reads the enrollment password from this file when <use_password> is yes.
PASSWORD_FILE = "authd.pass"


@dataclass(frozen=True)
class ManagerSettings:
    config: OssecConfig
    ruleset: Ruleset
    log_alert_level: int
    localfiles: tuple[LocalFile, ...]  # <location>s made absolute against the home
    syslog_remotes: tuple[Remote, ...]
    agent_remote: Remote | None  # the <remote><connection>secure</connection>, if any
    auth: AuthSection
    password_file: Path

    def collector_key(self) -> tuple[object, ...]:
        """What the collectors are built from, without line numbers: equal keys need no rebuild."""
        return (
            tuple(dataclasses.replace(lf, line=None) for lf in self.localfiles),
            tuple(dataclasses.replace(r, line=None) for r in self.syslog_remotes),
        )


def absolute_localfiles(localfiles: tuple[LocalFile, ...], root: Path) -> tuple[LocalFile, ...]:
    """Relative <location>s are relative to the home, as in Wazuh (logs/active-responses.log)."""
    out = []
    for lf in localfiles:
        loc = lf.location
        if loc and lf.log_format != "journald" and not os.path.isabs(loc) and loc.strip():
            lf = dataclasses.replace(lf, location=str(root / loc))
        out.append(lf)
    return tuple(out)


def load_manager_settings(home: Home) -> ManagerSettings:
    """Read and check everything; raise SourceErrors (file, line, element) for any problem."""
    conf = home.ossec_conf
    if not conf.is_file():
        raise SourceErrors(
            [SourceError(str(conf), None, None, "file not found (copy the shipped ossec.conf or write one)")]
        )
    config = load_config(conf)
    auth = read_auth_section(conf)
    sources, level = ruleset_sources(argparse.Namespace(config=str(conf), home=str(home.root), ruleset=None))
    ruleset = load_ruleset(sources)
    secure = [r for r in config.remotes if r.connection == "secure"]
    return ManagerSettings(
        config=config,
        ruleset=ruleset,
        log_alert_level=level,
        localfiles=absolute_localfiles(config.localfiles, home.root),
        syslog_remotes=tuple(r for r in config.remotes if r.connection == "syslog"),
        agent_remote=secure[0] if secure else None,
        auth=auth,
        password_file=home.etc / PASSWORD_FILE,
    )


def read_enrollment_password(path: Path) -> str | None:
    """The first line of etc/authd.pass, None when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceErrors([SourceError(str(path), None, None, f"cannot read: {exc}")]) from None
    first = text.splitlines()[0].strip() if text.strip() else ""
    if not first:
        raise SourceErrors([SourceError(str(path), 1, None, "the password is empty")])
    return first
