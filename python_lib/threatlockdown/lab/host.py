"""A host's own files: a copy of the machine's /etc adjusted to the host, and its empty per-host dirs."""

from __future__ import annotations

from .commands import Tools, run
from .spec import HostLayout, LabLayout

CONTROLLER_NAME = "controller"


def render_etc_hosts(layout: LabLayout, host: HostLayout) -> str:
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
        f"# lab {layout.name} (written by threatlockdown.lab)",
        f"{layout.controller_ipv4}\t{CONTROLLER_NAME}",
        f"{layout.controller_ipv6}\t{CONTROLLER_NAME}",
    ]
    for other in layout.hosts:
        lines.append(f"{other.ipv4}\t{other.name}")
        lines.append(f"{other.ipv6}\t{other.name}")
    return "\n".join(lines) + "\n"


def prepare_host_files(tools: Tools, layout: LabLayout, host: HostLayout) -> None:
    """Fill the host directory; the caller has made sure it does not exist yet."""
    host.root.mkdir(parents=True)
    # cp -a keeps owners, modes and symlinks, so /etc/shadow stays 0640 root:shadow in the copy.
    run([tools.cp, "-a", "/etc", host.etc_dir])
    (host.etc_dir / "hostname").write_text(host.name + "\n")
    (host.etc_dir / "hosts").write_text(render_etc_hosts(layout, host))
    for directory in (host.run_dir, host.log_dir, host.ossec_dir, host.console_dir):
        directory.mkdir(parents=True, exist_ok=True)
