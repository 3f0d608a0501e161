"""The manager daemon as a real process: CLI life cycle, exactly-once across SIGKILL, rotation under load,
a flood beyond capacity, and refusals (wrong agent key, syslog senders not allowed, oversized frames).

Everything runs on loopback in the root namespace; the lab tests (sshd, rsyslog, agents in hosts) are in
test_manager_lab.py and test_agent_lab.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

TLD = [sys.executable, "-m", "threatlockdown.cli.main"]
TEST_RULES = """<group name="tldtest,">
  <rule id="100100" level="3">
    <match>tldtest seq=</match>
    <description>test line</description>
  </rule>
</group>
"""


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tld(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TLD, *args], capture_output=True, text=True, timeout=timeout, check=False)


# The shipped ruleset plus the home's own etc/rules, as in the shipped ossec.conf.
RULESET = """<ruleset><decoder_dir>ruleset/decoders</decoder_dir><rule_dir>ruleset/rules</rule_dir>
<rule_dir>etc/rules</rule_dir></ruleset>"""


def write_home(home: Path, body: str) -> Path:
    (home / "etc" / "rules").mkdir(parents=True, exist_ok=True)
    (home / "etc" / "rules" / "tldtest_rules.xml").write_text(TEST_RULES)
    (home / "etc" / "ossec.conf").write_text(f"<ossec_config>\n{body}\n{RULESET}\n</ossec_config>\n")
    return home


def localfile(path: Path) -> str:
    return f"<localfile><log_format>syslog</log_format><location>{path}</location></localfile>"


def numbered_line(seq: int) -> str:
    return f"Nov 26 05:33:21 host tldtest[1]: tldtest seq={seq:06d}\n"


def alert_seqs(home: Path) -> list[int]:
    path = home / "logs" / "alerts" / "alerts.json"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        alert = json.loads(line)  # every line is a whole JSON object, even after a SIGKILL
        if alert["rule"]["id"] == "100100":
            out.append(int(alert["full_log"].rsplit("seq=", 1)[1][:6]))
    return out


def wait_for(what: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s: {message}")


class Manager:
    """``tld manager start --foreground`` as a child process."""

    def __init__(self, home: Path, *extra: str) -> None:
        self.home = home
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Manager:
        self.proc = subprocess.Popen(
            [*TLD, "manager", "start", "--foreground", "--home", str(self.home), *self.extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._serving, 30, f"manager in {self.home} did not start: {self.log()[-2000:]}")
        return self

    def _serving(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"manager exited with {self.proc.returncode}: {self.log()[-2000:]}")
        return tld("manager", "status", "--home", str(self.home), timeout=10).returncode == 0

    def status(self) -> dict[str, Any]:
        done = tld("manager", "status", "--json", "--home", str(self.home))
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def log(self) -> str:
        path = self.home / "logs" / "threatlockdown.log"
        return path.read_text() if path.exists() else ""

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    def rss_kib(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0


@pytest.fixture
def managers() -> Iterator[list[Manager]]:
    started: list[Manager] = []
    yield started
    for m in started:
        if m.proc is not None and m.proc.poll() is None:
            m.proc.kill()
            m.proc.wait(10)


class Writer(threading.Thread):
    """Appends numbered lines at a steady rate; ``hook(seq)`` runs before each line (rotations)."""

    def __init__(
        self, path: Path, count: int, rate: float, hook: Callable[[int], None] | None = None
    ) -> None:
        super().__init__(daemon=True)
        self.path, self.count, self.rate, self.hook = path, count, rate, hook
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            start = time.monotonic()
            f = open(self.path, "a")  # noqa: SIM115 - reopened after a rotation
            for seq in range(self.count):
                if self.hook is not None and self.hook(seq):
                    f.close()
                    f = open(self.path, "a")  # noqa: SIM115
                f.write(numbered_line(seq))
                f.flush()
                delay = start + (seq + 1) / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            f.close()
        except BaseException as exc:  # surfaced by the test
            self.error = exc


def test_cli_life_cycle(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.touch()
    home = write_home(tmp_path / "home", localfile(log))
    h = ["--home", str(home)]
    started = tld("manager", "start", *h)
    try:
        assert started.returncode == 0, started.stderr
        assert "tld manager started (pid" in started.stdout
        pid = int((home / "var" / "run" / "tld-manager.pid").read_text())
        again = tld("manager", "start", *h)
        assert again.returncode == 1 and f"already running (pid {pid}" in again.stderr
        with log.open("a") as f:
            f.write(numbered_line(1))
        wait_for(lambda: alert_seqs(home) == [1], 10, "alert for the line")
        status = tld("manager", "status", *h)
        assert status.returncode == 0
        assert f"tld manager running (pid {pid})" in status.stdout
        assert f"file:{log}" in status.stdout and "alerts written: 1 (level 3: 1)" in status.stdout
        text = (home / "logs" / "alerts" / "alerts.log").read_text()
        assert "Rule: 100100 (level 3) -> 'test line'" in text

        # A bad configuration on reload is refused with file:line, and the old one keeps running.
        conf = home / "etc" / "ossec.conf"
        good = conf.read_text()
        conf.write_text(good.replace("<log_format>syslog</log_format>", "<log_format>sislog</log_format>"))
        bad = tld("manager", "reload", *h)
        assert bad.returncode == 1
        assert f"{conf}:2: <log_format>" in bad.stderr and "running configuration was kept" in bad.stderr
        assert f"reload refused: {conf}:2: <log_format>" in (home / "logs" / "threatlockdown.log").read_text()
        with log.open("a") as f:
            f.write(numbered_line(2))
        wait_for(lambda: alert_seqs(home) == [1, 2], 10, "still analysing with the old configuration")

        # SIGHUP reloads too; a new rule level takes effect without losing the file position.
        conf.write_text(good)
        (home / "etc" / "rules" / "tldtest_rules.xml").write_text(
            TEST_RULES.replace('level="3"', 'level="4"')
        )
        os.kill(pid, signal.SIGHUP)
        wait_for(
            lambda: "reloaded: ruleset" in (home / "logs" / "threatlockdown.log").read_text(), 10, "reload"
        )
        with log.open("a") as f:
            f.write(numbered_line(3))
        wait_for(lambda: alert_seqs(home) == [1, 2, 3], 10, "alert after the reload")
        last = json.loads((home / "logs" / "alerts" / "alerts.json").read_text().splitlines()[-1])
        assert last["rule"]["level"] == 4

        stopped = tld("manager", "stop", *h)
        assert stopped.returncode == 0 and f"stopped (pid {pid})" in stopped.stdout
        assert tld("manager", "status", *h).returncode == 3
        assert not (home / "var" / "run" / "tld-manager.pid").exists()
    finally:
        tld("manager", "stop", *h)


def test_bad_configuration_at_start_names_file_and_line(tmp_path: Path) -> None:
    home = write_home(
        tmp_path,
        "<localfile><log_format>syslog</log_format><location>rel/x.log</location>\n<bogus/></localfile>",
    )
    done = tld("manager", "start", "--home", str(home))
    assert done.returncode == 1
    assert f"error: {home}/etc/ossec.conf:3: <localfile>: unknown element <bogus>" in done.stderr
    assert tld("manager", "status", "--home", str(home)).returncode == 3


def test_sigkill_under_a_steady_stream_analyses_every_line_exactly_once(
    tmp_path: Path, managers: list[Manager]
) -> None:
    log = tmp_path / "stream.log"
    log.touch()
    home = write_home(tmp_path / "home", localfile(log))
    manager = Manager(home).start()
    managers.append(manager)
    count = 4000
    writer = Writer(log, count, rate=500)  # an 8 s stream: long enough for two kills inside it
    writer.start()
    for _ in range(2):
        # Kill only once this manager is analysing (start-up can take over a second on a loaded machine),
        # so the kill lands in the stream, where batches are being written.
        before = len(alert_seqs(home))
        wait_for(lambda b=before: len(alert_seqs(home)) > b + 50, 30, "the manager analysing the stream")
        manager.kill()  # mid-batch: alerts may be half written, positions not yet saved
        time.sleep(0.3)
        manager = Manager(home).start()
        managers.append(manager)
    writer.join(30)
    assert writer.error is None
    wait_for(lambda: len(alert_seqs(home)) >= count, 30, f"{count} alerts (have {len(alert_seqs(home))})")
    time.sleep(0.5)
    seqs = alert_seqs(home)
    assert len(seqs) == len(set(seqs)), "an event was analysed twice"
    assert sorted(seqs) == list(range(count)), "an event was lost"
    assert (
        "stopped inside alert batch" in manager.log() or "was complete before the last stop" in manager.log()
    )
    assert manager.stop() == 0


def test_rotation_by_rename_and_copytruncate_under_load_loses_nothing(
    tmp_path: Path, managers: list[Manager]
) -> None:
    log = tmp_path / "app.log"
    log.touch()
    home = write_home(tmp_path / "home", localfile(log))
    manager = Manager(home).start()
    managers.append(manager)
    count = 3000

    def rotate(seq: int) -> bool:
        if seq == 1000:  # logrotate "create": rename, the writer reopens a new file
            log.rename(tmp_path / "app.log.1")
            return True
        if seq == 2000:  # logrotate "copytruncate", with the writer pausing around it
            time.sleep(0.5)
            shutil.copyfile(log, tmp_path / "app.log.2")
            os.truncate(log, 0)
            time.sleep(0.3)
        return False

    writer = Writer(log, count, rate=1000, hook=rotate)
    writer.start()
    writer.join(30)
    assert writer.error is None
    wait_for(lambda: len(alert_seqs(home)) >= count, 20, f"{count} alerts (have {len(alert_seqs(home))})")
    time.sleep(0.3)
    assert sorted(alert_seqs(home)) == list(range(count))
    text = manager.log()
    assert "rotated or removed; reading the old file to its end" in text
    assert "truncated (copytruncate?)" in text
    assert manager.stop() == 0


def test_flood_beyond_capacity_stays_bounded_and_counts_drops(
    tmp_path: Path, managers: list[Manager]
) -> None:
    port = free_port(socket.SOCK_DGRAM)
    home = write_home(
        tmp_path,
        f"""<remote><connection>syslog</connection><port>{port}</port><protocol>udp</protocol>
