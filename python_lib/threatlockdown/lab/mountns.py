"""Per-host mount and UTS namespaces, kept alive by bind-mounted namespace files.

Each host gets a mount namespace in which its own directories are bind-mounted over /etc, /run, /var/log
and /var/ossec, a private /dev (with its own /dev/log) and a sysfs of its network namespace. The namespace
files live in ``<workdir>/ns``, a directory bind-mounted onto itself with private propagation (the kernel
refuses namespace bind mounts on shared mounts, and private keeps them out of other namespaces).

The host directories themselves live on a tmpfs mounted at ``<workdir>/hosts`` (source name
``tld-lab-<lab>``): copying /etc onto some disks costs seconds per host, onto tmpfs milliseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .commands import Tools, run
from .errors import LabError
from .netns import NETNS_DIR
from .spec import PER_HOST_DIRS as PER_HOST_DIRS  # re-exported: lab.py looks them up here
from .spec import HostLayout, LabLayout

# Source name of each lab's tmpfs; lets a host (and a teardown after a crash) recognise lab file systems.
HOSTS_FS_PREFIX = "tld-lab-"

# Runs inside the fresh mount namespace (already inside the host's network namespace).
# $1 = host name, $2 = host directory in the workdir.
_SETUP_SCRIPT = r"""
set -eu
host=$1 root=$2
hostname "$host"
# drop_copies FSTYPE AWK-CONDITION: lazily unmount mounts of that type matching the condition (src = source).
drop_copies() {
    awk -v fstype="$1" '{for (i = 7; i <= NF; i++) if ($i == "-") {
            src = $(i + 2); if ($(i + 1) == fstype && ('"$2"')) print $5; break }}' /proc/self/mountinfo |
        while read -r m; do umount -l "$m" 2>/dev/null || true; done
}
# This namespace started as a copy of the root one, including the namespace files of other hosts; they
# would keep those namespaces alive after their owners tear them down. (Before /run is covered, since
# /run/netns is where most of them are.)
drop_copies "nsfs" '1'
# A sysfs mounted from inside the network namespace shows this host's interfaces (as `ip netns exec` does).
umount -l /sys
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
# /run first: mount(8) may keep state under /run and that must land in the host's copy.
mount --bind "$root/run" /run
mount --bind "$root/etc" /etc
mount --bind "$root/var/log" /var/log
mount --bind "$root/var/ossec" /var/ossec
# The other lab file systems copied into this namespace go too: this host has no business reading other
# hosts' files. Only the original mounts (root field "/"), not the binds just made from them.
drop_copies "tmpfs" 'index(src, "tld-lab-") == 1 && $4 == "/"'
# A private /dev: the machine has no /dev/log to bind over, and creating one in the shared devtmpfs would
# touch the machine. rsyslogd of this host creates /dev/log here.
mount -t tmpfs -o mode=0755,nosuid,size=1m tmpfs /dev
mknod -m 666 /dev/null c 1 3
mknod -m 666 /dev/zero c 1 5
mknod -m 666 /dev/full c 1 7
mknod -m 666 /dev/random c 1 8
mknod -m 666 /dev/urandom c 1 9
mknod -m 666 /dev/tty c 5 0
mkdir /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts /dev/pts
ln -s pts/ptmx /dev/ptmx
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
ln -s /proc/self/fd /dev/fd
ln -s fd/0 /dev/stdin
ln -s fd/1 /dev/stdout
ln -s fd/2 /dev/stderr
"""


@dataclass(frozen=True)
class Mount:
    """One line of /proc/self/mountinfo that matters here."""

    mount_point: Path
    fstype: str
    source: str


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def read_mounts() -> list[Mount]:
    mounts: list[Mount] = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" ")
        try:
            sep = fields.index("-", 6)
        except ValueError:
            continue
        source = _unescape(fields[sep + 2]) if len(fields) > sep + 2 else ""
        mounts.append(Mount(Path(_unescape(fields[4])), fields[sep + 1], source))
    return mounts


def mounts_under(path: Path) -> list[Path]:
    """Mount points at or below ``path``, deepest first (the order to unmount them)."""
    found = {m.mount_point for m in read_mounts() if m.mount_point == path or path in m.mount_point.parents}
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def stale_ns_files(lab_name: str) -> list[Path]:
    """Namespace files of a lab with this name anywhere (e.g. from a crashed run in another workdir)."""
    pattern = re.compile(rf"^{re.escape(lab_name)}-[a-z0-9-]+\.(mnt|uts)$")
    return [m.mount_point for m in read_mounts() if m.fstype == "nsfs" and pattern.match(m.mount_point.name)]


def stale_hosts_filesystems(lab_name: str) -> list[Path]:
    """Host tmpfs mounts of a lab with this name anywhere."""
    return [
        m.mount_point for m in read_mounts() if m.fstype == "tmpfs" and m.source == hosts_fs_name(lab_name)
    ]


def hosts_fs_name(lab_name: str) -> str:
    return HOSTS_FS_PREFIX + lab_name


def prepare_hosts_fs(tools: Tools, layout: LabLayout) -> Path:
    hosts_dir = layout.workdir / "hosts"
    hosts_dir.mkdir(parents=True, exist_ok=True)
    run([tools.mount, "-t", "tmpfs", "-o", "mode=0755,nosuid", hosts_fs_name(layout.name), hosts_dir])
    run([tools.mount, "--make-private", hosts_dir])
    return hosts_dir


def prepare_ns_dir(tools: Tools, layout: LabLayout) -> None:
    ns_dir = layout.ns_dir
    ns_dir.mkdir(parents=True, exist_ok=True)
    if ns_dir not in {m.mount_point for m in read_mounts()}:
        run([tools.mount, "--bind", ns_dir, ns_dir])
    run([tools.mount, "--make-private", ns_dir])


def create_host_namespaces(tools: Tools, host: HostLayout) -> None:
    """Create the host's persistent mount and UTS namespaces and set up its file system view."""
    for inside in PER_HOST_DIRS:
        if not Path(inside).is_dir():
            # The mount point has to exist on the machine; an empty directory is all that is added.
            Path(inside).mkdir(parents=True, exist_ok=True)
        (host.root / inside.lstrip("/")).mkdir(parents=True, exist_ok=True)
    host.mnt_ns_file.touch()
    host.uts_ns_file.touch()
    run(
        [
            tools.nsenter,
            f"--net={NETNS_DIR / host.netns}",
            "--",
            tools.unshare,
            f"--mount={host.mnt_ns_file}",
            f"--uts={host.uts_ns_file}",
            "--propagation",
            "private",
            "--",
            tools.sh,
            "-c",
            _SETUP_SCRIPT,
            "lab-host-setup",
            host.name,
            str(host.root),
        ]
    )


