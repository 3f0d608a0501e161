"""journald helpers: Wazuh's syslog text for an entry, field values, filters and the journalctl command."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from threatlockdown.collect.journald import (
    FieldFilter,
    FilterGroup,
    JournaldCollector,
    field_text,
    filter_groups,
    journalctl_matches,
    syslog_line,
)
from threatlockdown.config.model import LocalFile
from threatlockdown.errors import SourceErrors

LOG = logging.getLogger("test.collect.journald")


def test_syslog_line_like_wazuh() -> None:
    rec = {
        "__REALTIME_TIMESTAMP": "1709296774123456",  # 2024-03-01 12:39:34 UTC
        "_HOSTNAME": "web1",
        "SYSLOG_IDENTIFIER": "sshd",
        "SYSLOG_PID": "77",
        "_PID": "78",
        "MESSAGE": "Accepted publickey for root",
    }
    assert syslog_line(rec) == "Mar 01 12:39:34 web1 sshd[77]: Accepted publickey for root"
    del rec["SYSLOG_PID"]
    assert syslog_line(rec) == "Mar 01 12:39:34 web1 sshd[78]: Accepted publickey for root"
    del rec["_PID"]
    assert syslog_line(rec) == "Mar 01 12:39:34 web1 sshd: Accepted publickey for root"
    del rec["SYSLOG_IDENTIFIER"]
    assert syslog_line(rec) is None


def test_field_values_as_journalctl_prints_them() -> None:
    assert field_text("x") == "x"
    assert field_text([104, 105, 255]) == "hi\ufffd"  # binary data: a list of bytes
    assert field_text(["first", "second"]) == "first"  # a repeated field
    assert field_text(None) is None  # over 4096 bytes without --all
    assert field_text([]) is None


def lf(filters: tuple[tuple[str, str], ...], line: int = 9, ignore: str = "") -> LocalFile:
    other = {"ignore_if_missing": ignore} if ignore else {}
    return LocalFile(
        log_format="journald", location="journald", filters=filters, other=other, path="ossec.conf", line=line
    )


def test_filter_groups_or_between_blocks_and_between_filters() -> None:
    groups = filter_groups(
        [lf((("_SYSTEMD_UNIT", "^ssh"), ("PRIORITY", "^[0-4]$"))), lf((("_COMM", "sudo"),), ignore="")]
    )
    assert len(groups) == 2
    ssh = {"_SYSTEMD_UNIT": "ssh.service", "PRIORITY": "3"}
    assert groups[0].matches(ssh)
    assert not groups[0].matches({**ssh, "PRIORITY": "6"})
    assert not groups[0].matches({"PRIORITY": "3"})  # missing field: no match
    assert groups[1].matches({"_COMM": "xsudox"})  # searched, not anchored


def test_ignore_if_missing_and_a_block_without_filters() -> None:
    (group,) = filter_groups([lf((("_SYSTEMD_UNIT", "^ssh"), ("_COMM", "^sshd$")), ignore="_COMM")])
    assert group.matches({"_SYSTEMD_UNIT": "ssh.service"})
    assert not group.matches({"_SYSTEMD_UNIT": "ssh.service", "_COMM": "bash"})
    assert filter_groups([lf((("_COMM", "x"),)), lf(())]) == ()  # one block takes everything


def test_invalid_regex_names_file_line_and_element() -> None:
    with pytest.raises(SourceErrors, match=r"ossec.conf:12: <filter>: invalid regex '\(ssh'"):
        filter_groups([lf((("_SYSTEMD_UNIT", "(ssh"),), line=12)])


def test_literal_patterns_become_journalctl_matches() -> None:
    unit = FieldFilter("_SYSTEMD_UNIT", re.compile(r"^ssh\.service$"))
    comm = FieldFilter("_COMM", re.compile(r"^sshd$"))
    regex = FieldFilter("_COMM", re.compile(r"^ssh.$"))
    optional = FieldFilter("_COMM", re.compile(r"^sshd$"), ignore_if_missing=True)
    assert unit.literal() == "ssh.service"
    assert regex.literal() is None
    assert journalctl_matches([FilterGroup((unit, comm))]) == ["_SYSTEMD_UNIT=ssh.service", "_COMM=sshd"]
    assert journalctl_matches([FilterGroup((unit, regex))]) == []
    assert journalctl_matches([FilterGroup((unit, optional))]) == []
    assert journalctl_matches([FilterGroup((unit,)), FilterGroup((comm,))]) == []  # OR: filtered here


def test_command_line(tmp_path: Path) -> None:
    c = JournaldCollector(groups=(), state_dir=tmp_path, logger=LOG)
    assert c.command() == ["journalctl", "-o", "json", "--follow", "--no-pager", "--all", "--since", "now"]
    everything = JournaldCollector(groups=(), state_dir=tmp_path, logger=LOG, read_existing=True)
    assert everything.command() == ["journalctl", "-o", "json", "--follow", "--no-pager", "--all"]
