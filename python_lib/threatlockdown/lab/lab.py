"""``Lab``: build, use and tear down a set of network-namespace hosts with their own sshd, syslog and /etc."""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from . import inventory, mountns, netns, processes, sshd, syslog
from .commands import HOST_ENV, Tools, check_prerequisites, find_tools
from .errors import LabError
from .host import prepare_host_files
from .spec import HostLayout, HostSpec, LabLayout, LabSpec, host_specs, resolve_layout
from .state import MARKER_FILE, LabState, load_state

SYSLOG_TIMEOUT = 5.0


@dataclass(frozen=True)
class TeardownReport:
    """What a teardown found and removed (empty lists: there was nothing left)."""

    stopped_pids: list[int] = field(default_factory=list)
    unmounted: list[Path] = field(default_factory=list)
    netns: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    removed_workdir: Path | None = None

    @property
    def found_anything(self) -> bool:
        return bool(self.stopped_pids or self.unmounted or self.netns or self.links or self.removed_workdir)


@dataclass(frozen=True)
class HostStatus:
    name: str
    ipv4: str
    ipv6: str
    netns: bool
    rsyslogd: bool
    sshd: bool | None  # None: the host has no sshd by design


@dataclass(frozen=True)
class LabStatus:
    name: str
    workdir: Path
    state: str  # "up", "degraded", "building" or "absent"
    hosts: list[HostStatus]


