"""The threatlockdown.active_response modules run through Ansible against throwaway namespaces.

Each test builds its own network namespaces (``tldmod-XXXXXX`` where the modules run, ``...-peer`` for the
other end of a veth pair with 203.0.113.0/24 and 2001:db8:2::/64) and runs the modules INSIDE them with
``ip netns exec NS ansible-playbook`` (or ``ansible -m``), so the host firewall and routes are never
touched. hosts.deny edits use a temporary file; account locks run in ``unshare --mount`` with a copy of
/etc bind-mounted over /etc, so no real account is ever locked. Results are captured from Ansible by a
small callback plugin the tests write to a temporary directory; it keeps every task result, diff included.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / "collections"
BIN = Path(sys.executable).parent
ANSIBLE = BIN / "ansible"
ANSIBLE_PLAYBOOK = BIN / "ansible-playbook"
FQCN = "threatlockdown.active_response."
PWNED = Path("/tmp/pwned")

TARGET4, PEER4 = "203.0.113.1", "203.0.113.2"
TARGET6, PEER6 = "2001:db8:2::1", "2001:db8:2::2"
PORT = 18080
PAYLOADS = ["1.2.3.4;touch /tmp/pwned", "$(touch /tmp/pwned)", "{{ lookup('pipe','id') }}"]

pytestmark = [
    pytest.mark.root,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network and mount namespaces"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2"),
    pytest.mark.skipif(
        not ANSIBLE_PLAYBOOK.exists(), reason="needs ansible-core in the test interpreter's venv"
    ),
]

CAPTURE_CALLBACK = '''
from __future__ import annotations
import json, os
from ansible.plugins.callback import CallbackBase

class CallbackModule(CallbackBase):
    """Appends every task result (diff and warnings included) as one JSON line to $TLD_CAPTURE_FILE."""
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "tld_capture"
    CALLBACK_NEEDS_ENABLED = True

    def _save(self, result, status):
        data = dict(result._result)
        data["_status"] = status
        data["_task"] = result._task.get_name()
        with open(os.environ["TLD_CAPTURE_FILE"], "a") as handle:
            handle.write(json.dumps(data, default=str) + "\\n")

    def v2_runner_on_ok(self, result):
        self._save(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._save(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._save(result, "skipped")
'''

LISTENER = f"""
import socket
server = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("::", {PORT}))
server.listen(64)
while True:
    connection, _ = server.accept()
    connection.close()
