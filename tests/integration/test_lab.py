"""The namespace lab with real processes: SSH, per-host syslog, per-host firewall and /etc, teardown."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from threatlockdown.lab import HostSpec, Lab, LabError
from threatlockdown.lab import sshd as lab_sshd
from threatlockdown.lab.mountns import read_mounts
from threatlockdown.lab.netns import NETNS_DIR
from threatlockdown.lab.processes import is_alive, namespace_id
from threatlockdown.lab.state import load_state

REPO = Path(__file__).resolve().parents[2]

# Connects to port 22, introduces itself like a client would (so sshd logs no scan), exits 0 if it worked.
_TCP_PROBE = """
import socket, sys
with socket.create_connection((sys.argv[1], 22), timeout=float(sys.argv[2])) as s:
    s.settimeout(float(sys.argv[2]))
    ok = s.recv(4) == b"SSH-"
    s.sendall(b"SSH-2.0-tld-test\\r\\n")
sys.exit(0 if ok else 3)
"""


def _tcp_open_from(lab: Lab, host: str, address: str, timeout: float = 1.0) -> bool:
    done = lab.exec(host, ["python3", "-c", _TCP_PROBE, address, str(timeout)], timeout=timeout + 10)
    return done.returncode == 0


def _wait_for_line(path: Path, pattern: re.Pattern[str], timeout: float = 5.0) -> str | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                if pattern.search(line):
                    return line
        time.sleep(0.05)
    return None


def _lab_traces(name: str) -> dict[str, list[str]]:
    """Everything on the machine that belongs to lab ``name`` by its naming convention."""
    prefix = f"{name}-"
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return {
        "netns": sorted(p.name for p in NETNS_DIR.glob(f"{prefix}*")) if NETNS_DIR.is_dir() else [],
        "links": sorted(m for m in re.findall(r"^\d+: ([^:@]+)", links, re.M) if m.startswith(prefix)),
        "mounts": sorted(str(m.mount_point) for m in read_mounts() if prefix in str(m.mount_point)),
    }


# -- SSH from the controller -------------------------------------------------------------------------


def test_ssh_from_root_namespace_lands_in_web1(lab: Lab) -> None:
    done = subprocess.run(
        lab.ssh_argv("web1", command=["hostname; hostname -I; ip -o addr show dev eth0"]),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    first, addresses, *addr_lines = done.stdout.splitlines()
    assert first == "web1"
    assert addresses.split() == [lab.ipv4("web1"), lab.ipv6("web1")]
    assert any(f"inet {lab.ipv4('web1')}/" in line for line in addr_lines)
    assert lab.ipv4("web2") not in done.stdout


def test_ssh_over_ipv6_and_session_runs_in_host_namespaces(lab: Lab) -> None:
    done = subprocess.run(
        lab.ssh_argv("web2", ipv6=True, command=["stat -L -c %i /proc/self/ns/net /proc/self/ns/mnt"]),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    host = lab.host("web2")
    expected = [namespace_id(NETNS_DIR / host.netns), namespace_id(host.mnt_ns_file)]
    assert [int(x) for x in done.stdout.split()] == [i[1] for i in expected if i is not None]


def test_daemons_and_exec_run_inside_net_and_mount_namespaces(lab: Lab) -> None:
    state = load_state(lab.layout.state_file)
    for host in lab.layout.hosts:
        net_id = namespace_id(NETNS_DIR / host.netns)
        mnt_id = namespace_id(host.mnt_ns_file)
        for daemon, pid in state.pids[host.name].items():
            assert is_alive(pid), f"{daemon} of {host.name} is not running"
            assert namespace_id(Path(f"/proc/{pid}/ns/net")) == net_id, (host.name, daemon)
            assert namespace_id(Path(f"/proc/{pid}/ns/mnt")) == mnt_id, (host.name, daemon)
        assert sorted(state.pids[host.name]) == (["rsyslogd", "sshd"] if host.sshd else ["rsyslogd"])
    done = lab.exec("attacker", ["sh", "-c", "hostname; ls /sys/class/net; test -S /dev/log && echo socket"])
    assert done.stdout.split() == ["attacker", "eth0", "lo", "socket"]


# -- per-host syslog ---------------------------------------------------------------------------------


def test_invalid_user_from_attacker_is_logged_in_web1_auth_log_only(lab: Lab) -> None:
    attacker = lab.ipv4("attacker")
    ssh = lab.exec(
        "attacker",
        [
            "ssh",
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null",
            "-o", "ConnectTimeout=5",
            f"nosuchuser@{lab.ipv4('web1')}",
            "true",
        ],
        timeout=30,
    )  # fmt: skip
    assert ssh.returncode == 255, ssh.stderr
    assert "Permission denied" in ssh.stderr
    pattern = re.compile(rf"\bweb1 sshd\[\d+\]: Invalid user nosuchuser from {re.escape(attacker)} port \d+")
    line = _wait_for_line(lab.host_path("web1", "/var/log/auth.log"), pattern)
    assert line is not None, "no 'Invalid user' line in web1's /var/log/auth.log"
    web2_log = lab.host_path("web2", "/var/log/auth.log").read_text()
    assert "nosuchuser" not in web2_log
    machine_log = Path("/var/log/auth.log")
    if machine_log.exists():
        assert f"Invalid user nosuchuser from {attacker}" not in machine_log.read_text(errors="replace")


# -- per-host firewall and /etc ----------------------------------------------------------------------


def test_nft_drop_in_web1_blocks_attacker_there_but_not_on_web2(lab: Lab) -> None:
    web1, web2, attacker = lab.ipv4("web1"), lab.ipv4("web2"), lab.ipv4("attacker")
    assert _tcp_open_from(lab, "attacker", web1), "web1:22 should be reachable before the rule"
    rules = (
        "add table inet tldtest\n"
        "add chain inet tldtest input { type filter hook input priority 0; policy accept; }\n"
        f"add rule inet tldtest input ip saddr {attacker} tcp dport 22 drop\n"
    )
    lab.exec("web1", ["nft", "-f", "-"], input=rules, check=True)
    try:
        assert not _tcp_open_from(lab, "attacker", web1), "the drop rule in web1 did not block the attacker"
        assert _tcp_open_from(lab, "attacker", web2), "web2 must not be affected by web1's firewall"
        with socket.create_connection((web1, 22), timeout=2) as conn:
            assert conn.recv(4) == b"SSH-", "the controller must still reach web1"
            conn.sendall(b"SSH-2.0-tld-test\r\n")
        assert "tldtest" not in lab.exec("web2", ["nft", "list", "tables"], check=True).stdout
        machine = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True)
        assert "tldtest" not in machine.stdout
    finally:
        lab.exec("web1", ["nft", "delete", "table", "inet", "tldtest"], check=True)
    assert _tcp_open_from(lab, "attacker", web1), "deleting the table must lift the block"


def test_var_ossec_and_var_log_are_per_host(lab: Lab) -> None:
    marker = "tld-lab-test-marker"
    lab.exec(
        "web1",
        ["sh", "-c", f"echo {marker} > /var/ossec/{marker} && echo {marker} > /var/log/{marker}"],
        check=True,
    )
    assert lab.host_path("web1", f"/var/ossec/{marker}").read_text() == f"{marker}\n"
    assert lab.host_path("web1", f"/var/log/{marker}").read_text() == f"{marker}\n"
    assert not Path("/var/ossec", marker).exists() and not Path("/var/log", marker).exists()
    assert lab.exec("web2", ["test", "-e", f"/var/ossec/{marker}"]).returncode == 1


def test_hosts_deny_written_in_web1_stays_in_web1(lab: Lab) -> None:
    # Guard first: only write if web1 really has its own /etc (otherwise this would edit the machine's).
    assert lab.exec("web1", ["cat", "/etc/hostname"], check=True).stdout == "web1\n"
    assert Path("/etc/hostname").read_text() != "web1\n"
    entry = f"sshd: {lab.ipv4('attacker')} # tld-lab-test"
    lab.exec("web1", ["sh", "-c", f"echo '{entry}' >> /etc/hosts.deny"], check=True)
    assert entry in lab.host_path("web1", "/etc/hosts.deny").read_text()
    assert entry in lab.exec("web1", ["cat", "/etc/hosts.deny"], check=True).stdout
    assert entry not in Path("/etc/hosts.deny").read_text()
    assert entry not in lab.host_path("web2", "/etc/hosts.deny").read_text()


# -- Ansible -----------------------------------------------------------------------------------------


def test_inventory_works_with_ansible(lab: Lab, lab_inventory: Path) -> None:
    data = yaml.safe_load(lab_inventory.read_text())
    hosts = data["all"]["hosts"]
    assert sorted(hosts) == ["web1", "web2"], "attacker has no sshd and must not be in the inventory"
    assert hosts["web1"]["ansible_host"] == lab.ipv4("web1")
    assert hosts["web1"]["ansible_user"] == "root"
    assert hosts["web1"]["ansible_ssh_private_key_file"] == str(lab.key_file)
    assert hosts["web1"]["ansible_python_interpreter"] == "/usr/bin/python3"
    assert (
        "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
        in hosts["web1"]["ansible_ssh_common_args"]
    )
    assert sorted(data["all"]["children"]["web"]["hosts"]) == ["web1", "web2"]
    ansible = Path(sys.executable).with_name("ansible")
    if not ansible.exists():
        pytest.skip("ansible is not installed in this environment")
    done = subprocess.run(
        [
            str(ansible),
            "web",
            "-i",
            str(lab_inventory),
            "-m",
            "ansible.builtin.command",
            "-a",
            "hostname",
            "-o",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^web1 \| CHANGED \| rc=0 \| \(stdout\) web1$", done.stdout, re.M), done.stdout
    assert re.search(r"^web2 \| CHANGED \| rc=0 \| \(stdout\) web2$", done.stdout, re.M), done.stdout


def test_inventory_rejects_group_with_host_without_sshd(lab: Lab, tmp_path: Path) -> None:
    with pytest.raises(LabError, match=r"group 'attackers': attacker not a lab host with sshd"):
        lab.write_inventory(tmp_path / "inv.yml", groups={"attackers": ["attacker"]})


# -- errors ------------------------------------------------------------------------------------------


def test_second_lab_on_a_used_subnet_is_refused_and_leaves_nothing(lab: Lab, tmp_path: Path) -> None:
    other = Lab(name="tldz", hosts=["x1"], workdir=tmp_path / "tldz", ipv4_subnet=lab.layout.ipv4_subnet)
    with pytest.raises(LabError, match=rf"subnet {re.escape(lab.layout.ipv4_subnet)} overlaps .*tldt-br0"):
        other.up()
    assert _lab_traces("tldz") == {"netns": [], "links": [], "mounts": []}


def test_not_root_and_missing_programs_give_clear_errors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(LabError, match="needs root"):
        Lab(name="tldn", hosts=["x1"], workdir=tmp_path / "w").up()
    monkeypatch.undo()
    real_which = shutil.which
    monkeypatch.setattr(
        shutil,
        "which",
        lambda cmd, path=None: None if cmd == "rsyslogd" else real_which(cmd, path=path),
    )
    with pytest.raises(LabError, match=r"rsyslogd \(Debian package rsyslog\)"):
        Lab(name="tldn", hosts=["x1"], workdir=tmp_path / "w").up()


def test_bad_names_are_rejected_before_touching_the_system() -> None:
    with pytest.raises(LabError, match="interface name tldt-averyverylongname exceeds 15"):
        Lab(name="tldt", hosts=["averyverylongname"])
    with pytest.raises(LabError, match="no dash"):
        Lab(name="tl-d", hosts=["x"])
    with pytest.raises(LabError, match=r"not inside 192\.0\.2\.0/24"):
        Lab(name="tldt", hosts=["x"], ipv4_subnet="10.0.0.0/24")


def test_failed_up_reports_the_host_and_cleans_up(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = lab_sshd.render_sshd_config
    monkeypatch.setattr(lab_sshd, "render_sshd_config", lambda *a: real(*a) + "NoSuchSshdOption yes\n")
    with pytest.raises(LabError, match=r"host s1: .*sshd -t .*NoSuchSshdOption"):
        Lab(name="tldf", hosts=["s1"], workdir=tmp_path / "tldf").up()
    assert _lab_traces("tldf") == {"netns": [], "links": [], "mounts": []}
    assert not (tmp_path / "tldf").exists()


# -- teardown ----------------------------------------------------------------------------------------


def test_up_over_a_half_built_lab_starts_clean(tmp_path: Path) -> None:
    # Leftovers as a crash in the middle of `up` would leave them: a namespace and a bridge, no state file.
    subprocess.run(["ip", "netns", "add", "tldh-s1"], check=True)
    subprocess.run(["ip", "link", "add", "tldh-br0", "type", "bridge"], check=True)
    lab = Lab(name="tldh", hosts=["s1"], workdir=tmp_path / "tldh")
    try:
        lab.up()
        assert lab.status().state == "up"
        assert lab.exec("s1", ["hostname"], check=True).stdout == "s1\n"
    finally:
        lab.down()
    assert _lab_traces("tldh") == {"netns": [], "links": [], "mounts": []}


def test_down_leaves_no_netns_interface_process_mount_or_workdir(tmp_path: Path) -> None:
    workdir = tmp_path / "tldd"
    lab = Lab(name="tldd", hosts=[HostSpec("s1"), HostSpec("c1", sshd=False)], workdir=workdir).up()
    state = load_state(lab.layout.state_file)
    pids = [pid for host_pids in state.pids.values() for pid in host_pids.values()]
    ns_ids = [namespace_id(h.mnt_ns_file) for h in lab.layout.hosts]
    traces = _lab_traces("tldd")
    assert traces["netns"] == ["tldd-c1", "tldd-s1"] and "tldd-br0" in traces["links"] and traces["mounts"]
    assert all(is_alive(pid) for pid in pids) and len(pids) == 3
    # A process started inside a host after `up` must be found and stopped too.
    extra = lab.spawn("c1", ["sleep", "600"])

    report = lab.down()

    assert extra.poll() is not None
    assert set(pids) <= set(report.stopped_pids)
    assert not any(is_alive(pid) for pid in pids)
    assert _lab_traces("tldd") == {"netns": [], "links": [], "mounts": []}
    assert not workdir.exists()
    # No process anywhere is still in one of the lab's mount namespaces.
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            assert namespace_id(entry / "ns" / "mnt") not in ns_ids, (
                f"pid {entry.name} still in a lab namespace"
            )
    assert not lab.down().found_anything, "a second down() must find nothing"


def test_cli_down_cleans_up_after_a_crashed_run(tmp_path: Path) -> None:
    workdir = tmp_path / "tldc"
    crashed = Lab(name="tldc", hosts=["s1"], workdir=workdir).up()
    pids = [pid for p in load_state(crashed.layout.state_file).pids.values() for pid in p.values()]
    # Another process, and without --workdir: it must find the lab by its name alone.
    done = subprocess.run(
        [sys.executable, "-m", "threatlockdown.cli.lab_cmd", "down", "--name", "tldc"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert "deleted namespaces: tldc-s1" in done.stdout
    assert not any(is_alive(pid) for pid in pids)
    assert _lab_traces("tldc") == {"netns": [], "links": [], "mounts": []}
    status = subprocess.run(
        [
            sys.executable,
            "-m",
            "threatlockdown.cli.lab_cmd",
            "status",
            "--name",
            "tldc",
            "--workdir",
            str(workdir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert status.returncode == 1 and "netns MISSING" in status.stdout, status.stdout + status.stderr
    # The files stayed (the CLI did not know the workdir); the owner's down() removes them.
    assert crashed.down().removed_workdir == workdir
    assert not workdir.exists()