<local_ip>127.0.0.1</local_ip><allowed-ips>127.0.0.1</allowed-ips></remote>""",
    )
    manager = Manager(home, "--queue-size", "2000").start()
    managers.append(manager)
    base = manager.rss_kib()
    stop = time.monotonic() + 4.0
    sent = [0, 0]

    def blast(i: int) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            n = 0
            while time.monotonic() < stop:
                s.sendto(numbered_line(n % 1000000).encode(), ("127.0.0.1", port))
                n += 1
            sent[i] = n

    peak = base
    threads = [threading.Thread(target=blast, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        peak = max(peak, manager.rss_kib())
        time.sleep(0.1)
    status = manager.status()
    source = status["sources"][f"syslog:udp:{port}"]
    lost = source["dropped"] + source.get("kernel_dropped", 0)
    assert lost > 0, f"sent {sum(sent)} datagrams, none dropped: the flood was not beyond capacity"
    assert status["events"]["dropped"] == lost
    assert status["queue"]["capacity"] == 2000
    wait_for(
        lambda: f"syslog:udp:{port}: " in manager.log() and "events dropped in the last" in manager.log(),
        10,
        "the drops reported in the log",
    )
    # bounded: the queue holds at most 2000 events, whatever was sent
    assert peak - base < 150_000, f"RSS grew from {base} KiB to {peak} KiB"
    wait_for(lambda: manager.status()["queue"]["depth"] == 0, 30, "queue drained after the flood")
    done = manager.status()
    received = done["sources"][f"syslog:udp:{port}"]["received"]
    assert done["events"]["processed"] == received <= sum(sent) - lost
    assert manager.stop() == 0


def syslog_source(status: dict[str, Any], port: int) -> dict[str, int]:
    [source] = [v for k, v in status["sources"].items() if k.startswith("syslog:") and k.endswith(f":{port}")]
    return source


def _tls_frame_flood(port: int) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), 5) as raw, ctx.wrap_socket(raw) as tls:
        tls.sendall(struct.pack(">I", 16 * 1024 * 1024) + b"{" * 1000)
        tls.settimeout(5)
        try:
            while tls.recv(4096):
                pass
        except (ssl.SSLError, OSError):
            pass


def test_refusals_are_logged_and_the_manager_stays_up(tmp_path: Path, managers: list[Manager]) -> None:
    agent_port, enroll_port, open_port, closed_port = free_port(), free_port(), free_port(), free_port()
    home = write_home(
        tmp_path / "manager",
        f"""<remote><connection>secure</connection><port>{agent_port}</port><local_ip>127.0.0.1</local_ip></remote>