def nsenter_argv(tools: Tools, host: HostLayout) -> list[str]:
    """Prefix that runs a command inside the host: its network, mount and UTS namespaces."""
    for path in (NETNS_DIR / host.netns, host.mnt_ns_file, host.uts_ns_file):
        if not path.exists():
            raise LabError(f"host {host.name!r} is not running: {path} does not exist (is the lab up?)")
    return [
        tools.nsenter,
        f"--net={NETNS_DIR / host.netns}",
        f"--mount={host.mnt_ns_file}",
        f"--uts={host.uts_ns_file}",
        "--",
    ]


def unmount_all_under(tools: Tools, path: Path) -> None:
    """Unmount everything at or below ``path`` (deepest first); lazily if a plain unmount is refused."""
    for mount_point in mounts_under(path):
        done = run([tools.umount, mount_point], check=False)
        if done.returncode != 0:
            run([tools.umount, "--lazy", mount_point], check=False)
    left = mounts_under(path)
    if left:
        raise LabError(f"cannot unmount {', '.join(map(str, left))}")


def unmount_paths(tools: Tools, paths: list[Path]) -> None:
    for p in sorted(set(paths), key=lambda q: len(q.parts), reverse=True):
        if run([tools.umount, p], check=False).returncode != 0:
            run([tools.umount, "--lazy", p], check=False)
