"""The ansible-runner executor runs the response playbooks on lab hosts over SSH (root, namespaces).

Its own lab (``tldar``: web1, web2 with sshd, attacker without) rather than the session lab, so it can
run next to other integration tests, and because it changes its hosts (firewalls, routes, accounts,
/var/ossec). Every batch goes through AnsibleRunnerExecutor exactly as the engine sends it: the
user's inventory, --limit, the playbook named after the command's executable, unsafe extra vars, the
warm server, ControlPersist.

Covered: firewall-drop add/delete on each Debian 12 backend (nftables, ipset, iptables; chosen with the
command's extra_args or an inventory variable) for IPv4 and IPv6, with idempotence and the attacker's
TCP connection to port 22 dropped and restored; host-deny, route-null and disable-account add/delete;
an unreachable host; injection through a user name, a srcip and alert fields.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from threatlockdown.lab import HostSpec, Lab
from threatlockdown.response.ansible_executor import AnsibleExecutorSettings, AnsibleRunnerExecutor
from threatlockdown.response.executor import Action, Batch, ItemResult, ResponseItem

REPO = Path(__file__).resolve().parents[2]
RESPONSES = REPO / "playbooks" / "responses"
PWNED = Path("/tmp/pwned")
LAB_NAME = "tldar"
KEEP_RUNS = 6
VICTIM = "tldvictim"
LOG_SCRIPT = "tld-log-alert"
# Reads execd's JSON line and appends it, as text, to the host's active-responses.log (as Wazuh's
# scripts log their input); never evaluates it.
LOG_SCRIPT_TEXT = """#!/bin/sh
IFS= read -r line
printf '%s\\n' "$line" >> /var/ossec/logs/active-responses.log
"""
INJECTIONS = ["$(touch /tmp/pwned)", "`touch /tmp/pwned`", "{{ lookup('pipe','touch /tmp/pwned') }}"]
TEMPLATE_USER = "{{ lookup('pipe','id') }}"

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def ar_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(
        name=LAB_NAME,
        hosts=[HostSpec("web1"), HostSpec("web2"), HostSpec("attacker", sshd=False)],
        workdir=tmp_path_factory.mktemp("arlab") / LAB_NAME,
    )
    lab.up()
    try:
        for host in ("web1", "web2"):
            # The machine's /root is shared with the hosts and its ~/.bashrc may do slow work (pyenv init
            # on the development VM: 0.4 s per SSH command, which Ansible pays per task). Root gets
            # /bin/sh in each host's own /etc/passwd; Ansible needs nothing more than a POSIX shell.
            lab.exec(host, ["usermod", "-s", "/bin/sh", "root"], check=True)
        yield lab
    finally:
        lab.down()


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    # Short: SSH control sockets and the warm server's socket live here.
    with tempfile.TemporaryDirectory(prefix="tldar-", dir="/tmp") as name:
        yield Path(name)


@pytest.fixture(scope="module")
def inventory(ar_lab: Lab, workdir: Path) -> Path:
    """The lab inventory plus ``ghost`` (the attacker's address, where no sshd listens) and web2 with
    ``tld_firewall_backend: iptables`` as a host variable."""
    path = ar_lab.write_inventory(workdir / "hosts.yml")
    data = yaml.safe_load(path.read_text())
    hosts = data["all"]["hosts"]
    hosts["ghost"] = {**hosts["web1"], "ansible_host": ar_lab.ipv4("attacker")}
    hosts["web2"]["tld_firewall_backend"] = "iptables"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def playbook_dir(workdir: Path) -> Path:
    """The shipped response playbooks plus one a user dropped in for a Wazuh script."""
    directory = workdir / "responses"
    directory.mkdir()
    for playbook in RESPONSES.glob("*.yml"):
        (directory / playbook.name).symlink_to(playbook)
    (directory / f"{LOG_SCRIPT}.yml").symlink_to(RESPONSES / "wazuh-ar-script.yml")
    return directory


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as loop_runner:
        yield loop_runner


@pytest.fixture(scope="module")
def executor(
    inventory: Path, playbook_dir: Path, workdir: Path, runner: asyncio.Runner
) -> Iterator[AnsibleRunnerExecutor]:
    settings = AnsibleExecutorSettings(
        inventory=(str(inventory),),
        queue_dir=workdir / "queue",
        playbook_dir=playbook_dir,
        keep_runs=KEEP_RUNS,
        connect_timeout=5,
        run_timeout=120,
        warm_log=workdir / "warm.log",
    )
    the_executor = AnsibleRunnerExecutor(settings)
    try:
        yield the_executor
    finally:
        runner.run(the_executor.close())


@pytest.fixture(autouse=True)
def no_stale_marker() -> Iterator[None]:
    PWNED.unlink(missing_ok=True)
    yield
    assert not PWNED.exists(), "an injected command ran"


def execute(
    runner: asyncio.Runner,
    executor: AnsibleRunnerExecutor,
    executable: str,
    action: Action,
    items: list[ResponseItem],
) -> dict[str, ItemResult]:
    batch = Batch(f"{executable}-{action}", executable, executable, action, tuple(items))
    results = runner.run(executor.execute(batch))
    assert sorted(r.key for r in results) == sorted(i.key for i in items)
    return {r.key: r for r in results}


def fw_item(
    host: str, srcip: str, *, timeout: int = 600, extra_args: tuple[str, ...] = (), **alert: Any
) -> ResponseItem:
    return ResponseItem(
        key=f"firewall-drop:{host}:{srcip}",
        host=host,
        srcip=srcip,
        timeout=timeout,
        alert={"rule": {"id": "5710", "level": 5}, "data": {"srcip": srcip}, **alert},
        extra_args=extra_args,
    )


def connects(lab: Lab, source: str, address: str) -> bool:
    """Whether ``source`` gets an SSH banner from ``address`` port 22 within 1.5 s."""
    probe = (
        "import socket, sys\n"
        "s = socket.create_connection((sys.argv[1], 22), timeout=1.5)\n"
        "sys.exit(0 if s.recv(4).startswith(b'SSH') else 1)\n"
    )
    return lab.exec(source, ["python3", "-c", probe, address], timeout=10).returncode == 0


def statuses(results: dict[str, ItemResult]) -> set[tuple[str, bool]]:
    return {(r.status, r.changed) for r in results.values()}


BACKEND_LISTING = {
    "nftables": (
        ["nft", "list", "set", "inet", "threatlockdown", "blocked4"],
        ["nft", "list", "set", "inet", "threatlockdown", "blocked6"],
    ),
    "ipset": (["ipset", "list", "threatlockdown4"], ["ipset", "list", "threatlockdown6"]),
    "iptables": (["iptables", "-S", "INPUT"], ["ip6tables", "-S", "INPUT"]),
}


def blocked_in_firewall(lab: Lab, host: str, backend: str, ipv4: str, ipv6: str) -> tuple[bool, bool]:
    list4, list6 = BACKEND_LISTING[backend]
    out4 = lab.exec(host, list4).stdout
    out6 = lab.exec(host, list6).stdout
    return ipv4 in out4, ipv6 in out6


@pytest.mark.parametrize("backend", ["nftables", "ipset", "iptables"])
def test_firewall_drop_blocks_and_restores_the_attacker(
    ar_lab: Lab, executor: AnsibleRunnerExecutor, runner: asyncio.Runner, backend: str
) -> None:
    lab = ar_lab
    ipv4, ipv6 = lab.ipv4("attacker"), lab.ipv6("attacker")
    target4, target6 = lab.ipv4("web1"), lab.ipv6("web1")
    options = (f"backend={backend}",)
    items = [
        fw_item("web1", ipv4, extra_args=options, full_log="sshd: Failed password"),
        fw_item("web1", ipv6, extra_args=options),
        # A second host in the same batch and run: a documentation address, so web2 stays reachable.
        fw_item("web2", "203.0.113.77", extra_args=options),
    ]
    assert connects(lab, "attacker", target4) and connects(lab, "attacker", target6)

    added = execute(runner, executor, "firewall-drop", "add", items)
    assert statuses(added) == {("ok", True)}, added
    assert all(backend in r.message for r in added.values())
    assert blocked_in_firewall(lab, "web1", backend, ipv4, ipv6) == (True, True)
    assert not connects(lab, "attacker", target4)
    assert not connects(lab, "attacker", target6)
    assert connects(lab, "attacker", lab.ipv4("web2"))  # only web1 blocks the attacker

    again = execute(runner, executor, "firewall-drop", "add", items)
    assert statuses(again) == {("ok", False)}, again

    deleted = execute(runner, executor, "firewall-drop", "delete", items)
    assert statuses(deleted) == {("ok", True)}, deleted
    assert blocked_in_firewall(lab, "web1", backend, ipv4, ipv6) == (False, False)
    assert connects(lab, "attacker", target4) and connects(lab, "attacker", target6)

    deleted_again = execute(runner, executor, "firewall-drop", "delete", items)
    assert statuses(deleted_again) == {("ok", False)}, deleted_again


def test_firewall_backend_from_an_inventory_variable(
    ar_lab: Lab, executor: AnsibleRunnerExecutor, runner: asyncio.Runner
) -> None:
    item = fw_item("web2", "198.51.100.200")  # no extra_args: web2's tld_firewall_backend applies
    added = execute(runner, executor, "firewall-drop", "add", [item])
    assert statuses(added) == {("ok", True)}
    assert "iptables" in added[item.key].message
    assert "198.51.100.200/32 -j DROP" in ar_lab.exec("web2", ["iptables", "-S", "INPUT"]).stdout
    deleted = execute(runner, executor, "firewall-drop", "delete", [item])
    assert statuses(deleted) == {("ok", True)}
    assert "198.51.100.200" not in ar_lab.exec("web2", ["iptables", "-S", "INPUT"]).stdout


def test_host_deny_add_and_delete(
    ar_lab: Lab, executor: AnsibleRunnerExecutor, runner: asyncio.Runner
) -> None:
    ipv4, ipv6 = ar_lab.ipv4("attacker"), ar_lab.ipv6("attacker")
    items = [
        ResponseItem(f"host-deny:web1:{ip}", "web1", srcip=ip, timeout=600, alert={"data": {"srcip": ip}})
        for ip in (ipv4, ipv6)
    ]
    hosts_deny = ar_lab.host_path("web1", "/etc/hosts.deny")
    assert statuses(execute(runner, executor, "host-deny", "add", items)) == {("ok", True)}
    text = hosts_deny.read_text()
    assert f"ALL: {ipv4}\n" in text and f"ALL: [{ipv6}]\n" in text
    assert statuses(execute(runner, executor, "host-deny", "add", items)) == {("ok", False)}
    assert statuses(execute(runner, executor, "host-deny", "delete", items)) == {("ok", True)}
    text = hosts_deny.read_text()
    assert ipv4 not in text and ipv6 not in text


def test_route_null_add_and_delete(
    ar_lab: Lab, executor: AnsibleRunnerExecutor, runner: asyncio.Runner
) -> None:
    ipv4, ipv6 = ar_lab.ipv4("attacker"), ar_lab.ipv6("attacker")
    target = ar_lab.ipv4("web1")
    items = [ResponseItem(f"route-null:web1:{ip}", "web1", srcip=ip, timeout=600) for ip in (ipv4, ipv6)]

    def blackholes() -> str:
        return (
            ar_lab.exec("web1", ["ip", "route", "show", "type", "blackhole"]).stdout
            + ar_lab.exec("web1", ["ip", "-6", "route", "show", "type", "blackhole"]).stdout
        )

    assert statuses(execute(runner, executor, "route-null", "add", items)) == {("ok", True)}
    assert ipv4 in blackholes() and ipv6 in blackholes()
    assert not connects(ar_lab, "attacker", target)  # web1's replies go nowhere
    assert statuses(execute(runner, executor, "route-null", "delete", items)) == {("ok", True)}
    assert ipv4 not in blackholes() and ipv6 not in blackholes()
    assert connects(ar_lab, "attacker", target)


def lock_state(lab: Lab, user: str) -> str:
    return lab.exec("web1", ["passwd", "-S", user], check=True).stdout.split()[1]


def test_disable_account_add_and_delete(
    ar_lab: Lab, executor: AnsibleRunnerExecutor, runner: asyncio.Runner
) -> None:
    # A throwaway account in web1's own /etc, with a password so there is something to lock.
    ar_lab.exec("web1", ["useradd", "-M", "-s", "/bin/sh", VICTIM], check=True)
    ar_lab.exec("web1", ["chpasswd"], input=f"{VICTIM}:Correct-Horse-9\n", check=True)
    item = ResponseItem(
        f"disable-account:web1:{VICTIM}",
        "web1",
        user=VICTIM,
        timeout=600,
        alert={"data": {"dstuser": VICTIM}},
    )
    assert lock_state(ar_lab, VICTIM) == "P"
    assert statuses(execute(runner, executor, "disable-account", "add", [item])) == {("ok", True)}
    assert lock_state(ar_lab, VICTIM) == "L"
    assert statuses(execute(runner, executor, "disable-account", "add", [item])) == {("ok", False)}
    assert statuses(execute(runner, executor, "disable-account", "delete", [item])) == {("ok", True)}
    assert lock_state(ar_lab, VICTIM) == "P"


def test_unreachable_host_is_reported_per_item(
    ar_lab: Lab, executor: AnsibleRunnerExecutor, runner: asyncio.Runner
) -> None:
    items = [
        fw_item("web1", "203.0.113.91"),
        fw_item("ghost", "203.0.113.91"),
        fw_item("ghost", "203.0.113.92"),
    ]
    results = execute(runner, executor, "firewall-drop", "add", items)
    assert (results[items[0].key].status, results[items[0].key].changed) == ("ok", True)
    for item in items[1:]:
        assert results[item.key].status == "unreachable"
        assert "unreachable" in results[item.key].message
    cleanup = execute(runner, executor, "firewall-drop", "delete", items[:1])
    assert statuses(cleanup) == {("ok", True)}
    assert len(executor.runs.existing()) <= KEEP_RUNS  # artifacts stay bounded


def test_template_user_name_is_refused_unrendered(
    ar_lab: Lab, executor: AnsibleRunnerExecutor, runner: asyncio.Runner
) -> None:
    item = ResponseItem(
        "disable-account:web1:tpl", "web1", user=TEMPLATE_USER, alert={"data": {"dstuser": TEMPLATE_USER}}
    )
    result = execute(runner, executor, "disable-account", "add", [item])[item.key]
    assert result.status == "failed"
    assert TEMPLATE_USER in result.message  # the module saw the literal text ...
    assert "uid=" not in result.message  # ... and nothing ran it


def test_shell_metacharacters_in_srcip_are_refused(
    ar_lab: Lab, executor: AnsibleRunnerExecutor, runner: asyncio.Runner
) -> None:
    item = fw_item("web1", "1.2.3.4;touch /tmp/pwned")
    result = execute(runner, executor, "firewall-drop", "add", [item])[item.key]
    assert result.status == "failed"
    assert "1.2.3.4;touch /tmp/pwned" in result.message and "refused" in result.message


def test_alert_text_reaches_a_wazuh_script_literally(
    ar_lab: Lab, executor: AnsibleRunnerExecutor, runner: asyncio.Runner
) -> None:
    script = ar_lab.host_path("web1", f"/var/ossec/active-response/bin/{LOG_SCRIPT}")
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(LOG_SCRIPT_TEXT)
    script.chmod(0o750)
    log = ar_lab.host_path("web1", "/var/ossec/logs/active-responses.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    log.unlink(missing_ok=True)
    alert = {
        "rule": {"id": "100001", "description": INJECTIONS[0]},
        "full_log": " ".join(INJECTIONS),
        "data": {"srcip": ar_lab.ipv4("attacker"), "note": INJECTIONS[2], INJECTIONS[2]: "as a key"},
    }
    item = ResponseItem(f"{LOG_SCRIPT}:web1:1", "web1", srcip=ar_lab.ipv4("attacker"), alert=alert)
    result = execute(runner, executor, LOG_SCRIPT, "add", [item])[item.key]
    assert (result.status, result.changed) == ("ok", True), result
    logged = log.read_text()
    for text in INJECTIONS:
        assert text in logged
    assert '"command":"add"' in logged.replace(" ", "")