<auth><port>{enroll_port}</port></auth>
<remote><connection>syslog</connection><port>{open_port}</port><protocol>tcp</protocol>
<local_ip>127.0.0.1</local_ip><allowed-ips>127.0.0.1</allowed-ips></remote>
<remote><connection>syslog</connection><port>{closed_port}</port><protocol>tcp</protocol>
<local_ip>127.0.0.1</local_ip><allowed-ips>192.0.2.0/24</allowed-ips></remote>
<remote><connection>syslog</connection><port>{closed_port}</port><protocol>udp</protocol>
<local_ip>127.0.0.1</local_ip><allowed-ips>192.0.2.0/24</allowed-ips></remote>""",
    )
    manager = Manager(home).start()
    managers.append(manager)

    # 1. an agent with a wrong key
    added = tld("manager", "agents", "add", "web1", "--home", str(home))
    assert added.returncode == 0, added.stderr
    line, fingerprint = added.stdout.splitlines()[0], added.stdout.splitlines()[1].split()[-1]
    agent_id, name, ip, key = line.split()
    agent_home = tmp_path / "agent"
    (agent_home / "etc").mkdir(parents=True)
    (agent_home / "etc" / "ossec.conf").write_text(
        f"<ossec_config><client><server><address>127.0.0.1</address><port>{agent_port}</port></server>"
        f"<time-reconnect>1</time-reconnect></client>{localfile(agent_home / 'a.log')}</ossec_config>"
    )
    wrong = ("0" if key[0] != "0" else "1") + key[1:]
    imported = tld(
        "agent",
        "import-key",
        "--home",
        str(agent_home),
        "--fingerprint",
        fingerprint,
        f"{agent_id} {name} {ip} {wrong}",
    )
    assert imported.returncode == 0, imported.stderr
    agent = subprocess.Popen(
        [*TLD, "agent", "start", "--foreground", "--home", str(agent_home)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: manager.status()["agents"]["refused"].get("bad_key", 0) >= 1, 20, "bad_key refusal")
    finally:
        agent.terminate()
        agent.wait(30)
    assert "refused connection from 127.0.0.1: bad_key: agent ID '001' name 'web1'" in manager.log()
    assert "authentication failed" in (agent_home / "logs" / "threatlockdown.log").read_text()

    # 2. syslog senders outside allowed-ips, over TCP and UDP
    with socket.create_connection(("127.0.0.1", closed_port), 5) as s:
        s.sendall(numbered_line(1).encode())
        s.settimeout(5)
        got = b""
        with contextlib.suppress(ConnectionResetError):  # aborted at once: EOF or RST, never an answer
            while chunk := s.recv(10):
                got += chunk
        assert got == b""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(numbered_line(2).encode(), ("127.0.0.1", closed_port))
    wait_for(
        lambda: all(
            v["refused"] >= 1 for k, v in manager.status()["sources"].items() if k.endswith(f":{closed_port}")
        ),
        10,
        "refusals",
    )
    assert "message from 127.0.0.1 refused (not in allowed-ips, or in denied-ips)" in manager.log()

    # 3. oversized frames: a syslog message over 64 KiB, and an agent frame announcing 16 MiB
    with socket.create_connection(("127.0.0.1", open_port), 5) as s:
        s.sendall(b"<13>" + b"x" * (70 * 1024) + b"\n")
    _tls_frame_flood(agent_port)
    wait_for(
        lambda: (
            manager.status()["agents"]["protocol_errors"].get("oversized_frame", 0) >= 1
            and syslog_source(manager.status(), open_port)["oversized"] >= 1
        ),
        10,
        "oversized frames counted",
    )
    assert "bytes from 127.0.0.1 refused (limit 65536)" in manager.log()

    # Still up, still analysing.
    with socket.create_connection(("127.0.0.1", open_port), 5) as s:
        s.sendall(numbered_line(3).encode())
    wait_for(lambda: alert_seqs(home) == [3], 10, "an alert after all the refusals")
    assert manager.stop() == 0
