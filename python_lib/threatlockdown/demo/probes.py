"""What the reference case looks at inside the lab hosts: SSH attempts, TCP connects, the drop set."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ..lab import Lab

# The set the firewall-drop module fills on the nftables backend (one per address family).
NFT_SET4 = ("inet", "threatlockdown", "blocked4")


class WaitTimeout(Exception):
    """A condition did not hold in time; the message says which."""


def wait_for(what: str, check: Callable[[], bool], seconds: float, interval: float = 0.1) -> float:
    """Poll ``check`` until it holds; the seconds it took. Raises WaitTimeout naming ``what``."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > seconds:
            raise WaitTimeout(f"{what}: not within {seconds:g} s")
        time.sleep(interval)
    return time.monotonic() - start


def ssh_attempt(lab: Lab, source: str, target: str, user: str) -> None:
    """An SSH login as ``user`` from host ``source``; without a key it fails, as an attack would."""
    lab.exec(
        source,
        [
            "ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5",
            f"{user}@{lab.ipv4(target)}", "true",
        ],
        timeout=30,
    )  # fmt: skip


def tcp_connects(lab: Lab, source: str, target: str, port: int = 22, timeout: float = 3.0) -> bool:
    """Whether host ``source`` completes a TCP handshake with ``target:port`` (a DROP makes it time out)."""
    probe = (
        "import socket, sys\n"
        "try:\n"
        f"    socket.create_connection(({lab.ipv4(target)!r}, {port}), timeout={timeout}).close()\n"
        "except OSError:\n"
        "    sys.exit(1)\n"
    )
    return lab.exec(source, ["python3", "-c", probe], timeout=timeout + 10).returncode == 0


@dataclass(frozen=True)
class DropEntry:
    """An address in a host's nftables drop set, as `nft list set` prints it (with its expiry)."""

    host: str
    text: str


def drop_entry(lab: Lab, host: str, address: str) -> DropEntry | None:
    """The element of ``address`` in the host's drop set, or None (also when the set does not exist)."""
    listed = lab.exec(host, ["nft", "list", "set", *NFT_SET4], timeout=10)
    if listed.returncode != 0:
        return None
    # Only what follows "elements = {" lists addresses ("flags interval,timeout" has commas too).
    _, found, elements = listed.stdout.partition("elements = {")
    if not found:
        return None
    for chunk in elements.split("}", 1)[0].replace("\n", " ").split(","):
        words = chunk.split()
        if words and words[0] == address:
            return DropEntry(host, " ".join(words))
    return None


def log_line(lab: Lab, host: str, path: str, needle: str) -> str | None:
    """The first line of a host's log file that contains ``needle``."""
    file = lab.host_path(host, path)
    if not file.exists():
        return None
    for line in file.read_text(errors="replace").splitlines():
        if needle in line:
            return line
    return None
