"""A long-lived process that has imported Ansible and forks one child per ansible-playbook run.

A cold ``ansible-playbook`` spends most of a short response importing Ansible (about 0.8 s of CPU here);
this server pays that once. ansible-runner still starts every run (with ``runner_warm_client.py`` as
its binary), still owns the pty, the job events and the artifacts; the client only passes the command
line, environment, working directory and its stdio descriptors to this server, which forks a child
that runs ``PlaybookCLI`` in-process with those descriptors as stdin/stdout/stderr.

Why this is correct: Ansible reads its configuration (ansible.cfg, ``ANSIBLE_*`` variables) when it is
imported, so the server is started with the environment runs will have (the executor computes it from
ansible-runner's own RunnerConfig). A child whose ``ANSIBLE_*``/HOME/PYTHONPATH differ from the server's
(apart from the per-run fact-cache path) does not run warm: it execs the real ``ansible-playbook``. Each
child runs exactly one CLI (Ansible keeps per-run globals such as CLIARGS) and then exits.

Run as ``python -m threatlockdown.response.runner_warm_server SOCKET``; it prints ``ready`` on stdout
once it listens, and stops on SIGTERM or when the process that started it is gone, killing the runs
still going.
"""

from __future__ import annotations

import array
import atexit
import contextlib
import json
import os
import selectors
import shutil
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HEADER = struct.Struct("!I")
# Seconds a stopped run gets to end its workers (Ansible's SIGTERM handler) before everything is killed.
KILL_GRACE = 2.0
MAX_REQUEST = 4 * 1024 * 1024
REQUEST_READ_TIMEOUT = 5.0
# Environment that may differ between the server and a run without changing what Ansible imported.
PER_RUN_ANSIBLE_VARS = frozenset({"ANSIBLE_CACHE_PLUGIN_CONNECTION"})
ENV_THAT_MUST_MATCH = ("HOME", "PYTHONPATH")
# Modules a playbook run imports anyway; importing them here takes them off every run's path.
PRELOAD_MODULES = (
    "ansible.cli.playbook",
    "ansible.executor.playbook_executor",
    "ansible.executor.task_queue_manager",
    "ansible.executor.task_executor",
    "ansible.executor.process.worker",
    "ansible.executor.module_common",
    "ansible.inventory.manager",
    "ansible.parsing.dataloader",
    "ansible.playbook",
    "ansible.playbook.play",
    "ansible.plugins.loader",
    "ansible.plugins.strategy.linear",
    "ansible.plugins.connection.ssh",
    "ansible.plugins.connection.local",
    "ansible.plugins.action.normal",
    "ansible.plugins.callback.default",
    "ansible.plugins.inventory.yaml",
    "ansible.plugins.inventory.ini",
    "ansible.plugins.inventory.script",
    "ansible.plugins.inventory.auto",
    "ansible.plugins.inventory.host_list",
    "ansible.plugins.shell.sh",
    "ansible.plugins.become.sudo",
    "ansible.plugins.filter.core",
    "ansible.plugins.test.core",
    "ansible.template",
    "ansible.vars.manager",
)


class RequestError(Exception):
    """A connection did not send a well-formed run request."""


@dataclass(frozen=True)
class RunRequest:
    argv: list[str]
    env: dict[str, str]
    cwd: str


