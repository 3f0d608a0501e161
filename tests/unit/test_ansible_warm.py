"""The warm ansible-playbook server and its client: protocol, environment check, process clean-up."""

from __future__ import annotations

import array
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from threatlockdown.response.runner_warm import CLIENT, COLD_LAUNCHER, WarmRunner, WarmRunnerError
from threatlockdown.response.runner_warm_client import EXIT_NO_SERVER
from threatlockdown.response.runner_warm_server import (
    RequestError,
    env_mismatch,
    kill_tree,
    process_tree,
    read_request,
)


@pytest.fixture
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="tldw-", dir="/tmp") as name:
        yield Path(name)


def send(conn: socket.socket, body: bytes, fds: list[int]) -> None:
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())] if fds else []
    conn.sendmsg([struct.pack("!I", len(body)) + body], ancillary)


def test_request_with_its_descriptors() -> None:
    server, client = socket.socketpair()
    with server, client:
        body = json.dumps({"argv": ["ansible-playbook", "x.yml"], "env": {"A": "1"}, "cwd": "/"}).encode()
        send(client, body, [0, 1, 2])
        request, fds = read_request(server)
        try:
            assert request.argv == ["ansible-playbook", "x.yml"]
            assert request.env == {"A": "1"} and request.cwd == "/"
            assert len(fds) == 3 and all(fd > 2 for fd in fds)
        finally:
            for fd in fds:
                os.close(fd)


@pytest.mark.parametrize(
    ("body", "fds", "error"),
    [
        (b'{"argv": ["a"], "env": {}, "cwd": "/"}', [], "expected 3 descriptors"),
        (b"not json", [0, 1, 2], "Expecting value"),
        (b'{"argv": [], "env": {}, "cwd": "/"}', [0, 1, 2], "argv must be a non-empty list"),
        (b'{"argv": ["a"], "env": {"A": 1}, "cwd": "/"}', [0, 1, 2], "env must map strings"),
        (b'{"argv": ["a"], "env": {}, "cwd": 5}', [0, 1, 2], "cwd must be a string"),
    ],
)
def test_malformed_requests_are_refused(body: bytes, fds: list[int], error: str) -> None:
    server, client = socket.socketpair()
    with server, client:
        before = len(os.listdir("/proc/self/fd"))
        send(client, body, fds)
        with pytest.raises(RequestError, match=error):
            read_request(server)
        assert len(os.listdir("/proc/self/fd")) == before  # received descriptors were closed


def test_environment_differences_that_matter() -> None:
    base = {
        "ANSIBLE_CONFIG": "/a.cfg",
        "HOME": "/root",
        "PATH": "/bin",
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": "/x",
    }
    same = {
        **base,
        "PATH": "/usr/bin",
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": "/y",
        "AWX_ISOLATED_DATA_DIR": "/z",
    }
    assert env_mismatch(base, same) == []
    assert env_mismatch(base, {**base, "ANSIBLE_CONFIG": "/b.cfg", "ANSIBLE_FORKS": "3"}) == [
        "ANSIBLE_CONFIG",
        "ANSIBLE_FORKS",
    ]
    assert env_mismatch(base, {**base, "HOME": "/home/x"}) == ["HOME"]


def test_process_tree_is_found_and_killed() -> None:
    # A shell whose child starts its own session, as Ansible's workers and ssh clients do.
    parent = subprocess.Popen(["sh", "-c", "setsid sleep 53.21 & wait"])
    try:
        deadline = time.monotonic() + 5
        tree = process_tree(parent.pid)
        while len(tree) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
            tree = process_tree(parent.pid)
        assert tree, "the child did not start"
        kill_tree(tree)
        parent.wait(timeout=5)
        assert all(not Path(f"/proc/{pid}").exists() or b"sleep" not in _cmdline(pid) for pid, _ in tree)
    finally:
        parent.kill()
        parent.wait()


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_client_without_server_says_so(workdir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-I", "-S", str(CLIENT), str(workdir / "none.sock"), "--version"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == EXIT_NO_SERVER
    assert "cannot reach" in result.stderr and "none.sock" in result.stderr


def test_socket_path_must_fit(workdir: Path) -> None:
    with pytest.raises(WarmRunnerError, match="longer than 107 bytes"):
        WarmRunner(workdir / ("s" * 120), env={})


@pytest.mark.slow
def test_warm_run_and_cold_fallback_through_the_client(workdir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_NOCOLOR"] = "1"
    warm = WarmRunner(workdir / "w.sock", env=env, log_path=workdir / "warm.log")
    warm.ensure_running()
    try:
        binary, cmdline = warm.command(Path("unused.yml"))
        assert binary == sys.executable and str(CLIENT) in cmdline
        client = [sys.executable, "-I", "-S", str(CLIENT), str(warm.socket_path), "--version"]
        hot = subprocess.run(client, env=env, capture_output=True, text=True, timeout=60)
        assert hot.returncode == 0, hot.stderr
        assert "ansible-playbook [core 2.19" in hot.stdout
        assert "cold" not in hot.stderr
        # Another ANSIBLE_* value than the server imported Ansible with: the run must not be warm.
        other = subprocess.run(
            client, env={**env, "ANSIBLE_FORKS": "3"}, capture_output=True, text=True, timeout=60
        )
        assert other.returncode == 0, other.stderr
        assert "environment differs in ANSIBLE_FORKS; running ansible-playbook cold" in other.stderr
        assert "ansible-playbook [core 2.19" in other.stdout
        failing = subprocess.run(
            [*client[:-1], "--no-such-option"], env=env, capture_output=True, text=True, timeout=60
        )
        assert failing.returncode != 0
    finally:
        warm.stop()
    assert not warm.running
    assert not warm.socket_path.exists()


def test_cold_launcher_relays_the_exit_status(workdir: Path) -> None:
    script = workdir / "exit7"
    script.write_text('#!/bin/sh\necho ran "$@"\nexit 7\n')
    script.chmod(0o755)
    result = subprocess.run(
        [sys.executable, "-I", "-S", str(COLD_LAUNCHER), str(script), "a b"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 7
    assert result.stdout == "ran a b\n"


@pytest.mark.slow
def test_server_stops_when_the_process_that_started_it_is_gone(workdir: Path) -> None:
    socket_path = workdir / "orphan.sock"
    starter = (
        "import subprocess, sys\n"
        "module = 'threatlockdown.response.runner_warm_server'\n"
        "server = subprocess.Popen([sys.executable, '-m', module, sys.argv[1]],"
        " stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True)\n"
        "assert server.stdout.readline().strip() == b'ready'\n"
        "print(server.pid)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", starter, str(socket_path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout)

    def running() -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        return state != "Z"

    deadline = time.monotonic() + 10
    while running() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(), "the orphaned warm server kept running"
    assert not socket_path.exists()
