"""The Executor that carries out response batches as ansible-runner runs of the response playbooks.

One batch is one ``ansible_runner.run``: a fresh private data directory, the user's inventory,
``--limit`` to the batch's hosts, the playbook named after the command's ``<executable>``
(``<playbook_dir>/<executable>.yml``, a fixed file) and the batch as extra vars. Every string of the
batch reaches Ansible in its unsafe form (ansible_unsafe.py), so no alert text is ever evaluated as a
template; no playbook text or module arguments are built from it. Results per host and per item come
from the run's job events (ansible_results.py).

Speed (docs/execution.md has the measurements): SSH connections are kept open across runs
(ControlPersist with a control-socket directory that outlives the runs), pipelining is on, facts are
not gathered, and with ``warm=True`` runs are forked from a process that has already imported Ansible
(runner_warm.py) instead of starting a new ``ansible-playbook`` each time.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import re
import subprocess
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .ansible_lanes import Lanes
from .ansible_results import item_results
from .ansible_runs import RunDirectories, ensure_private_dir, short_private_dir
from .ansible_unsafe import plain, unsafe
from .executor import Batch, ItemResult, ResponseItem
from .runner_warm import MAX_SOCKET_PATH, WarmRunner, WarmRunnerError, cold_command, run_environment

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_SSH_ARGS = "-o ControlMaster=auto -o ControlPersist=300s -o ServerAliveInterval=15"
# ssh adds "/" and a 10-character hash to the directory; sun_path allows 107 bytes.
MAX_CONTROL_DIR = 95
PLAYBOOK_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# An inventory host name used in --limit must be matched as exactly that host, so no pattern syntax
# (',' ':' '!' '&' '*' '?' '~' '[' and a leading '@' all mean something to Ansible).
HOST_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}$")
OPTION_WORD = re.compile(r"^([a-z_][a-z0-9_]{0,63})=(.*)$", re.DOTALL)
RUN_IDENT = "run"


def default_playbook_dir() -> Path:
    return REPO_ROOT / "playbooks" / "responses"


def default_collections_paths() -> tuple[Path, ...]:
    shipped = REPO_ROOT / "collections"
    return (shipped,) if (shipped / "ansible_collections").is_dir() else ()


@dataclass(frozen=True, kw_only=True)
class AnsibleExecutorSettings:
    """How responses run. Paths under ``queue_dir``: ``runs/`` (kept run directories), ``ssh-cp/``
    (SSH control sockets shared by all runs), ``ansible-warm/server.sock`` (the warm server). The socket
    directories are created 0700 and must stay so; ``queue_dir`` itself may be more open (the manager role
    makes it 0750)."""

    inventory: tuple[str, ...]  # inventory sources: files, directories, scripts or plugin configs
    queue_dir: Path
    playbook_dir: Path = field(default_factory=default_playbook_dir)
    keep_runs: int = 200
    forks: int = 20
    run_timeout: float = 300.0  # seconds; the run is killed after that and its items fail
    max_parallel_runs: int = 4  # runs at once, all commands together
    # Runs at once per (command, action); batches arriving while they are busy join the next run.
    runs_per_command: int = 1
    max_items_per_run: int = 5000
    warm: bool = True
    ssh_args: str | None = DEFAULT_SSH_ARGS  # None: keep what the user's ansible.cfg says
    pipelining: bool = True
    host_key_checking: bool = True  # ansible-runner would turn it off; keep ssh's checks unless asked
    connect_timeout: int = 10
    control_path_dir: Path | None = None  # default: queue_dir/ssh-cp
    ansible_config: Path | None = None
    collections_paths: tuple[Path, ...] = field(default_factory=default_collections_paths)
    envvars: Mapping[str, str] = field(default_factory=dict)
    warm_log: Path | None = None
    verbosity: int = 0

    @classmethod
    def for_home(cls, home: Path, inventory: Sequence[str], **options: Any) -> AnsibleExecutorSettings:
        """Settings with the manager home's layout (queue/, logs/ansible-warm.log)."""
        options.setdefault("warm_log", home / "logs" / "ansible-warm.log")
        return cls(inventory=tuple(inventory), queue_dir=home / "queue", **options)

    @property
    def runs_dir(self) -> Path:
        return self.queue_dir / "runs"

    @property
    def control_dir(self) -> Path:
        """SSH control sockets: ``control_path_dir``, else ``queue_dir/ssh-cp`` when that path is short
        enough for socket names, else a short private directory named after the queue directory."""
        if self.control_path_dir is not None:
            return self.control_path_dir
        default = self.queue_dir / "ssh-cp"
        if len(str(default).encode()) <= MAX_CONTROL_DIR:
            return default
        return short_private_dir(self.queue_dir, "ssh")

    @property
    def warm_socket(self) -> Path:
        """In a directory of its own: the socket runs playbooks, so its directory must be private."""
        default = self.queue_dir / "ansible-warm" / "server.sock"
        if len(str(default).encode()) <= MAX_SOCKET_PATH:
            return default
        return short_private_dir(self.queue_dir, "warm") / "server.sock"

    def problems(self) -> list[str]:
        """What makes these settings unusable, each naming the setting."""
        found = []
        if not self.inventory:
            found.append("inventory: at least one inventory source is needed")
        for source in self.inventory:
            if not Path(source).exists():
                found.append(f"inventory: {source} does not exist")
        if not self.playbook_dir.is_dir():
            found.append(f"playbook_dir: {self.playbook_dir} is not a directory")
        if self.keep_runs < 1:
            found.append(f"keep_runs: must be at least 1, got {self.keep_runs}")
        if self.forks < 1:
            found.append(f"forks: must be at least 1, got {self.forks}")
        if self.max_parallel_runs < 1:
            found.append(f"max_parallel_runs: must be at least 1, got {self.max_parallel_runs}")
        if self.runs_per_command < 1:
            found.append(f"runs_per_command: must be at least 1, got {self.runs_per_command}")
        if self.max_items_per_run < 1:
            found.append(f"max_items_per_run: must be at least 1, got {self.max_items_per_run}")
        if self.run_timeout <= 0:
            found.append(f"run_timeout: must be positive, got {self.run_timeout}")
        if len(str(self.control_dir).encode()) > MAX_CONTROL_DIR:
            found.append(
                f"control_path_dir: {self.control_dir} is longer than {MAX_CONTROL_DIR} bytes "
                "(ssh control sockets would not fit in a Unix socket path)"
            )
        if self.ansible_config is not None and not self.ansible_config.is_file():
            found.append(f"ansible_config: {self.ansible_config} is not a file")
        return found

    def environment(self) -> dict[str, str]:
        """Environment variables every run gets (on top of the process environment)."""
        env: dict[str, str] = {
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.control_dir),
            "ANSIBLE_PIPELINING": "True" if self.pipelining else "False",
            "ANSIBLE_GATHERING": "explicit",
            "ANSIBLE_HOST_KEY_CHECKING": "True" if self.host_key_checking else "False",
            "ANSIBLE_TIMEOUT": str(self.connect_timeout),
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_NOCOLOR": "True",
        }
        if self.ssh_args is not None:
            env["ANSIBLE_SSH_ARGS"] = self.ssh_args
        if self.ansible_config is not None:
            env["ANSIBLE_CONFIG"] = str(self.ansible_config)
        if self.collections_paths:
            # Ansible's own defaults stay after ours, so collections the user installed still resolve.
            paths = [str(p) for p in self.collections_paths]
            env["ANSIBLE_COLLECTIONS_PATH"] = ":".join(
                [*paths, "~/.ansible/collections", "/usr/share/ansible/collections"]
            )
        env.update(self.envvars)
        return env