"""

CONNECT = (
    "import socket, sys; "
    "socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))"
)


class Unsafe(str):
    """A string written to the playbook as ``!unsafe`` so Ansible hands it to the module untemplated."""


class PlaybookDumper(yaml.SafeDumper):
    pass


PlaybookDumper.add_representer(Unsafe, lambda dumper, value: dumper.represent_scalar("!unsafe", str(value)))


def module_task(module: str, args: dict[str, Any], check: bool = False, name: str = "") -> dict[str, Any]:
    return {
        "name": name or f"{module}{' (check)' if check else ''}",
        FQCN + module: args,
        "check_mode": check,
        "diff": True,
        "ignore_errors": True,
    }


def command_task(argv: Sequence[str]) -> dict[str, Any]:
    return {
        "name": "show " + " ".join(argv),
        "ansible.builtin.command": {"argv": list(argv)},
        "changed_when": False,
    }


# Prints the output of several commands from one process: one task (about a second each) instead of several.
SHOW_ALL = (
    "import subprocess, sys\n"
    "for argv in sys.argv[1:]:\n"
    "    print('$', argv, flush=True)\n"
    "    subprocess.run(argv.split(), check=True)\n"
)


def show_argv(commands: Sequence[Sequence[str]]) -> list[str]:
    return [sys.executable, "-c", SHOW_ALL, *(" ".join(c) for c in commands)]


def snapshot_task(commands: Sequence[Sequence[str]]) -> dict[str, Any]:
    return {
        "name": "snapshot",
        "ansible.builtin.command": {"argv": show_argv(commands)},
        "changed_when": False,
    }


def run(argv: Sequence[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)


def must(argv: Sequence[str]) -> str:
    result = run(argv)
    assert result.returncode == 0, f"{argv} failed: {result.stderr}"
    return result.stdout


@dataclass
class AnsibleRunner:
    """Runs ansible-playbook / ansible ad-hoc behind a prefix (ip netns exec NS, unshare ...)."""

    workdir: Path
    prefix: list[str]
    runs: int = 0

    def _env(self, capture: Path) -> dict[str, str]:
        callbacks = self.workdir / "callbacks"
        callbacks.mkdir(exist_ok=True)
        (callbacks / "tld_capture.py").write_text(CAPTURE_CALLBACK)
        env = dict(os.environ)
        env.update(
            ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
            ANSIBLE_CALLBACK_PLUGINS=str(callbacks),
            ANSIBLE_CALLBACKS_ENABLED="tld_capture",
            ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
            ANSIBLE_LOCALHOST_WARNING="0",
            ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_LOCAL_TEMP=str(self.workdir / "ansible-local"),
            ANSIBLE_REMOTE_TEMP=str(self.workdir / "ansible-remote"),
            TLD_CAPTURE_FILE=str(capture),
        )
        return env

    def _run(self, argv: list[str]) -> tuple[list[dict[str, Any]], str]:
        self.runs += 1
        capture = self.workdir / f"capture-{self.runs}.jsonl"
        completed = subprocess.run(
            self.prefix + argv,
            env=self._env(capture),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        output = completed.stdout + completed.stderr
        results = [json.loads(line) for line in capture.read_text().splitlines()] if capture.exists() else []
        return results, output

    def playbook(self, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        play = [{"hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": tasks}]
        path = self.workdir / f"play-{self.runs + 1}.yml"
        path.write_text(yaml.dump(play, Dumper=PlaybookDumper, sort_keys=False))
        results, output = self._run([str(ANSIBLE_PLAYBOOK), str(path)])
        assert [r["_task"] for r in results] == [t["name"] for t in tasks], output
        return results

    def adhoc(self, module: str, args: dict[str, Any], check: bool = False) -> dict[str, Any]:
        argv = [str(ANSIBLE), "localhost", "-m", FQCN + module, "-a", json.dumps(args), "--diff"]
        results, output = self._run(argv + (["--check"] if check else []))
        assert len(results) == 1, output
        return results[0]


@dataclass
class Lab:
    target: str
    peer: str
    ansible: AnsibleRunner
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    # How commands enter the target: its network namespace, plus a mount namespace when a daemon there
    # needs a private /run (firewalld and its D-Bus).
    prefix: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.prefix = self.prefix or ["ip", "netns", "exec", self.target]

    def in_target(self, *argv: str) -> str:
        return must([*self.prefix, *argv])

    def snapshot(self, commands: Sequence[Sequence[str]]) -> str:
        return normalise(self.in_target(*show_argv(commands)))

    def can_connect(self, address: str, timeout: float = 1.0) -> bool:
        argv = [
            "ip",
            "netns",
            "exec",
            self.peer,
            sys.executable,
            "-c",
            CONNECT,
            address,
            str(PORT),
            str(timeout),
        ]
        return run(argv, timeout=timeout + 10).returncode == 0


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    name = f"tldmod-{secrets.token_hex(3)}"
    peer = f"{name}-peer"
    created: list[str] = []
    lab = Lab(name, peer, AnsibleRunner(tmp_path, ["ip", "netns", "exec", name]))
    try:
        for ns in (name, peer):
            must(["ip", "netns", "add", ns])
            created.append(ns)
            must(["ip", "-n", ns, "link", "set", "lo", "up"])
        must(
            ["ip", "-n", name, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", peer]
        )
        for ns, dev, v4, v6 in ((name, "veth0", TARGET4, TARGET6), (peer, "veth1", PEER4, PEER6)):
            must(["ip", "-n", ns, "addr", "add", f"{v4}/24", "dev", dev])
            must(["ip", "-n", ns, "addr", "add", f"{v6}/64", "dev", dev, "nodad"])
            must(["ip", "-n", ns, "link", "set", dev, "up"])
        listener = subprocess.Popen(["ip", "netns", "exec", name, sys.executable, "-c", LISTENER])
        lab.processes.append(listener)
        deadline = time.monotonic() + 10
        while not (lab.can_connect(TARGET4, 0.5) and lab.can_connect(TARGET6, 0.5)):
            assert time.monotonic() < deadline, "the listener in the namespace never became reachable"
            time.sleep(0.2)
        yield lab
    finally:
        for process in lab.processes:
            process.kill()
            process.wait(timeout=10)
        for ns in reversed(created):
            run(["ip", "netns", "del", ns])


@pytest.fixture(autouse=True)
def no_pwned_file() -> Iterator[None]:
    if PWNED.exists():
        pytest.fail(f"{PWNED} exists before the test; remove it so the injection checks mean something")
    yield
    assert not PWNED.exists(), f"{PWNED} was created: an injected command ran"


def normalise(snapshot: str) -> str:
    """Drop the parts of firewall listings that change by themselves (remaining timeouts)."""
    return re.sub(r" (expires|timeout) \S+", "", snapshot)


# backend -> commands whose output describes its whole state
SNAPSHOTS = {
    "nftables": [["nft", "list", "ruleset"]],
    "ipset": [["ipset", "save"], ["iptables", "-S"], ["ip6tables", "-S"]],
    "iptables": [["iptables", "-S"], ["ip6tables", "-S"]],
    "firewalld": [["firewall-cmd", "--list-rich-rules"]],
}
TOOLS = {"nftables": "nft", "ipset": "ipset", "iptables": "iptables", "firewalld": "firewall-cmd"}


def backend_params() -> list[Any]:
    params = []
    for backend, tool in TOOLS.items():
        missing = shutil.which(tool) is None
        marks = [pytest.mark.skip(reason=f"{tool} is not installed")] if missing else []
        params.append(pytest.param(backend, marks=marks))
    return params


# firewalld talks to firewall-cmd over the system D-Bus, under /run: the target gets a mount namespace with
# its own /run, its own dbus-daemon and firewalld (nftables backend, so its table lands in the target's
# network namespace only). Nothing of it touches the machine's own firewall or bus.
FIREWALLD_START = """set -e
mount -t tmpfs -o mode=0755 tld-run /run
mkdir -p /run/dbus
dbus-daemon --system --fork
exec firewalld --nofork --nopid
"""


@pytest.fixture
def firewalld(lab: Lab) -> Iterator[None]:
    script = lab.ansible.workdir / "firewalld-start.sh"
    script.write_text(FIREWALLD_START)
    daemon = subprocess.Popen(
        ["ip", "netns", "exec", lab.target, "unshare", "--mount", "--propagation=private", "sh", str(script)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        lab.prefix = ["nsenter", f"--target={daemon.pid}", "--mount", "--net"]
        lab.ansible.prefix = list(lab.prefix)
        deadline = time.monotonic() + 60
        while run([*lab.prefix, "firewall-cmd", "--state"]).returncode != 0:
            assert daemon.poll() is None, "firewalld exited during start-up"
            assert time.monotonic() < deadline, "firewalld did not come up within 60 s"
            time.sleep(0.3)
        # The default zone (public) rejects what it does not know; open the test listener's port (runtime).
        lab.in_target("firewall-cmd", f"--add-port={PORT}/tcp")
        assert lab.can_connect(TARGET4) and lab.can_connect(TARGET6), "firewalld blocks the listener"
        yield
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=20)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(timeout=10)
        # dbus-daemon forked away from the script: whatever still runs in the namespace goes too.
        for pid in run(["ip", "netns", "pids", lab.target]).stdout.split():
            run(["kill", "-9", pid])


@pytest.mark.parametrize("backend", backend_params())
def test_firewall_drop_blocks_and_unblocks(lab: Lab, backend: str, request: pytest.FixtureRequest) -> None:
    if backend == "firewalld":
        request.getfixturevalue("firewalld")
    commands = SNAPSHOTS[backend]
    args = {"addresses": [PEER4, PEER6, "::ffff:" + PEER4], "backend": backend, "timeout": 120}

    # Block: check mode, then for real, then again.
    before = lab.snapshot(commands)
    check, after_check, first, again = lab.ansible.playbook(
        [
            module_task("firewall_drop", args, check=True),
            snapshot_task(commands),
            module_task("firewall_drop", args),
            module_task("firewall_drop", args, name="firewall_drop again"),
        ]
    )
    # (Ansible strips trailing newlines from stdout; an empty listing is one.)
    assert normalise(after_check["stdout"]).rstrip() == before.rstrip(), "check mode changed the firewall"
    assert check["_status"] == "ok" and check["changed"] is True
    assert (
        check["diff"]["before"] == "" and PEER4 in check["diff"]["after"] and PEER6 in check["diff"]["after"]
    )
    assert first["_status"] == "ok" and first["changed"] is True, first
    assert first["backend"] == backend and first["blocked"] == [PEER4, PEER6]
    assert [r["family"] for r in first["results"]] == ["ipv4", "ipv6"]
    assert PEER6 in first["diff"]["after"]
    if backend == "iptables":
        assert all(r["expires_in"] is None for r in first["results"])
        assert any("cannot expire" in w for w in first["warnings"])
    elif backend in ("nftables", "ipset"):
        assert all(0 < r["expires_in"] <= 420 and r["entry_timeout"] == 420 for r in first["results"])
    assert again["_status"] == "ok" and again["changed"] is False
    assert not any(r["changed"] for r in again["results"])

    state = lab.snapshot(commands)
    assert PEER4 in state and PEER6 in state
    assert not lab.can_connect(TARGET4), "IPv4 connection got through while blocked"
    assert not lab.can_connect(TARGET6), "IPv6 connection got through while blocked"

    # Unblock: check mode, then for real, then again.
    absent = {**args, "state": "absent"}
    check, after_check, first, again = lab.ansible.playbook(
        [
            module_task("firewall_drop", absent, check=True),
            snapshot_task(commands),
            module_task("firewall_drop", absent),
            module_task("firewall_drop", absent, name="firewall_drop again"),
        ]
    )
    assert normalise(after_check["stdout"]).rstrip() == state.rstrip(), "check mode changed the firewall"
    assert check["changed"] is True and check["diff"]["after"] == "" and PEER4 in check["diff"]["before"]
    assert first["_status"] == "ok" and first["changed"] is True and first["blocked"] == []
    assert again["_status"] == "ok" and again["changed"] is False

    state = lab.snapshot(commands)
    assert PEER4 not in state and PEER6 not in state
    assert lab.can_connect(TARGET4) and lab.can_connect(TARGET6)


def test_route_null(lab: Lab) -> None:
    args = {"addresses": [PEER4, PEER6]}
    routes = [
        ["ip", "-4", "route", "show", "type", "blackhole"],
        ["ip", "-6", "route", "show", "type", "blackhole"],
    ]
    before = lab.snapshot(routes)
    check, after_check, first, again = lab.ansible.playbook(
        [
            module_task("route_null", args, check=True),
            snapshot_task(routes),
            module_task("route_null", args),
            module_task("route_null", args, name="route_null again"),
        ]
    )
    assert check["changed"] is True
    assert check["diff"]["after"] == f"blackhole {PEER4}/32\nblackhole {PEER6}/128\n"
    assert PEER4 not in before and normalise(after_check["stdout"]) + "\n" == before, (
        "check mode added a route"
    )
    assert first["changed"] is True and first["routed_null"] == [PEER4, PEER6]
    assert again["changed"] is False
    assert f"blackhole {PEER4}" in lab.in_target("ip", "-4", "route", "show", "type", "blackhole")
    assert PEER6 in lab.in_target("ip", "-6", "route", "show", "type", "blackhole")
    # Replies to the peer are discarded, so its connections cannot complete.
    assert not lab.can_connect(TARGET4) and not lab.can_connect(TARGET6)

    results = lab.ansible.playbook(
        [
            module_task("route_null", {**args, "state": "absent"}),
            module_task("route_null", {**args, "state": "absent"}, name="route_null again"),
        ]
    )
    assert results[0]["changed"] is True and results[0]["routed_null"] == []
    assert results[1]["changed"] is False
    assert lab.in_target("ip", "-4", "route", "show", "type", "blackhole").strip() == ""
    assert lab.can_connect(TARGET4) and lab.can_connect(TARGET6)


def test_host_deny_edits_only_its_own_block(lab: Lab, tmp_path: Path) -> None:
    path = tmp_path / "hosts.deny"
    original = "# site policy\nsshd: 198.51.100.1\nALL: 198.51.100.10\n"
    path.write_text(original)
    os.chmod(path, 0o640)
    args = {"addresses": [PEER4, PEER6, "198.51.100.10", "198.51.100.1"], "path": str(path)}
    check, after_check, first, again = lab.ansible.playbook(
        [
            module_task("host_deny", args, check=True),
            command_task(["cat", str(path)]),
            module_task("host_deny", args),
            module_task("host_deny", args, name="host_deny again"),
        ]
    )
    assert check["changed"] is True and after_check["stdout"] + "\n" == original
    assert first["changed"] is True and first["denied"] == [PEER4, PEER6, "198.51.100.10", "198.51.100.1"]
    block = f"ALL: {PEER4}\nALL: [{PEER6}]\nALL: 198.51.100.1\n"
    assert path.read_text().startswith(original) and block in path.read_text()
    assert first["diff"]["after"].count("ALL:") == 3
    assert again["changed"] is False
    assert oct(path.stat().st_mode & 0o777) == oct(0o640)

    results = lab.ansible.playbook(
        [
            module_task("host_deny", {**args, "state": "absent"}),
            module_task("host_deny", {**args, "state": "absent"}, name="host_deny again"),
        ]
    )
    assert results[0]["changed"] is True and results[0]["denied"] == ["198.51.100.10"]
    assert any("198.51.100.10 stays denied by line 3" in w for w in results[0]["warnings"])
    assert results[1]["changed"] is False
    assert path.read_text() == original


FAKE_AR_SCRIPT = """
import json, os, sys
first = sys.stdin.readline()
message = json.loads(first)
with open(os.path.join(os.getcwd(), "ar.log"), "a") as log:
    log.write(first)
    if message["command"] == "add":
        keys = [message["parameters"]["alert"]["data"]["srcip"]]
        print(json.dumps({"version": 1, "origin": {"name": "fake-drop", "module": "active-response"},
                          "command": "check_keys", "parameters": {"keys": keys}}), flush=True)
        log.write(sys.stdin.readline())
