"""Finding the system tools a lab needs and running them with errors a person can act on."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import LabError

# Search sbin directories too: they are often missing from PATH (sudo, cron, CI shells).
_SEARCH_PATH = os.pathsep.join(
    ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
)

# Tool -> Debian package that provides it (scripts/setup.sh installs them).
_TOOL_PACKAGES: dict[str, str] = {
    "ip": "iproute2",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "mountpoint": "util-linux",
    "mount": "mount",
    "umount": "mount",
    "sshd": "openssh-server",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "rsyslogd": "rsyslog",
    "cp": "coreutils",
    "sh": "dash",
}

# The environment commands inside a host start with: nothing of the caller's leaks in (PATH entries,
# virtualenvs, proxies), like a fresh login.
HOST_ENV: Mapping[str, str] = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "LOGNAME": "root",
    "USER": "root",
}


@dataclass(frozen=True)
class Tools:
    """Absolute paths of every external program the lab runs."""

    ip: str
    nsenter: str
    unshare: str
    mountpoint: str
    mount: str
    umount: str
    sshd: str
    ssh: str
    ssh_keygen: str
    rsyslogd: str
    cp: str
    sh: str


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError(
            "the lab needs root: it creates network namespaces, veth interfaces, a bridge and bind mounts "
            "(run it as root, e.g. with sudo)"
        )


def find_tools() -> Tools:
    """Locate all tools at once so a missing package is reported together with the others."""
    found: dict[str, str] = {}
    missing: list[str] = []
    for tool, package in _TOOL_PACKAGES.items():
        path = shutil.which(tool, path=_SEARCH_PATH)
        if path is None:
            missing.append(f"{tool} (Debian package {package})")
        else:
            found[tool.replace("-", "_")] = path
    if missing:
        raise LabError(
            "missing programs needed by the lab: " + ", ".join(missing) + "; install them with "
            "scripts/setup.sh or apt-get install"
        )
    return Tools(**found)


def check_prerequisites() -> Tools:
    require_root()
    return find_tools()


def run(
    argv: Sequence[str | Path],
    *,
    check: bool = True,
    input: str | None = None,
    timeout: float | None = 30.0,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command and capture its output; failures raise ``LabError`` quoting the command and stderr."""
    args = [str(a) for a in argv]
    try:
        done = subprocess.run(
            args,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            check=False,
        )
    except FileNotFoundError:
        raise LabError(f"cannot run {args[0]}: program not found") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"`{shlex.join(args)}` did not finish within {timeout} s") from None
    if check and done.returncode != 0:
        detail = (done.stderr or done.stdout).strip() or "no output"
        raise LabError(f"`{shlex.join(args)}` failed with exit status {done.returncode}: {detail}")
    return done


def tail(path: Path, lines: int = 5) -> str:
    """Last lines of a daemon's console output, on one line, for error messages."""
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return "(no output)"
    return " | ".join(text.splitlines()[-lines:]) or "(no output)"
