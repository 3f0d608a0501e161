"""build_collectors: which collectors an ossec.conf gives, and clear errors for what cannot be collected."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from threatlockdown.collect import build_collectors
from threatlockdown.collect.journald import JournaldCollector
from threatlockdown.collect.syslog_receiver import SyslogReceiver
from threatlockdown.collect.tailer import FileTailer
from threatlockdown.config.model import LocalFile, Remote
from threatlockdown.errors import SourceErrors

LOG = logging.getLogger("test.collect.build")


def lf(log_format: str, location: str | None, line: int, **kw: Any) -> LocalFile:
    return LocalFile(log_format=log_format, location=location, path="ossec.conf", line=line, **kw)


def remote(line: int, **kw: Any) -> Remote:
    kw.setdefault("connection", "syslog")
    kw.setdefault("port", 514)
    kw.setdefault("protocol", ("udp",))
    kw.setdefault("allowed_ips", ("192.0.2.0/24",))
    return Remote(path="ossec.conf", line=line, **kw)


def test_one_collector_per_source(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    localfiles = [
        lf("syslog", "/var/log/auth.log", 10),
        lf("multi-line: 3", "/var/log/app/*.log", 14, multiline_lines=3),
        lf("json", "/var/log/x.json", 18, other={"only-future-events": "no"}),
        lf("journald", "journald", 22, filters=(("_SYSTEMD_UNIT", "^ssh.service$"),)),
        lf("journald", "journald", 26),
        lf("command", None, 30, command="df -P"),
        lf("syslog", "/var/log/auth.log", 34),
    ]
    remotes = [remote(40), remote(44, port=1514, connection="secure", protocol=("tcp",), allowed_ips=())]
    with caplog.at_level(logging.WARNING):
        collectors = build_collectors(localfiles, remotes, state_dir=tmp_path / "state", logger=LOG)
    assert (tmp_path / "state").is_dir()
    names = [c.name for c in collectors]
    assert names == [
        "file:/var/log/auth.log",
        "file:/var/log/app/*.log",
        "file:/var/log/x.json",
        "journald",
        "syslog:udp:514",
    ]
    assert isinstance(collectors[0], FileTailer)
    assert isinstance(collectors[3], JournaldCollector)
    assert isinstance(collectors[4], SyslogReceiver)
    # The block at line 26 takes everything, so journalctl gets no FIELD=VALUE pre-filter.
    assert collectors[3].command()[-2:] == ["--since", "now"]
    assert "ossec.conf:30: <log_format>: 'command' is not collected by the manager" in caplog.text
    assert (
        "ossec.conf:34: <location>: /var/log/auth.log is already read by the <localfile> at line 10"
        in caplog.text
    )
    assert "ossec.conf:44: <connection>: 'secure'" in caplog.text


def test_problems_name_file_line_and_element(tmp_path: Path) -> None:
    localfiles = [
        lf("syslog", None, 3),
        lf("syslog", "relative/auth.log", 7),
        lf("journald", "journald", 11, filters=(("_COMM", "(unclosed"),)),
    ]
    remotes = [remote(20, allowed_ips=("10.0.0.999",)), remote(25), remote(30)]
    with pytest.raises(SourceErrors) as exc:
        build_collectors(localfiles, remotes, state_dir=tmp_path, logger=LOG)
    assert [str(e) for e in exc.value.errors] == [
        "ossec.conf:3: <location>: missing: the file to read",
        "ossec.conf:7: <location>: 'relative/auth.log' is not an absolute path",
        "ossec.conf:11: <filter>: invalid regex '(unclosed': "
        "missing ), unterminated subpattern at position 0",
        "ossec.conf:20: <allowed-ips>: invalid IP address or network '10.0.0.999': "
        "'10.0.0.999' does not appear to be an IPv4 or IPv6 network",
        "ossec.conf:30: <port>: 514/udp is already used by the <remote> at line 25",
    ]