print("fake-drop done", file=sys.stderr)
"""

FAKE_TLD = """
import json, sys
with open(sys.argv[0] + ".calls", "a") as calls:
    calls.write(json.dumps(sys.argv[1:]) + "\\n")
"""


def write_executable(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)
    return path


def test_wazuh_ar_script_and_restart_manager(lab: Lab, tmp_path: Path) -> None:
    home = tmp_path / "ossec"
    script = write_executable(home / "active-response" / "bin" / "fake-drop", FAKE_AR_SCRIPT)
    tld = write_executable(tmp_path / "bin" / "tld", FAKE_TLD)
    alert = {"rule": {"id": "5712", "level": 10}, "data": {"srcip": PEER4, "dstuser": "alice"}}
    items = [{"alert": alert}]
    restart = {"home": str(tmp_path), "tld_path": str(tld)}
    results = lab.ansible.playbook(
        [
            module_task("wazuh_ar_script", {"executable": str(script), "items": items}, check=True),
            module_task("restart_manager", restart, check=True),
            module_task("wazuh_ar_script", {"executable": str(script), "items": items}),
            module_task(
                "wazuh_ar_script", {"executable": str(script), "items": items, "abort_keys": [PEER4]}
            ),
            module_task("wazuh_ar_script", {"executable": str(script), "items": items, "state": "absent"}),
            module_task("restart_manager", restart),
        ]
    )
    check_ar, check_restart, added, aborted, deleted, restarted = results
    assert (
        check_ar["changed"] is True and json.loads(check_ar["diff"]["after"])["parameters"]["alert"] == alert
    )
    assert check_restart["changed"] is True and check_restart["rc"] is None
    assert added["_status"] == "ok" and added["changed"] is True
    assert added["results"][0]["key"] == f"fake-drop-{PEER4}" and added["results"][0]["reply"] == "continue"
    assert "fake-drop done" in added["results"][0]["stderr"]
    assert aborted["changed"] is False and aborted["results"][0]["reply"] == "abort"
    assert deleted["changed"] is True and deleted["results"][0]["reply"] is None
    lines = [json.loads(line) for line in (home / "ar.log").read_text().splitlines()]
    assert [m["command"] for m in lines] == ["add", "continue", "add", "abort", "delete"]
    assert lines[0]["parameters"] == {
        "extra_args": [],
        "alert": alert,
        "program": "active-response/bin/fake-drop",
    }
    assert lines[0]["origin"] == {"name": "threatlockdown", "module": "wazuh-execd"}
    assert restarted["changed"] is True and restarted["rc"] == 0
    calls = Path(str(tld) + ".calls").read_text().splitlines()
    assert [json.loads(c) for c in calls] == [["manager", "restart", "--home", str(tmp_path)]]


def test_invalid_input_is_refused_before_anything_runs(lab: Lab, tmp_path: Path) -> None:
    deny = tmp_path / "hosts.deny"
    deny.write_text("# nothing\n")
    script = write_executable(tmp_path / "ossec" / "active-response" / "bin" / "fake-drop", FAKE_AR_SCRIPT)
    ruleset_before = lab.in_target("nft", "list", "ruleset") if shutil.which("nft") else ""

    # Ad-hoc, as a careless caller would do it: the controller renders the Jinja payload itself, and the
    # module still refuses what arrives (the rendered `id` output is not an address).
    adhoc = lab.ansible.adhoc("firewall_drop", {"addresses": [PEER4, *PAYLOADS]})
    assert adhoc["_status"] == "failed" and "nothing was changed" in adhoc["msg"]
    assert [p.split(" ", 1)[0] for p in adhoc["invalid"]] == ["addresses[1]", "addresses[2]", "addresses[3]"]

    # Literal payloads (!unsafe) reach every module untemplated and are refused by the module itself.
    unsafe = [Unsafe(p) for p in PAYLOADS]
    results = lab.ansible.playbook(
        [
            module_task("firewall_drop", {"addresses": [PEER4, *unsafe]}),
            module_task("route_null", {"addresses": [*unsafe, PEER6]}),
            module_task("host_deny", {"addresses": unsafe, "path": str(deny)}),
            module_task("disable_account", {"users": unsafe}),
            module_task(
                "wazuh_ar_script",
                {"executable": str(script), "items": [{"alert": {"data": {"srcip": p}}} for p in unsafe]},
            ),
        ]
    )
    for result in results:
        assert result["_status"] == "failed", result
        assert "refused 3 invalid item(s), nothing was changed" in result["msg"], result["msg"]
    assert "{{ lookup('pipe','id') }}" in results[0]["msg"]  # reached the module literally
    assert "'$(touch /tmp/pwned)'" in results[3]["msg"]
    assert deny.read_text() == "# nothing\n"
    assert not (tmp_path / "ossec" / "ar.log").exists()
    assert lab.in_target("ip", "route", "show", "type", "blackhole").strip() == ""
    if shutil.which("nft"):
        assert lab.in_target("nft", "list", "ruleset") == ruleset_before


TEST_USER = "tldmodtest"
TEST_UID = 4242


@pytest.fixture
def etc_copy(tmp_path: Path) -> Path:
    """A copy of /etc with one throwaway account; only ever mounted inside a private mount namespace."""
    copy = tmp_path / "etc"
    shutil.copytree("/etc", copy, symlinks=True)
    with open(copy / "passwd", "a") as handle:
        handle.write(f"{TEST_USER}:x:{TEST_UID}:{TEST_UID}::/nonexistent:/usr/sbin/nologin\n")
    with open(copy / "group", "a") as handle:
        handle.write(f"{TEST_USER}:x:{TEST_UID}:\n")
    with open(copy / "shadow", "a") as handle:
        handle.write(f"{TEST_USER}:$6$tldmodtest$notarealhash:19000:0:99999:7:::\n")
    return copy


def shadow_field(etc: Path, user: str) -> str:
    for line in (etc / "shadow").read_text().splitlines():
        if line.startswith(user + ":"):
            return line.split(":")[1]
    raise AssertionError(f"{user} not in {etc}/shadow")


def digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_disable_account_in_a_private_copy_of_etc(tmp_path: Path, etc_copy: Path) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux)")
    real = {p: digest(p) for p in ("/etc/passwd", "/etc/shadow", "/etc/group")}
    # Each run gets a fresh private mount namespace with the copy over /etc; changes persist in the copy.
    mount_copy = 'mount --bind "$0" /etc && exec "$@"'
    ansible = AnsibleRunner(
        tmp_path,
        ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", mount_copy, str(etc_copy)],
    )
    args = {"users": [TEST_USER, "ghost"]}
    results = ansible.playbook(
        [
            module_task("disable_account", args, check=True),
            command_task(["passwd", "-S", TEST_USER]),
            module_task("disable_account", args),
            module_task("disable_account", args, name="disable_account again"),
        ]
    )
    check, after_check, locked, again = results
    assert check["changed"] is True and after_check["stdout"].split()[1] == "P"
    assert locked["changed"] is True and locked["locked"] == [TEST_USER]
    assert locked["results"][0] == {
        "user": TEST_USER,
        "uid": TEST_UID,
        "exists": True,
        "changed": True,
        "before": "usable",
        "after": "locked",
    }
    assert locked["results"][1]["exists"] is False
    assert any("ghost does not exist" in w for w in locked["warnings"])
    assert locked["diff"] == {
        "before_header": "password lock state",
        "after_header": "password lock state",
        "before": f"{TEST_USER}: usable\n",
        "after": f"{TEST_USER}: locked\n",
    }
    assert again["changed"] is False
    assert shadow_field(etc_copy, TEST_USER).startswith("!")

    results = ansible.playbook(
        [
            module_task("disable_account", {**args, "state": "absent"}),
            module_task("disable_account", {**args, "state": "absent"}, name="disable_account again"),
            module_task("disable_account", {"users": ["root", "daemon", "nobody", Unsafe(PAYLOADS[2])]}),
            module_task("disable_account", {"users": ["root", "daemon", "nobody"]}, name="system accounts"),
        ]
    )
    unlocked, unlocked_again, refused, refused_system = results
    assert unlocked["changed"] is True and unlocked["locked"] == []
    assert unlocked_again["changed"] is False
    assert shadow_field(etc_copy, TEST_USER) == "$6$tldmodtest$notarealhash"
    assert refused["_status"] == "failed"
    assert [p.split(" ", 1)[0] for p in refused["invalid"]] == ["users[3]"]  # name check comes first

    assert refused_system["_status"] == "failed"
    assert "root (uid 0) is never locked" in refused_system["msg"]
    assert "uid 1 is a system account" in refused_system["msg"]
    assert "uid 65534 is a system account" in refused_system["msg"]

    # Ad-hoc with the Jinja payload: rendered by the controller, still refused by the module.
    adhoc = ansible.adhoc("disable_account", {"users": [PAYLOADS[2]]})
    assert adhoc["_status"] == "failed" and "users[0]" in adhoc["msg"]

    assert {p: digest(p) for p in real} == real, "the real /etc changed"
    with pytest.raises(KeyError):
        pwd.getpwnam(TEST_USER)
