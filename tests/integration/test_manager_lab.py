"""A real sshd in a lab host, logging through that host's rsyslogd, which forwards to the manager's syslog
receiver over UDP and TCP: the manager (in the root namespace, on the lab's controller address) writes
a 5710 alert for an invalid-user login attempt from the attacker host."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_manager_daemon import Manager, free_port, wait_for, write_home

from threatlockdown.lab import Lab
from threatlockdown.lab.commands import check_prerequisites
from threatlockdown.lab.syslog import RSYSLOG_CONF, RSYSLOG_PID, rsyslogd_argv

HOST = "web2"


def _restart_rsyslogd(lab: Lab, config: str) -> subprocess.Popen[bytes]:
    """Replace the host's rsyslogd by one reading ``config`` (rsyslogd re-reads its file only at start)."""
    lab.host_path(HOST, RSYSLOG_CONF).write_text(config)
    pid_file = lab.host_path(HOST, RSYSLOG_PID)
    with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
        old = int(pid_file.read_text())
        os.kill(old, signal.SIGTERM)
        wait_for(lambda: not Path(f"/proc/{old}").exists() or _zombie(old), 10, "old rsyslogd gone")
    proc = lab.spawn(HOST, rsyslogd_argv(check_prerequisites().rsyslogd))
    sock = Path(f"/proc/{proc.pid}/root/dev/log")
    wait_for(
        lambda: sock.exists() and stat.S_ISSOCK(sock.stat().st_mode), 10, "rsyslogd listening on /dev/log"
    )
    return proc


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


@pytest.fixture
def forwarding_host(lab: Lab) -> Iterator[tuple[int, int]]:
    """web2's rsyslogd forwards auth messages to the controller on a UDP and a TCP port."""
    udp, tcp = free_port(), free_port()
    original = lab.host_path(HOST, RSYSLOG_CONF).read_text()
    controller = lab.controller_ipv4
    proc = _restart_rsyslogd(
        lab, original + f"auth,authpriv.*  @{controller}:{udp}\nauth,authpriv.*  @@{controller}:{tcp}\n"
    )
    try:
        yield udp, tcp
    finally:
        proc.terminate()
        proc.wait(10)
        _restart_rsyslogd(lab, original)


def test_sshd_via_rsyslog_forwarding_gives_a_5710_alert(
    lab: Lab,
    forwarding_host: tuple[int, int],
    tmp_path: Path,
    ssh_login_attempt: Callable[[str, str], object],
) -> None:
    udp, tcp = forwarding_host
    controller, sender, attacker = lab.controller_ipv4, lab.ipv4(HOST), lab.ipv4("attacker")
    remotes = "".join(
        f"<remote><connection>syslog</connection><port>{port}</port><protocol>{proto}</protocol>"
        f"<local_ip>{controller}</local_ip><allowed-ips>{sender}</allowed-ips></remote>\n"
        for port, proto in ((udp, "udp"), (tcp, "tcp"))
    )
    manager = Manager(write_home(tmp_path, remotes)).start()
    try:
        user = f"nosuch{int(time.time()) % 100000}"
        ssh_login_attempt(user, sender)
        alerts_file = tmp_path / "logs" / "alerts" / "alerts.json"

        def ours() -> list[dict[str, Any]]:
            if not alerts_file.exists():
                return []
            alerts = [json.loads(line) for line in alerts_file.read_text().splitlines()]
            return [a for a in alerts if a["rule"]["id"] == "5710" and user in str(a["full_log"])]

        wait_for(
            lambda: len(ours()) >= 2, 20, f"a 5710 alert over UDP and over TCP; log: {manager.log()[-1500:]}"
        )
        for alert in ours()[:2]:
            assert alert["location"] == sender  # remote syslog: the sender's address, as in Wazuh
            assert alert["agent"] == {"id": "000", "name": alert["manager"]["name"]}
            assert alert["data"]["srcip"] == attacker
            assert alert["data"]["srcuser"] == user
            assert alert["predecoder"]["program_name"] == "sshd"
        sources = manager.status()["sources"]
        assert sources[f"syslog:udp:{udp}"]["processed"] >= 1
        assert sources[f"syslog:tcp:{tcp}"]["processed"] >= 1
    finally:
        assert manager.stop() == 0