def batch_options(extra_args: Sequence[str]) -> dict[str, str]:
    """``name=value`` words of a command's extra_args, e.g. ``backend=ipset``; later words win."""
    options: dict[str, str] = {}
    for word in extra_args:
        match = OPTION_WORD.match(word)
        if match:
            options[match.group(1)] = match.group(2)
    return options


def alert_json(alert: Mapping[str, Any]) -> str:
    """The alert as compact JSON text, cleaned as ``unsafe`` cleans data (reserved keys renamed, lone
    surrogates spelled out, depth bounded), so Ansible's ``from_json`` gives back plain data."""
    return json.dumps(plain(unsafe(alert)), ensure_ascii=False, separators=(",", ":"), default=str)


def batch_extravars(batch: Batch, items: Sequence[ResponseItem]) -> dict[str, Any]:
    """The variables a response playbook receives (playbooks/README.md), every string unsafe.

    Items are grouped by inventory host, so each host's tasks take their own list instead of filtering
    the whole batch (in ansible-core 2.19 filtering 1,000 items costs about 0.1 s per expression and
    host). The alert is one JSON string per item: Ansible loads a 1,000-alert batch about five times
    faster than the same alerts as nested data, and only playbooks that use it decode it."""
    extra_args = list(items[0].extra_args) if items else []
    by_host: dict[str, list[Any]] = {}
    for item in items:
        by_host.setdefault(item.host, []).append(
            unsafe(
                {
                    "key": item.key,
                    "host": item.host,
                    "srcip": item.srcip,
                    "user": item.user,
                    "timeout": item.timeout,
                    "extra_args": list(item.extra_args),
                    "alert_json": alert_json(item.alert),
                }
            )
        )
    return {
        "tld_action": unsafe(batch.action),
        "tld_command": unsafe(batch.command),
        "tld_executable": unsafe(batch.executable),
        "tld_batch_id": unsafe(batch.batch_id),
        "tld_extra_args": unsafe(extra_args),
        "tld_options": unsafe(batch_options(extra_args)),
        # Host names are keys, not values, so they cannot carry the unsafe marker; host_problem() has
        # already limited them to plain inventory names.
        "tld_items": by_host,
    }


