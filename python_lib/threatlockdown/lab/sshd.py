"""Each host's own OpenSSH server: configuration, keys, and waiting until it answers."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from pathlib import Path

from .commands import Tools, run, tail
from .errors import LabError
from .spec import HostLayout, LabLayout

SSH_PORT = 22
# What a client from the controller needs so that the lab's throw-away host keys never end up in (or clash
# with) anyone's known_hosts.
SSH_CLIENT_OPTIONS: tuple[str, ...] = ("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null")


def generate_key(tools: Tools, path: Path, comment: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    for old in (path, path.with_name(path.name + ".pub")):
        old.unlink(missing_ok=True)
    run([tools.ssh_keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path])


def openssh_version(tools: Tools) -> tuple[int, int]:
    # `sshd -V` prints "OpenSSH_9.2p1 ..." on stderr; older servers print it with their usage text.
    done = run([tools.sshd, "-V"], check=False)
    match = re.search(r"OpenSSH_(\d+)\.(\d+)", done.stderr + done.stdout)
    if match is None:
        raise LabError(f"cannot tell the OpenSSH version of {tools.sshd}: {done.stderr.strip()!r}")
    return int(match.group(1)), int(match.group(2))


def render_sshd_config(layout: LabLayout, host: HostLayout, version: tuple[int, int]) -> str:
    lines = [
        f"# Lab {layout.name}, host {host.name}: written by threatlockdown.lab at every `lab up`.",
        # Snippets win (first value counts), so roles can still change settings the usual Debian way.
        "Include /etc/ssh/sshd_config.d/*.conf",
        f"Port {SSH_PORT}",
        f"ListenAddress {host.ipv4}",
        f"ListenAddress {host.ipv6}",
        "HostKey /etc/ssh/ssh_host_ed25519_key",
        "PidFile /run/sshd.pid",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        # Keys live in the host's own /etc, not in the machine's shared /root/.ssh.
        "AuthorizedKeysFile /etc/ssh/authorized_keys/%u",
        # Password logins of other users stay possible so attacks produce pam_unix/"Failed password" lines.
        "PasswordAuthentication yes",
        "KbdInteractiveAuthentication no",
        "UsePAM yes",
        "SyslogFacility AUTH",
        "LogLevel INFO",
        "UseDNS no",
        # Tests open many connections quickly; Debian's defaults would start dropping them.
        "MaxStartups 1000",
        "MaxSessions 100",
        "PrintMotd no",
        "AcceptEnv LANG LC_*",
        "Subsystem sftp internal-sftp",
    ]
    if version >= (9, 8):
        # Since 9.8 sshd penalises (blocks) sources that fail often, which the attack tests do on purpose.
        lines.append("PerSourcePenalties no")
    return "\n".join(lines) + "\n"


def prepare_sshd(tools: Tools, layout: LabLayout, host: HostLayout, version: tuple[int, int]) -> None:
    """Host keys, config and the lab key as root's only authorized key, all in the host's own /etc."""
    ssh_dir = host.etc_dir / "ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True)
    # Never reuse the machine's host keys that came with the copy of /etc.
    for old in ssh_dir.glob("ssh_host_*"):
        old.unlink()
    generate_key(tools, ssh_dir / "ssh_host_ed25519_key", f"{host.name}.{layout.name}.lab")
    snippets = ssh_dir / "sshd_config.d"
    snippets.mkdir(exist_ok=True)
    for old in snippets.glob("*.conf"):
        # Machine-specific snippets (ports, listen addresses) must not leak into the host.
        old.unlink()
    (ssh_dir / "sshd_config").write_text(render_sshd_config(layout, host, version))
    keys = ssh_dir / "authorized_keys"
    keys.mkdir(mode=0o755, exist_ok=True)
    pub = layout.key_file.with_name(layout.key_file.name + ".pub").read_text()
    (keys / "root").write_text(pub)
    (keys / "root").chmod(0o644)
    # Debian's sshd refuses to start without its privilege separation directory.
    (host.run_dir / "sshd").mkdir(mode=0o755, parents=True, exist_ok=True)


def wait_for_sshd(host: HostLayout, proc: subprocess.Popen[bytes], timeout: float, console: Path) -> None:
    """Poll the host's SSH port from the root namespace until sshd greets, dies, or time runs out."""
    deadline = time.monotonic() + timeout
    last_error = "no attempt"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(
                f"sshd of host {host.name!r} exited with status {proc.returncode}: {tail(console)}"
            )
        try:
            with socket.create_connection((host.ipv4, SSH_PORT), timeout=1.0) as conn:
                conn.settimeout(2.0)
                banner = conn.recv(256)
                if banner.startswith(b"SSH-"):
                    # Introducing ourselves turns the probe into a plain "Connection closed ... [preauth]"
                    # line instead of a "did not receive identification string" scan alert.
                    conn.sendall(b"SSH-2.0-tld-lab-probe\r\n")
                    return
                last_error = f"unexpected banner {banner[:40]!r}"
        except OSError as exc:
            last_error = str(exc)
        time.sleep(0.05)
    raise LabError(
        f"sshd of host {host.name!r} did not answer on {host.ipv4}:{SSH_PORT} within {timeout} s "
        f"(last error: {last_error}); console: {tail(console)}"
    )