def read_request(conn: socket.socket) -> tuple[RunRequest, list[int]]:
    """Read one length-prefixed JSON request and the three stdio descriptors sent with it."""
    conn.settimeout(REQUEST_READ_TIMEOUT)
    fds = array.array("i")
    data, ancdata, _flags, _addr = conn.recvmsg(65536, socket.CMSG_SPACE(3 * fds.itemsize))
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    received = list(fds)
    try:
        if len(received) != 3:
            raise RequestError(f"expected 3 descriptors (stdin, stdout, stderr), got {len(received)}")
        if len(data) < HEADER.size:
            raise RequestError("request shorter than its header")
        (size,) = HEADER.unpack_from(data)
        if size > MAX_REQUEST:
            raise RequestError(f"request of {size} bytes is larger than {MAX_REQUEST}")
        body = bytearray(data[HEADER.size :])
        while len(body) < size:
            chunk = conn.recv(size - len(body))
            if not chunk:
                raise RequestError("connection closed in the middle of the request")
            body += chunk
        raw = json.loads(bytes(body))
        argv, env, cwd = raw.get("argv"), raw.get("env"), raw.get("cwd")
        if not (isinstance(argv, list) and all(isinstance(a, str) for a in argv) and argv):
            raise RequestError("argv must be a non-empty list of strings")
        if not (
            isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
        ):
            raise RequestError("env must map strings to strings")
        if not isinstance(cwd, str):
            raise RequestError("cwd must be a string")
    except (RequestError, ValueError, OSError) as exc:
        for fd in received:
            os.close(fd)
        raise RequestError(str(exc)) from exc
    finally:
        conn.settimeout(None)
    return RunRequest(argv, env, cwd), received


def env_mismatch(base: dict[str, str], run: dict[str, str]) -> list[str]:
    """Names of variables that would make the imported Ansible configuration wrong for this run."""
    names = {k for k in (*base, *run) if k.startswith("ANSIBLE_") and k not in PER_RUN_ANSIBLE_VARS}
    names.update(ENV_THAT_MUST_MATCH)
    return sorted(n for n in names if base.get(n) != run.get(n))


# Builtin plugins a response run loads; loading them here also parses their documentation for their
# settings (YAML, the largest part of a warm run's start-up), which Ansible then keeps in its config.
PREWARM_PLUGINS = {
    "connection_loader": ("ssh", "local", "paramiko_ssh"),
    "shell_loader": ("sh", "powershell"),
    "become_loader": ("sudo", "su", "runas"),
    "strategy_loader": ("linear", "free"),
    "action_loader": ("normal", "command", "assert", "debug", "set_fact", "copy", "template"),
    "cache_loader": ("memory", "jsonfile"),
    # Not awx_display: it reads its per-run environment when it is imported.
    "callback_loader": ("default", "minimal", "oneline", "tree", "junit"),
}
ALREADY_CONFIGURED = "AnsibleCollectionFinder has already been configured"


def _prewarm_plugins() -> None:
    """Configure the collection loader as each run's CLI would (no --collections-path) and load the
    plugins runs use. A child's own init_plugin_loader() then finds it configured and keeps it."""
    import warnings

    from ansible import constants
    from ansible.plugins import loader
    from ansible.vars.plugins import _prime_vars_loader

    loader.init_plugin_loader([])
    warnings.filterwarnings("ignore", message=ALREADY_CONFIGURED)
    __import__("ansible_collections.ansible.builtin")  # its routing table: a large runtime.yml
    for loader_name, names in PREWARM_PLUGINS.items():
        plugin_loader = getattr(loader, loader_name)
        for name in names:
            plugin_loader.get(name, class_only=True)
    for name in constants.INVENTORY_ENABLED:
        loader.inventory_loader.get(name, class_only=True)
    _prime_vars_loader()
    # Runs list every connection, shell and become plugin (to know their variables), so load them all.
    for every in (
        loader.connection_loader,
        loader.shell_loader,
        loader.become_loader,
        loader.filter_loader,
        loader.test_loader,
    ):
        list(every.all(class_only=True))


def preload() -> str | None:
    """Import Ansible and its builtin plugins; returns the local temporary directory the import created
    (shared by all runs, with the AnsiballZ module cache)."""
    import importlib

    for name in PRELOAD_MODULES:
        importlib.import_module(name)
    _prewarm_plugins()
    from ansible import constants
    from ansible.utils.path import cleanup_tmp_file

    # The import registered an atexit removal of DEFAULT_LOCAL_TMP; every forked run would inherit it
    # and delete the directory (with the AnsiballZ cache the runs share) when it exits. The server
    # removes the directory itself when it stops.
    atexit.unregister(cleanup_tmp_file)
    local_tmp = getattr(constants, "DEFAULT_LOCAL_TMP", None)
    return str(local_tmp) if local_tmp else None