@contextlib.contextmanager
def _machine_lock() -> Iterator[None]:
    """Serialise lab setup and teardown on this machine: two labs picking the same free subnet at the
    same moment, or `down` racing `up`, would otherwise trample each other."""
    lock_dir = Path("/run/lock") if Path("/run/lock").is_dir() else Path(tempfile.gettempdir())
    with (lock_dir / "threatlockdown-lab.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Lab:
    """A lab of hosts; use as a context manager or call ``up()``/``down()``.

    ``Lab(name="tld", hosts=[HostSpec("web1"), HostSpec("attacker", sshd=False)], workdir=Path(...))``
    """

    def __init__(
        self,
        spec: LabSpec | None = None,
        *,
        name: str = "tld",
        hosts: Sequence[HostSpec | str] = (),
        workdir: Path | None = None,
        ipv4_subnet: str | None = None,
        ipv6_subnet: str | None = None,
        sshd_timeout: float = 10.0,
    ) -> None:
        self.spec = spec or LabSpec(
            name=name,
            hosts=host_specs(hosts),
            workdir=workdir,
            ipv4_subnet=ipv4_subnet,
            ipv6_subnet=ipv6_subnet,
            sshd_timeout=sshd_timeout,
        )
        self._layout: LabLayout | None = None
        self._state: LabState | None = None
        # Daemons started by this object: waited for on teardown so they do not linger as zombies.
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._tools: Tools | None = None

    # -- construction from a running lab -------------------------------------------------------------

    @classmethod
    def attach(cls, name: str = "tld", workdir: Path | None = None) -> Lab:
        """A handle on a lab brought up by another process (reads its state file)."""
        spec_workdir = workdir if workdir is not None else LabSpec(name=name).effective_workdir
        state = load_state(spec_workdir / "state.json")
        lay = state.layout
        spec = LabSpec(
            name=lay.name,
            hosts=tuple(HostSpec(h.name, sshd=h.sshd, ipv4=h.ipv4, ipv6=h.ipv6) for h in lay.hosts),
            workdir=lay.workdir,
            ipv4_subnet=lay.ipv4_subnet,
            ipv6_subnet=lay.ipv6_subnet,
        )
        lab = cls(spec)
        lab._layout = lay
        lab._state = state
        return lab

    # -- properties ----------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def workdir(self) -> Path:
        return self.spec.effective_workdir

    @property
    def layout(self) -> LabLayout:
        if self._layout is None:
            raise LabError(f"lab {self.name!r} is not up (call up() first or Lab.attach())")
        return self._layout

    @property
    def hosts(self) -> list[str]:
        return [h.name for h in self.layout.hosts]

    @property
    def key_file(self) -> Path:
        """Private key that logs in as root on every host with sshd."""
        return self.layout.key_file

    @property
    def controller_ipv4(self) -> str:
        return self.layout.controller_ipv4

    @property
    def controller_ipv6(self) -> str:
        return self.layout.controller_ipv6

    def host(self, name: str) -> HostLayout:
        return self.layout.host(name)

    def ipv4(self, host: str) -> str:
        return self.host(host).ipv4

    def ipv6(self, host: str) -> str:
        return self.host(host).ipv6

    def host_path(self, host: str, inside: str) -> Path:
        """Where a per-host file (under /etc, /run, /var/log or /var/ossec) lives in the root namespace."""
        h = self.host(host)
        path = Path(inside)
        for base in mountns.PER_HOST_DIRS:
            if path == Path(base) or Path(base) in path.parents:
                return h.root / path.relative_to("/")
        raise LabError(
            f"{inside} is not a per-host path of {host!r} (only {', '.join(mountns.PER_HOST_DIRS)} are); "
            "use exec() to reach it"
        )

    def _tools_or_find(self) -> Tools:
        if self._tools is None:
            self._tools = find_tools()
        return self._tools

    # -- lifecycle -----------------------------------------------------------------------------------

    def __enter__(self) -> Lab:
        return self.up()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.down()

    def up(self) -> Lab:
        """Build the lab from scratch; leftovers of a lab with the same name are removed first."""
        tools = check_prerequisites()
        self._tools = tools
        with _machine_lock():
            _teardown(tools, self.name, self.workdir, self._children)
            v4, v6 = netns.choose_subnets(self.spec, tools)
            layout = resolve_layout(self.spec, v4, v6)
            self._layout = layout
            self._state = LabState(layout=layout)
            layout.workdir.mkdir(parents=True, exist_ok=True)
            (layout.workdir / MARKER_FILE).write_text(f"lab {layout.name}\n")
            # Saved before anything is created: a crash from here on leaves enough for `down` to clean.
            self._state.save()
            try:
                self._build(tools, layout, self._state)
            except BaseException:
                _teardown(tools, self.name, self.workdir, self._children)
                self._layout = None
                self._state = None
                raise
        return self

    def _build(self, tools: Tools, layout: LabLayout, state: LabState) -> None:
        sshd.generate_key(tools, layout.key_file, f"threatlockdown-lab-{layout.name}")
        version = sshd.openssh_version(tools) if any(h.sshd for h in layout.hosts) else (0, 0)
        netns.create_bridge(tools, layout)
        mountns.prepare_hosts_fs(tools, layout)
        mountns.prepare_ns_dir(tools, layout)
        for host in layout.hosts:
            prepare_host_files(tools, layout, host)
            syslog.prepare_rsyslog(layout, host)
            if host.sshd:
                sshd.prepare_sshd(tools, layout, host, version)
            netns.create_host_network(tools, layout, host)
            mountns.create_host_namespaces(tools, host)
        started: list[tuple[HostLayout, subprocess.Popen[bytes]]] = []
        for host in layout.hosts:
            prefix = mountns.nsenter_argv(tools, host)
            console = host.console_dir / "rsyslogd.out"
            rs = self._start(prefix, syslog.rsyslogd_argv(tools.rsyslogd), console)
            state.pids.setdefault(host.name, {})["rsyslogd"] = rs.pid
            state.save()
            syslog.wait_for_syslog_socket(host, rs, SYSLOG_TIMEOUT, console)
            if host.sshd:
                # `sshd -t` turns a config mistake into a clear error instead of a silent early exit.
                self.exec(host.name, [tools.sshd, "-t", "-f", "/etc/ssh/sshd_config"], check=True)
                proc = self._start(
                    prefix, [tools.sshd, "-D", "-f", "/etc/ssh/sshd_config"], host.console_dir / "sshd.out"
                )
                state.pids[host.name]["sshd"] = proc.pid
                state.save()
                started.append((host, proc))
        for host, proc in started:
            sshd.wait_for_sshd(host, proc, self.spec.sshd_timeout, host.console_dir / "sshd.out")
        state.status = "up"
        state.save()

    def _start(self, prefix: Sequence[str], argv: Sequence[str], console: Path) -> subprocess.Popen[bytes]:
        proc = processes.start_daemon(prefix, argv, console)
        self._children[proc.pid] = proc
        return proc

    def down(self) -> TeardownReport:
        """Stop every process of the lab and remove its namespaces, interfaces, mounts and workdir.

        Safe to call any number of times, on a half-built lab, or for a lab another process built."""
        tools = check_prerequisites()
        with _machine_lock():
            report = _teardown(tools, self.name, self.workdir, self._children)
        self._layout = None
        self._state = None
        return report

    # -- using the hosts -----------------------------------------------------------------------------

    def exec(
        self,
        host: str,
        argv: Sequence[str],
        *,
        input: str | None = None,
        check: bool = False,
        timeout: float | None = 60.0,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the host (its network, mount and UTS namespaces) and capture its output."""
        prefix = mountns.nsenter_argv(self._tools_or_find(), self.host(host))
        try:
            done = subprocess.run(
                [*prefix, *argv],
                input=input,
                capture_output=True,
                text=True,
                timeout=timeout,
                env={**HOST_ENV, **(env or {})},
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise LabError(f"host {host}: {' '.join(argv)} did not finish within {timeout} s") from None
        if check and done.returncode != 0:
            detail = (done.stderr or done.stdout).strip() or "no output"
            raise LabError(
                f"host {host}: {' '.join(argv)} failed with exit status {done.returncode}: {detail}"
            )
        return done

    def spawn(
        self, host: str, argv: Sequence[str], *, console: Path | None = None
    ) -> subprocess.Popen[bytes]:
        """Start a background program inside the host; teardown stops it with the rest of the host."""
        h = self.host(host)
        name = Path(argv[0]).name if argv else "process"
        out = console if console is not None else h.console_dir / f"{name}.out"
        return self._start(mountns.nsenter_argv(self._tools_or_find(), h), argv, out)

    def ssh_argv(
        self, host: str, *, user: str = "root", command: Sequence[str] = (), ipv6: bool = False
    ) -> list[str]:
        """An ``ssh`` command line from the root namespace into the host with the lab key."""
        h = self.host(host)
        if not h.sshd:
            raise LabError(f"host {host!r} runs no sshd")
        return [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            str(self.key_file),
            *sshd.SSH_CLIENT_OPTIONS,
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=5",
            f"{user}@{h.ipv6 if ipv6 else h.ipv4}",
            *command,
        ]

    def write_inventory(self, path: Path, groups: Mapping[str, Sequence[str]] | None = None) -> Path:
        """Write an Ansible YAML inventory of the hosts that run sshd; ``groups`` maps group -> hosts."""
        return inventory.write_inventory(self.layout, path, groups)

    def status(self) -> LabStatus:
        return lab_status(self._tools_or_find(), self.name, self.workdir)


def lab_status(tools: Tools, name: str, workdir: Path) -> LabStatus:
    """Health of a lab as seen from its state file and the running system."""
    try:
        state = load_state(workdir / "state.json")
    except LabError:
        return LabStatus(name=name, workdir=workdir, state="absent", hosts=[])
    existing = set(netns.list_netns(tools))
    hosts: list[HostStatus] = []
    for h in state.layout.hosts:
        pids = state.pids.get(h.name, {})
        ns_ids = {i for i in (processes.namespace_id(netns.NETNS_DIR / h.netns),) if i is not None}
        members = processes.pids_in_namespaces(ns_ids)

        def running(daemon: str, members: set[int] = members, pids: dict[str, int] = pids) -> bool:
            pid = pids.get(daemon)
            return pid is not None and pid in members and processes.is_alive(pid)

        hosts.append(
            HostStatus(
                name=h.name,
                ipv4=h.ipv4,
                ipv6=h.ipv6,
                netns=h.netns in existing,
                rsyslogd=running("rsyslogd"),
                sshd=running("sshd") if h.sshd else None,
            )
        )
    healthy = all(h.netns and h.rsyslogd and h.sshd is not False for h in hosts)
    overall = "building" if state.status != "up" else "up" if healthy else "degraded"
    return LabStatus(name=name, workdir=workdir, state=overall, hosts=hosts)


def destroy_lab(name: str = "tld", workdir: Path | None = None) -> TeardownReport:
    """Tear down a lab by name, from any process, including what a crashed run left behind."""
    tools = check_prerequisites()
    with _machine_lock():
        return _teardown(
            tools, name, workdir if workdir is not None else LabSpec(name=name).effective_workdir, {}
        )


def _teardown(
    tools: Tools, name: str, workdir: Path, children: dict[int, subprocess.Popen[bytes]]
) -> TeardownReport:
    """Everything owned by lab ``name``: recorded in its state file, or recognisable by the ``<name>-``
    prefix of namespaces, interfaces and namespace files (what a crash leaves without a state file)."""
    prefix = f"{name}-"
    state: LabState | None = None
    with contextlib.suppress(LabError):
        state = load_state(workdir / "state.json")
    if state is not None and state.layout.name != name:
        raise LabError(
            f"{workdir} holds lab {state.layout.name!r}, not {name!r}; tear that one down first "
            f"(tld lab down --name {state.layout.name} --workdir {workdir})"
        )
    ns_names = {n for n in netns.list_netns(tools) if n.startswith(prefix)}
    ns_files = set(mountns.stale_ns_files(name))
    if state is not None:
        ns_files |= {p for h in state.layout.hosts for p in (h.mnt_ns_file, h.uts_ns_file)}
    ns_ids = {i for i in (processes.namespace_id(netns.NETNS_DIR / n) for n in ns_names) if i is not None}
    ns_ids |= {i for i in (processes.namespace_id(p) for p in ns_files) if i is not None}

    def members() -> set[int]:
        found = processes.pids_in_namespaces(ns_ids)
        for n in ns_names:
            found.update(netns.netns_pids(tools, n))
        return found

    stopped = sorted(members())
    survivors = processes.stop_processes(members, children)
    if survivors:
        raise LabError(f"lab {name!r}: processes {sorted(survivors)} survived SIGKILL; teardown stopped")
    # Our own daemons may have been stopped by someone else (another process ran `down`): collect their
    # exit status so they do not stay zombies.
    for pid, proc in list(children.items()):
        if proc.poll() is not None:
            del children[pid]

    mounted = {m.mount_point for m in mountns.read_mounts()}
    unmounted = sorted(p for p in ns_files if p in mounted)
    mountns.unmount_paths(tools, unmounted)
    # The private self-bind of each ns directory (ours, or one of a crashed run elsewhere).
    ns_dirs = {p.parent for p in ns_files} | {workdir / "ns"}
    dir_mounts = sorted(d for d in ns_dirs if d in mounted)
    dir_mounts += sorted(set(mountns.stale_hosts_filesystems(name)) - set(dir_mounts))
    mountns.unmount_paths(tools, dir_mounts)
    unmounted += dir_mounts
    if workdir.exists() and (workdir / MARKER_FILE).exists():
        # Anything else still mounted in our own workdir (e.g. a bind a test left) goes too.
        extra = mountns.mounts_under(workdir)
        mountns.unmount_all_under(tools, workdir)
        unmounted += extra

    for n in sorted(ns_names):
        netns.delete_netns(tools, n)
    links = sorted(link for link in netns.list_links(tools) if link.startswith(prefix))
    # Host veths first (their peers vanish with them), then the bridge.
    for link in sorted(links, key=lambda x: x == f"{name}-br0"):
        netns.delete_link(tools, link)

    removed: Path | None = None
    if workdir.exists() and not (workdir / MARKER_FILE).exists():
        # Never delete a directory we did not create (a mistyped --workdir must not cost anyone data).
        if any(workdir.iterdir()):
            raise LabError(f"{workdir} exists but is not a lab workdir (no {MARKER_FILE}); not deleting it")
    elif workdir.exists():
        left = mountns.mounts_under(workdir)
        if left:
            raise LabError(f"{workdir}: still mounted: {', '.join(map(str, left))}; not deleting it")
        shutil.rmtree(workdir)
        removed = workdir
    return TeardownReport(
        stopped_pids=stopped,
        unmounted=unmounted,
        netns=sorted(ns_names),
        links=links,
        removed_workdir=removed,
    )
