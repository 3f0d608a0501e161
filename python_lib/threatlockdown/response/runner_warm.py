"""Start, watch and stop the warm ansible-playbook server; tell ansible-runner how to use it.

See runner_warm_server.py for what the server does. Here: the server is started with exactly the
environment ansible-runner will give its runs (computed with ansible-runner's own RunnerConfig, so the
callback plugin path, stdout callback and the executor's ANSIBLE_* settings match), it is restarted
when it has died, and ansible-runner gets ``binary`` = this Python and a command line that runs the
client with ``-I -S`` (no site import: a few milliseconds).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import runner_cold_launcher, runner_warm_client
from .ansible_runs import ensure_private_dir

log = logging.getLogger(__name__)

CLIENT = Path(runner_warm_client.__file__).resolve()
COLD_LAUNCHER = Path(runner_cold_launcher.__file__).resolve()
SERVER_MODULE = "threatlockdown.response.runner_warm_server"
# Set by ansible-runner per run; everything else in the run environment is the same for every run.
PER_RUN_ENV = (
    "AWX_ISOLATED_DATA_DIR",
    "ANSIBLE_CACHE_PLUGIN_CONNECTION",
    "RUNNER_OMIT_EVENTS",
    "RUNNER_ONLY_FAILED_EVENTS",
)
# The longest path a Unix socket can have on Linux (sun_path is 108 bytes with the NUL).
MAX_SOCKET_PATH = 107


class WarmRunnerError(Exception):
    """The warm server could not be started."""


def run_environment(envvars: Mapping[str, str], scratch: Path) -> dict[str, str]:
    """The environment ansible-runner gives a playbook run with these envvars, minus per-run values."""
    from ansible_runner.config.runner import RunnerConfig

    with tempfile.TemporaryDirectory(dir=scratch, prefix="envprobe-") as private:
        config = RunnerConfig(
            private_data_dir=private, playbook="probe.yml", envvars=dict(envvars), binary=sys.executable
        )
        config.prepare()
        env = {str(k): str(v) for k, v in config.env.items()}
    for name in PER_RUN_ENV:
        env.pop(name, None)
    return env


@dataclass
class WarmRunner:
    socket_path: Path
    env: dict[str, str]
    python: str = sys.executable
    start_timeout: float = 120.0
    log_path: Path | None = None
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if len(str(self.socket_path).encode()) > MAX_SOCKET_PATH:
            raise WarmRunnerError(
                f"socket path {self.socket_path} is longer than {MAX_SOCKET_PATH} bytes; "
                "choose a shorter queue directory"
            )

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def ensure_running(self) -> None:
        """Start the server, or restart it when it has died. Blocks until it listens."""
        with self._lock:
            if self.running:
                return
            if self._process is not None:
                log.warning(
                    "warm ansible server exited with status %s; restarting it", self._process.returncode
                )
            self._start()

    def _start(self) -> None:
        try:
            ensure_private_dir(self.socket_path.parent)
        except OSError as exc:
            raise WarmRunnerError(str(exc)) from exc
        output = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            process = subprocess.Popen(
                [self.python, "-m", SERVER_MODULE, str(self.socket_path)],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=output,
                cwd="/",
                start_new_session=True,  # a Ctrl-C for the manager must not reach the runs directly
            )
        finally:
            if self.log_path:
                output.close()  # type: ignore[union-attr]
        assert process.stdout is not None
        deadline = time.monotonic() + self.start_timeout
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([process.stdout], [], [], max(0.0, remaining))
            chunk = os.read(process.stdout.fileno(), 64) if ready else b""
            if not chunk:
                process.kill()
                process.wait()
                where = f"; see {self.log_path}" if self.log_path else ""
                raise WarmRunnerError(
                    f"warm ansible server did not start within {self.start_timeout:.0f} s "
                    f"(exit status {process.returncode}){where}"
                )
            line += chunk
        if line.strip() != b"ready":
            process.kill()
            process.wait()
            raise WarmRunnerError(f"warm ansible server said {line!r} instead of 'ready'")
        process.stdout.close()
        self._process = process

    def command(self, playbook: Path) -> tuple[str, str]:
        """``binary`` and ``cmdline`` for ansible_runner.run: the client, the socket, the playbook."""
        return self.python, shlex.join(["-I", "-S", str(CLIENT), str(self.socket_path), str(playbook)])

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server; it kills the runs still going."""
        with self._lock:
            process, self._process = self._process, None
            if process is None or process.poll() is not None:
                return
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()


def cold_command(playbook: Path) -> tuple[str, str]:
    """``binary`` and ``cmdline`` for a new ansible-playbook process per run (the warm server off),
    through the launcher that lets a cancel stop Ansible's workers too."""
    beside = Path(sys.executable).parent / "ansible-playbook"
    program = str(beside) if beside.exists() else (shutil.which("ansible-playbook") or "ansible-playbook")
    return sys.executable, shlex.join(["-I", "-S", str(COLD_LAUNCHER), program, str(playbook)])