def host_problem(host: str) -> str | None:
    if HOST_NAME.match(host):
        return None
    with contextlib.suppress(ValueError):
        ipaddress.IPv6Address(host)
        return None
    return f"host name {host!r} cannot be used as an exact --limit pattern"


def _run_problem(status: str, rc: int | None, run_timeout: float, artifact_dir: Path | None) -> str | None:
    if status == "successful":
        return None
    if status == "timeout":
        return f"timed out after {run_timeout:g} s"
    if status == "canceled":
        return "canceled (the executor is closing)"
    detail = ""
    if artifact_dir is not None:
        with contextlib.suppress(OSError):
            lines = (artifact_dir / "stdout").read_text(errors="replace").splitlines()
            errors = [line.strip() for line in lines if "ERROR" in line or "[ERROR]" in line]
            if errors:
                detail = ": " + errors[-1]
    return f"ansible-playbook exited with status {rc}{detail}"


@dataclass
class _RunOutcome:
    events: list[dict[str, Any]]
    status: str
    rc: int | None
    artifact_dir: Path | None
    error: str | None = None


class AnsibleRunnerExecutor:
    """Executor protocol implementation; see the module docstring."""

    def __init__(self, settings: AnsibleExecutorSettings) -> None:
        problems = settings.problems()
        if problems:
            raise ValueError("ansible executor settings: " + "; ".join(problems))
        self.settings = settings
        self.runs = RunDirectories(settings.runs_dir, settings.keep_runs)
        self._env = settings.environment()
        self._pool = ThreadPoolExecutor(
            max_workers=settings.max_parallel_runs, thread_name_prefix="ansible-run"
        )
        self._slots = asyncio.Semaphore(settings.max_parallel_runs)
        self._closing = threading.Event()
        self._warm: WarmRunner | None = None
        self._warm_lock = threading.Lock()
        self._lanes = Lanes(self._run_batch, settings.runs_per_command, settings.max_items_per_run)
        self.runs_started = 0  # ansible-runner runs so far

    # -- Executor protocol ---------------------------------------------------------------------------

    async def execute(self, batch: Batch) -> list[ItemResult]:
        refused: list[ItemResult] = []
        items: list[ResponseItem] = []
        for item in batch.items:
            problem = host_problem(item.host)
            if problem:
                refused.append(ItemResult(item.key, item.host, "failed", False, problem))
            else:
                items.append(item)
        playbook, problem = self.playbook_for(batch.executable)
        if self._closing.is_set():
            problem = "the executor is closed"
        if problem is not None or playbook is None:
            return refused + [ItemResult(i.key, i.host, "failed", False, problem or "") for i in items]
        if not items:
            return refused
        runnable = Batch(batch.batch_id, batch.command, batch.executable, batch.action, tuple(items))
        return refused + await self._lanes.submit(runnable)

    async def close(self) -> None:
        """Cancel running runs (ansible-runner kills them), wait for them, stop the warm server and close
        the SSH connections kept open for the runs."""
        self._closing.set()
        await self._lanes.wait()
        await asyncio.get_running_loop().run_in_executor(None, self._shutdown)

    # -- the rest ------------------------------------------------------------------------------------

    def playbook_for(self, executable: str) -> tuple[Path | None, str | None]:
        """The response playbook of a command's <executable>, or why there is none."""
        if not PLAYBOOK_NAME.match(executable) or ".." in executable:
            return None, f"executable {executable!r} is not a plain playbook name"
        for suffix in (".yml", ".yaml"):
            path = self.settings.playbook_dir / f"{executable}{suffix}"
            if path.is_file():
                return path.resolve(), None
        return None, f"no response playbook {self.settings.playbook_dir / (executable + '.yml')}"

    async def _run_batch(self, batch: Batch, cancel: threading.Event) -> list[ItemResult]:
        """One ansible-runner run for ``batch`` (already checked); results in the order of its items."""
        playbook, problem = self.playbook_for(batch.executable)
        if playbook is None:
            return [ItemResult(i.key, i.host, "failed", False, problem or "") for i in batch.items]
        async with self._slots:
            self.runs_started += 1
            loop = asyncio.get_running_loop()
            outcome = await loop.run_in_executor(self._pool, self._run_blocking, batch, playbook, cancel)
        problem = outcome.error or _run_problem(
            outcome.status, outcome.rc, self.settings.run_timeout, outcome.artifact_dir
        )
        return item_results(batch, outcome.events, problem)

    def start(self) -> None:
        """Start the warm server now instead of at the first run (blocking; optional)."""
        if self.settings.warm:
            self._warm_runner().ensure_running()

    def _warm_runner(self) -> WarmRunner:
        with self._warm_lock:
            if self._warm is None:
                self.settings.queue_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
                env = run_environment(self._env, self.settings.queue_dir)
                if self.settings.warm_log is not None:
                    self.settings.warm_log.parent.mkdir(parents=True, exist_ok=True)
                self._warm = WarmRunner(self.settings.warm_socket, env, log_path=self.settings.warm_log)
            return self._warm

    def _command(self, playbook: Path) -> tuple[str, str]:
        if self.settings.warm:
            try:
                warm = self._warm_runner()
                warm.ensure_running()
                return warm.command(playbook)
            except WarmRunnerError as exc:
                log.warning("warm ansible server unavailable, running ansible-playbook cold: %s", exc)
        return cold_command(playbook)

    def _run_blocking(self, batch: Batch, playbook: Path, cancel: threading.Event) -> _RunOutcome:
        import ansible_runner

        events: list[dict[str, Any]] = []

        def keep(event: dict[str, Any]) -> bool:
            events.append(event)
            return True  # also written to the run's artifacts (forensics)

        def cancelled() -> bool:
            return cancel.is_set() or self._closing.is_set()

        run_dir = self.runs.create(batch.batch_id)
        try:
            ensure_private_dir(self.settings.control_dir)
            binary, cmdline = self._command(playbook)
            runner = ansible_runner.run(
                private_data_dir=str(run_dir),
                ident=RUN_IDENT,
                binary=binary,
                cmdline=cmdline,
                inventory=list(self.settings.inventory),
                limit=",".join(batch.hosts),
                forks=max(1, min(self.settings.forks, len(batch.hosts))),
                extravars=batch_extravars(batch, batch.items),
                envvars=self._env,
                verbosity=self.settings.verbosity or None,
                timeout=self.settings.run_timeout,
                quiet=True,
                # pexpect_timeout is how often ansible-runner looks at the cancel callback.
                settings={"pexpect_timeout": 0.1, "pexpect_use_poll": True, "suppress_ansible_output": True},
                event_handler=keep,
                cancel_callback=cancelled,
            )
            return _RunOutcome(events, str(runner.status), runner.rc, run_dir / "artifacts" / RUN_IDENT)
        except Exception as exc:  # a broken run must become failed items, not a crash
            log.exception("ansible-runner run for batch %s failed to start", batch.batch_id)
            return _RunOutcome(events, "error", None, None, f"ansible-runner could not run: {exc}")
        finally:
            self.runs.finish(run_dir)
            with contextlib.suppress(OSError):
                self.runs.prune()

    def _shutdown(self) -> None:
        self._pool.shutdown(wait=True)
        if self._warm is not None:
            self._warm.stop()
        self._close_ssh_masters()

    def _close_ssh_masters(self) -> None:
        control = self.settings.control_dir
        if not control.is_dir():
            return
        for socket_path in control.iterdir():
            if not socket_path.is_socket():
                continue
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(
                    ["ssh", "-o", f"ControlPath={socket_path}", "-O", "exit", "threatlockdown-close"],
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    timeout=5,
                    check=False,
                )