def _refresh_constants() -> None:
    """Re-read the settings from this run's environment (only the per-run ones can differ), keeping the
    shared local temporary directory; the same loop ansible.constants runs at import."""
    from ansible import constants

    for setting in constants.config.get_configuration_definitions():
        if setting == "DEFAULT_LOCAL_TMP":
            continue
        constants.set_constant(setting, constants.config.get_config_value(setting, variables=vars(constants)))


def _ansible_playbook_program() -> str:
    beside = Path(sys.executable).parent / "ansible-playbook"
    return str(beside) if beside.exists() else (shutil.which("ansible-playbook") or "ansible-playbook")


def run_child(request: RunRequest, stdio: list[int], base_env: dict[str, str], inherited: list[int]) -> None:
    """In the forked child: become the run and never return."""
    code = 1
    try:
        # The server's wake-up pipe is closed below; a signal must not write into whatever file later
        # gets its descriptor number.
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        os.setsid()  # its own process group, so the server can kill the run and its workers together
        for target, fd in enumerate(stdio):
            os.dup2(fd, target)
        for fd in {*stdio, *inherited}:
            if fd > 2:
                with contextlib.suppress(OSError):
                    os.close(fd)
        os.chdir(request.cwd)
        mismatch = env_mismatch(base_env, request.env)
        if mismatch:
            print(
                f"threatlockdown warm runner: environment differs in {', '.join(mismatch)}; "
                "running ansible-playbook cold",
                file=sys.stderr,
                flush=True,
            )
            program = _ansible_playbook_program()
            os.execve(sys.executable, [sys.executable, program, *request.argv[1:]], request.env)
        os.environ.clear()
        os.environ.update(request.env)
        sys.argv = list(request.argv)
        for stream in (sys.stdout, sys.stderr):
            # The server's own stdout is a pipe (block-buffered); the run writes to a pty and
            # ansible-runner reads events as they come.
            reconfigure = getattr(stream, "reconfigure", None)
            if reconfigure is not None:
                reconfigure(line_buffering=True)
        _refresh_constants()
        from ansible.cli.playbook import PlaybookCLI

        try:
            PlaybookCLI.cli_executor(list(request.argv))
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except BaseException as exc:  # the child must always reach os._exit
        with contextlib.suppress(Exception):
            print(f"threatlockdown warm runner: run failed: {exc!r}", file=sys.stderr, flush=True)
        code = 250
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        with contextlib.suppress(Exception):
            atexit._run_exitfuncs()
        os._exit(code)


