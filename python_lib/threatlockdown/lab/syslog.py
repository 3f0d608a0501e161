"""Each host's own rsyslogd, listening on the host's private /dev/log and writing its own /var/log."""

from __future__ import annotations

import stat
import subprocess
import time
from pathlib import Path

from .commands import tail
from .errors import LabError
from .spec import HostLayout, LabLayout

SYSLOG_SOCKET = "/dev/log"
RSYSLOG_CONF = "/etc/rsyslog.conf"
RSYSLOG_PID = "/run/rsyslogd.pid"


def render_rsyslog_config(layout: LabLayout, host: HostLayout) -> str:
    # Debian 12's file layout and its default RFC 3339 timestamps, without imklog (the kernel log belongs to
    # the machine) and without /etc/rsyslog.d (the machine's snippets may open sockets in shared paths).
    return "\n".join(
        [
            f"# Lab {layout.name}, host {host.name}: written by threatlockdown.lab at every `lab up`.",
            f'module(load="imuxsock" SysSock.Name="{SYSLOG_SOCKET}" SysSock.RateLimit.Interval="0")',
            "$FileOwner root",
            "$FileGroup adm",
            "$FileCreateMode 0640",
            "auth,authpriv.*                 /var/log/auth.log",
            "*.*;auth,authpriv.none          -/var/log/syslog",
            "",
        ]
    )


def prepare_rsyslog(layout: LabLayout, host: HostLayout) -> None:
    (host.etc_dir / "rsyslog.conf").write_text(render_rsyslog_config(layout, host))


def rsyslogd_argv(rsyslogd: str) -> list[str]:
    return [rsyslogd, "-n", "-f", RSYSLOG_CONF, "-i", RSYSLOG_PID]


def wait_for_syslog_socket(
    host: HostLayout, proc: subprocess.Popen[bytes], timeout: float, console: Path
) -> None:
    """Wait until rsyslogd has created /dev/log in the host (seen through /proc/<pid>/root)."""
    sock = Path(f"/proc/{proc.pid}/root") / SYSLOG_SOCKET.lstrip("/")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(
                f"rsyslogd of host {host.name!r} exited with status {proc.returncode}: {tail(console)}"
            )
        try:
            if stat.S_ISSOCK(sock.stat().st_mode):
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise LabError(
        f"rsyslogd of host {host.name!r} did not create {SYSLOG_SOCKET} within {timeout} s: {tail(console)}"
    )