def process_tree(root: int) -> list[tuple[int, int]]:
    """(pid, start time) of every live descendant of ``root``, read from /proc.

    Ansible's workers and its ssh clients start their own sessions, so killing the run's process group
    does not reach them; the start time guards against a pid reused by the time they are killed."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append((int(entry.name), int(fields[19])))
    found: list[tuple[int, int]] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child[0])
    return found


def kill_tree(members: list[tuple[int, int]]) -> None:
    """SIGKILL each (pid, start time) that is still the same process."""
    for pid, started in members:
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                stat = handle.read()
            if int(stat[stat.rfind(b")") + 2 :].split()[19]) == started:
                os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            continue


@dataclass
class _Run:
    pid: int
    conn: socket.socket
    pidfd: int
    kill_at: float | None = None  # set when the client went away: the run is being stopped
    tree: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class WarmServer:
    socket_path: Path
    base_env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    runs: dict[int, _Run] = field(default_factory=dict)  # by pidfd
    by_conn: dict[int, _Run] = field(default_factory=dict)  # by connection fd
    stopping: bool = False

    def serve(self, ready: Any = None) -> int:
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # the socket is root's only: it runs playbooks
        try:
            listener.bind(str(self.socket_path))
        finally:
            os.umask(old_umask)
        listener.listen(128)
        selector = selectors.DefaultSelector()
        selector.register(listener, selectors.EVENT_READ, "listen")
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        selector.register(wake_r, selectors.EVENT_READ, "wake")
        if ready is not None:
            print("ready", file=ready, flush=True)
        try:
            parent = os.getppid()
            while not self.stopping:
                if os.getppid() != parent:
                    # The executor's process is gone (killed without a chance to stop us): so are we.
                    print("parent process gone; stopping", file=sys.stderr, flush=True)
                    break
                self._kill_overdue()
                for key, _mask in selector.select(timeout=self._select_timeout()):
                    if key.data == "listen":
                        self._accept(listener, selector, [listener.fileno(), wake_r, wake_w])
                    elif key.data == "wake":
                        with contextlib.suppress(BlockingIOError):
                            os.read(wake_r, 512)
                    elif key.data == "exit":
                        self._reap(self.runs[key.fd], selector)
                    elif key.data == "conn":
                        self._client_gone(self.by_conn[key.fd], selector)
        finally:
            self._kill_all(selector)
            selector.close()
            listener.close()
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()
        return 0

    def _on_stop(self, _signum: int, _frame: Any) -> None:
        self.stopping = True

    def _accept(self, listener: socket.socket, selector: selectors.BaseSelector, own_fds: list[int]) -> None:
        conn, _ = listener.accept()
        try:
            request, stdio = read_request(conn)
        except RequestError as exc:
            print(f"refused a request: {exc}", file=sys.stderr, flush=True)
            conn.close()
            return
        inherited = [*own_fds, conn.fileno(), *self.runs.keys(), *self.by_conn.keys()]
        pid = os.fork()
        if pid == 0:
            run_child(request, stdio, self.base_env, inherited)
        for fd in stdio:
            os.close(fd)
        pidfd = os.pidfd_open(pid)
        run = _Run(pid, conn, pidfd)
        self.runs[pidfd] = run
        self.by_conn[conn.fileno()] = run
        selector.register(pidfd, selectors.EVENT_READ, "exit")
        selector.register(conn, selectors.EVENT_READ, "conn")

    def _select_timeout(self) -> float:
        deadlines = [r.kill_at for r in self.runs.values() if r.kill_at is not None]
        return max(0.0, min([1.0, *(d - time.monotonic() for d in deadlines)]))

    def _kill_overdue(self) -> None:
        now = time.monotonic()
        for run in self.runs.values():
            if run.kill_at is not None and now >= run.kill_at:
                run.tree = [*run.tree, *process_tree(run.pid)]
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(run.pid, signal.SIGKILL)
                kill_tree(run.tree)
                run.kill_at = now + KILL_GRACE  # again later if it is somehow still there

    def _reap(self, run: _Run, selector: selectors.BaseSelector) -> None:
        if run.kill_at is not None:
            kill_tree(run.tree)  # what the run left behind (its ssh clients run in their own sessions)
        _, status = os.waitpid(run.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code < 0:  # killed by a signal: report it the way a shell would
            code = 128 - code
        with contextlib.suppress(OSError):
            run.conn.sendall(f"{code}\n".encode("ascii"))
        self._forget(run, selector)

    def _client_gone(self, run: _Run, selector: selectors.BaseSelector) -> None:
        # ansible-runner killed the client (cancel or timeout): the run must not outlive it. SIGTERM
        # first, so Ansible stops its workers' process groups itself; SIGKILL after KILL_GRACE.
        run.tree = process_tree(run.pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(run.pid, signal.SIGTERM)
        run.kill_at = time.monotonic() + KILL_GRACE
        selector.unregister(run.conn)
        self.by_conn.pop(run.conn.fileno(), None)

    def _forget(self, run: _Run, selector: selectors.BaseSelector) -> None:
        selector.unregister(run.pidfd)
        os.close(run.pidfd)
        self.runs.pop(run.pidfd, None)
        if self.by_conn.pop(run.conn.fileno(), None) is not None:
            selector.unregister(run.conn)
        run.conn.close()

    def _kill_all(self, selector: selectors.BaseSelector) -> None:
        for run in list(self.runs.values()):
            tree = process_tree(run.pid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.pid, signal.SIGKILL)
            kill_tree(tree)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(run.pid, 0)
            self._forget(run, selector)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m threatlockdown.response.runner_warm_server SOCKET", file=sys.stderr)
        return 2
    server = WarmServer(Path(argv[0]))
    local_tmp = preload()
    try:
        return server.serve(ready=sys.stdout)
    finally:
        if local_tmp:
            shutil.rmtree(local_tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
