"""Deterministic generator of a mixed sshd syslog corpus for the analysis benchmark.

The corpus imitates a busy, internet-facing fleet: interleaved brute-force bursts from a few thousand
attackers, a trickle of legitimate logins with their logouts, and a majority of unrelated lines (cron,
systemd, kernel). Every address lies in a documentation range (RFC 5737, RFC 3849), so the file points
at nobody's real hosts.

Usage: gen_sshd_corpus.py [--lines N] [--seed S] [--out PATH] [--attack F] [--success F] [--attackers N]
"""

from __future__ import annotations

import argparse
import bisect
import heapq
import ipaddress
import itertools
import random
import sys
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TextIO

DOC_NETWORKS: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
    ipaddress.ip_network("192.0.2.0/24"),
    ipaddress.ip_network("198.51.100.0/24"),
    ipaddress.ip_network("203.0.113.0/24"),
    ipaddress.ip_network("2001:db8::/32"),
)

# Legitimate clients get their own corner of the documentation space so no attacker shares an address.
_CLIENT_V4 = tuple(f"192.0.2.{n}" for n in range(10, 30))
_CLIENT_V6 = tuple(f"2001:db8:0:1::{n:x}" for n in range(16, 24))

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# Names scanners try; a real dictionary is far longer, but repetition is what matters for the engine.
_GUESSED_USERS = (
    "admin", "test", "user", "oracle", "postgres", "ubuntu", "guest", "git", "ftpuser", "support",
    "pi", "mysql", "deploy1", "jenkins", "hadoop", "tomcat", "www", "backup", "dev", "steam",
    "minecraft", "teamspeak", "nagios", "zabbix", "elastic", "es", "ansible2", "vagrant", "centos",
    "debian", "administrator", "sysadmin", "info", "sales", "test1", "test2", "student", "demo",
    "odoo", "solr", "redis", "docker", "kafka", "ts3", "bitrix", "user1", "web", "apache", "nginx",
)  # fmt: skip

# (name, uid, preferred auth method, key fingerprint)
_LEGIT_USERS = (
    ("alice", 1000, "publickey", "SHA256:q3Vt0m8cT1hQpZ7bWcX9kE2rJ4nL6sY5aD8fG0hK1iM"),
    ("bob", 1001, "password", ""),
    ("deploy", 1002, "publickey", "SHA256:Zr4uB6nV2cX8mL1kJ9hG7fD5sA3pO0iU8yT6rE4wQ2e"),
    ("ansible", 1003, "publickey", "SHA256:L9kJ7hG5fD3sA1pO8iU6yT4rE2wQ0eZ9xC7vB5nM3lK"),
    ("carol", 1004, "password", ""),
)

_SYSTEMD_NOISE = (
    "Starting apt-daily.service - Daily apt download activities...",
    "apt-daily.service: Deactivated successfully.",
    "Finished apt-daily.service - Daily apt download activities.",
    "Starting logrotate.service - Rotate log files...",
    "logrotate.service: Deactivated successfully.",
    "Finished logrotate.service - Rotate log files.",
    "Starting sysstat-collect.service - system activity accounting tool...",
    "sysstat-collect.service: Deactivated successfully.",
    "Finished sysstat-collect.service - system activity accounting tool.",
    "Started session-c1.scope - Session c1 of User root.",
    "Starting man-db.service - Daily man-db regeneration...",
    "man-db.service: Deactivated successfully.",
)

_KERNEL_NOISE = (
    "EXT4-fs (sda1): mounted filesystem with ordered data mode. Quota mode: none.",
    "perf: interrupt took too long (2503 > 2500), lowering kernel.perf_event_max_sample_rate to 79750",
    "TCP: request_sock_TCP: Possible SYN flooding on port 443. Sending cookies.",
    "e1000e 0000:00:1f.6 eno1: NIC Link is Up 1000 Mbps Full Duplex, Flow Control: Rx/Tx",
    'audit: type=1400 audit(1736145000.123:42): apparmor="STATUS" operation="profile_replace"',
    "usb 1-1: new high-speed USB device number 3 using xhci_hcd",
)

_CRON_COMMANDS = (
    "command -v debian-sa1 > /dev/null && debian-sa1 1 1",
    "cd / && run-parts --report /etc/cron.hourly",
    "[ -x /usr/lib/php/sessionclean ] && if [ ! -d /run/systemd/system ]; then /usr/lib/php/sessionclean; fi",
    "/usr/local/bin/backup-rotate --quiet",
)


class Kind(StrEnum):
    """What a line is about; the share of each kind is what ``Mix`` configures."""

    ATTACK = "attack"
    SUCCESS = "success"
    NOISE = "noise"


@dataclass(frozen=True)
class Mix:
    """Share of attack and success lines; everything else is noise."""

    attack: float = 0.30
    success: float = 0.10

    def __post_init__(self) -> None:
        for name, share in (("attack", self.attack), ("success", self.success)):
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"mix: {name} share {share} is outside 0..1")
        if self.attack + self.success > 1.0:
            raise ValueError(f"mix: attack {self.attack} + success {self.success} exceeds 1")

    @property
    def noise(self) -> float:
        return 1.0 - self.attack - self.success


@dataclass(frozen=True)
class CorpusSpec:
    """Everything that determines the corpus; equal specs give byte-identical output."""

    lines: int = 250_000
    seed: int = 1
    mix: Mix = field(default_factory=Mix)
    attackers: int = 3000
    # A fixed, early-in-the-year start keeps year-less syslog dates unambiguous for any reader.
    start: datetime = datetime(2025, 1, 6, 6, 25, 3)
    mean_gap_seconds: float = 0.8
    hosts: tuple[str, ...] = ("bastion01", "web01", "web02", "db01")

    def __post_init__(self) -> None:
        if self.lines < 0:
            raise ValueError(f"lines must be >= 0, got {self.lines}")
        if self.attackers < 1:
            raise ValueError(f"attackers must be >= 1, got {self.attackers}")
        if not self.hosts:
            raise ValueError("hosts must not be empty")


@dataclass(frozen=True)
class CorpusLine:
    kind: Kind
    text: str  # without the trailing newline
    attacker: str = ""  # the attacking address an attack line is about, "" otherwise


@dataclass
class CorpusSummary:
    lines: int = 0
    by_kind: Counter[Kind] = field(default_factory=Counter)
    attackers_seen: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _Attacker:
    address: str
    style: str  # "dictionary", "root" or "scanner"


# One pending log line before it gets its timestamp: (host, program tag with pid, message, attacker or "").
_Pending = tuple[str, str, str, str]


@dataclass
class _Burst:
    """Consecutive connections from one attacker; several bursts run interleaved."""

    attacker: _Attacker
    connections_left: int
    current: deque[_Pending] = field(default_factory=deque)


class _CorpusBuilder:
    """Holds the generator's state for one corpus; ``lines()`` yields it in order."""

    def __init__(self, spec: CorpusSpec) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.attackers = self._make_attackers()
        # Zipf-like weights: a few addresses hammer, most show up once or twice.
        weights = [1.0 / (rank + 1) ** 0.6 for rank in range(len(self.attackers))]
        self.cum_weights = list(itertools.accumulate(weights))
        self.pids = {host: self.rng.randint(900, 30_000) for host in spec.hosts}
        self.logind_pid = {host: self.rng.randint(400, 900) for host in spec.hosts}
        self.session_ids = {host: self.rng.randint(1, 400) for host in spec.hosts}
        self.bursts: list[_Burst] = []
        self.success_queue: deque[_Pending] = deque()
        self.noise_queue: deque[_Pending] = deque()
        # Logouts wait until a later line index: (due index, tie-breaker, lines).
        self.logouts: list[tuple[int, int, list[_Pending]]] = []
        self.logout_seq = 0
        self.user_cursor: dict[str, int] = {}

    # ---- address pool -------------------------------------------------------------------------

    def _make_attackers(self) -> list[_Attacker]:
        v4 = [
            str(addr)
            for net in DOC_NETWORKS
            if net.version == 4
            for addr in net.hosts()
            if str(addr) not in _CLIENT_V4
        ]
        self.rng.shuffle(v4)
        # Only 700-odd IPv4 documentation hosts exist; IPv6 fills the rest of the pool.
        wanted_v4 = min(len(v4), max(1, (self.spec.attackers * 3) // 4))
        addresses = v4[:wanted_v4]
        seen = set(addresses)
        base = int(ipaddress.IPv6Address("2001:db8::"))
        while len(addresses) < self.spec.attackers:
            # Stay clear of 2001:db8:0::/48, where the legitimate IPv6 clients live.
            addr = str(
                ipaddress.IPv6Address(base + (self.rng.randint(1, 0xFFFF) << 80) + self.rng.getrandbits(64))
            )
            if addr not in seen:
                seen.add(addr)
                addresses.append(addr)
        self.rng.shuffle(addresses)
        styles = ("dictionary", "root", "scanner")
        return [_Attacker(a, self.rng.choices(styles, (55, 30, 15))[0]) for a in addresses]

    # ---- helpers --------------------------------------------------------------------------------

    def _next_pid(self, host: str) -> int:
        self.pids[host] = (self.pids[host] + self.rng.randint(1, 6)) % 4_194_304 or 300
        return self.pids[host]

    def _port(self) -> int:
        return self.rng.randint(1024, 65535)

    def _guessed_user(self, address: str) -> str:
        # Each attacker walks its own way through the dictionary, like real tools do.
        cursor = self.user_cursor.get(address, self.rng.randrange(len(_GUESSED_USERS)))
        self.user_cursor[address] = cursor + 1
        return _GUESSED_USERS[cursor % len(_GUESSED_USERS)]

    # ---- attack lines ---------------------------------------------------------------------------

    def _attack_connection(self, attacker: _Attacker) -> deque[_Pending]:
        host = self.rng.choice(self.spec.hosts)
        tag = f"sshd[{self._next_pid(host)}]"
        ip, port = attacker.address, self._port()
        style = attacker.style
        if self.rng.random() < 0.15:
            style = self.rng.choice(("dictionary", "root", "scanner"))
        msgs: list[str]
        if style == "scanner":
            msgs = [
                self.rng.choice(
                    (
                        f"banner exchange: Connection from {ip} port {port}: invalid format",
                        f"Did not receive identification string from {ip} port {port}",
                    )
                )
            ]
        elif style == "dictionary":
            user = self._guessed_user(ip)
            if self.rng.random() < 0.6:
                msgs = [
                    f"Invalid user {user} from {ip} port {port}",
                    "pam_unix(sshd:auth): check pass; user unknown",
                    "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
                    f"rhost={ip}",
                    f"Failed password for invalid user {user} from {ip} port {port} ssh2",
                    f"Connection closed by invalid user {user} {ip} port {port} [preauth]",
                ]
            else:
                msgs = [
                    f"Invalid user {user} from {ip} port {port}",
                    f"Connection closed by invalid user {user} {ip} port {port} [preauth]",
                ]
        else:
            attempts = self.rng.choice((1, 1, 2, 3, 6, 6))
            pam = f"logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user=root"
            msgs = [f"pam_unix(sshd:auth): authentication failure; {pam}"]
            msgs += [f"Failed password for root from {ip} port {port} ssh2"] * attempts
            if attempts == 6:
                msgs += [
                    f"error: maximum authentication attempts exceeded for root from {ip} port {port} ssh2 "
                    "[preauth]",
                    f"Disconnecting authenticating user root {ip} port {port}: Too many authentication "
                    "failures [preauth]",
                    f"PAM 5 more authentication failures; {pam}",
                ]
            else:
                msgs.append(f"Disconnected from authenticating user root {ip} port {port} [preauth]")
                if attempts > 1:
                    more = attempts - 1
                    msgs.append(f"PAM {more} more authentication failure{'s' if more > 1 else ''}; {pam}")
        return deque((host, tag, m, ip) for m in msgs)

    def _new_burst(self) -> _Burst:
        index = bisect.bisect_left(self.cum_weights, self.rng.random() * self.cum_weights[-1])
        attacker = self.attackers[min(index, len(self.attackers) - 1)]
        connections = 1 + int(self.rng.expovariate(1 / 3.0))
        return _Burst(attacker, connections - 1, self._attack_connection(attacker))

    def _attack_line(self) -> _Pending:
        # One to four attackers are active at once; their connections interleave line by line.
        if len(self.bursts) < 4 and (not self.bursts or self.rng.random() < 0.02):
            self.bursts.append(self._new_burst())
        i = self.rng.randrange(len(self.bursts))
        burst = self.bursts[i]
        line = burst.current.popleft()
        if not burst.current:
            if burst.connections_left > 0:
                burst.connections_left -= 1
                burst.current = self._attack_connection(burst.attacker)
            elif len(self.bursts) > 1 and self.rng.random() < 0.3:
                del self.bursts[i]
            else:
                self.bursts[i] = self._new_burst()
        return line

    # ---- successful logins ----------------------------------------------------------------------

    def _success_line(self, index: int) -> _Pending:
        if not self.success_queue:
            self._new_login(index)
        return self.success_queue.popleft()

    def _new_login(self, index: int) -> None:
        rng = self.rng
        host = rng.choice(self.spec.hosts)
        tag = f"sshd[{self._next_pid(host)}]"
        user, uid, method, fingerprint = rng.choice(_LEGIT_USERS)
        ip = rng.choice(_CLIENT_V4) if rng.random() < 0.8 else rng.choice(_CLIENT_V6)
        port = self._port()
        accepted = f"Accepted {method} for {user} from {ip} port {port} ssh2"
        if fingerprint:
            accepted += f": ED25519 {fingerprint}"
        self.success_queue.append((host, tag, accepted, ""))
        self.success_queue.append(
            (host, tag, f"pam_unix(sshd:session): session opened for user {user}(uid={uid}) by (uid=0)", "")
        )
        self.session_ids[host] += 1
        session = self.session_ids[host]
        logind = f"systemd-logind[{self.logind_pid[host]}]"
        self.noise_queue.append((host, logind, f"New session {session} of user {user}.", ""))
        logout = [
            (host, tag, f"Received disconnect from {ip} port {port}:11: disconnected by user", ""),
            (host, tag, f"Disconnected from user {user} {ip} port {port}", ""),
            (host, tag, f"pam_unix(sshd:session): session closed for user {user}", ""),
            (host, logind, f"Session {session} logged out. Waiting for processes to exit.", ""),
            (host, logind, f"Removed session {session}.", ""),
        ]
        due = index + 1 + int(rng.expovariate(1 / 1500.0))
        self.logout_seq += 1
        heapq.heappush(self.logouts, (due, self.logout_seq, logout))

    # ---- noise ----------------------------------------------------------------------------------

    def _noise_line(self, index: int) -> _Pending:
        while self.logouts and self.logouts[0][0] <= index:
            self.noise_queue.extend(heapq.heappop(self.logouts)[2])
        if self.noise_queue:
            return self.noise_queue.popleft()
        rng = self.rng
        host = rng.choice(self.spec.hosts)
        roll = rng.random()
        if roll < 0.40:
            tag = f"CRON[{self._next_pid(host)}]"
            self.noise_queue.append((host, tag, f"(root) CMD ({rng.choice(_CRON_COMMANDS)})", ""))
            self.noise_queue.append((host, tag, "pam_unix(cron:session): session closed for user root", ""))
            return (host, tag, "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)", "")
        if roll < 0.75:
            return (host, "systemd[1]", rng.choice(_SYSTEMD_NOISE), "")
        if roll < 0.998:
            uptime = rng.uniform(10, 9_000_000)
            return (host, "kernel:", f"[{uptime:12.6f}] {rng.choice(_KERNEL_NOISE)}", "")
        # A rare sshd restart.
        tag = f"sshd[{self._next_pid(host)}]"
        self.noise_queue.append((host, tag, "Server listening on :: port 22.", ""))
        return (host, tag, "Server listening on 0.0.0.0 port 22.", "")

    # ---- driver ---------------------------------------------------------------------------------

    def lines(self) -> Iterator[tuple[Kind, _Pending, str]]:
        """Yields (kind, pending line, timestamp) in file order."""
        rng = self.rng
        attack_cut = self.spec.mix.attack
        success_cut = attack_cut + self.spec.mix.success
        gap_rate = 1.0 / self.spec.mean_gap_seconds
        start = self.spec.start
        start_second = start.hour * 3600 + start.minute * 60 + start.second
        offset = 0.0
        stamp_second = -1
        stamp = ""
        day_index = -1
        day_prefix = ""
        for index in range(self.spec.lines):
            roll = rng.random()
            if roll < attack_cut:
                kind, pending = Kind.ATTACK, self._attack_line()
            elif roll < success_cut:
                kind, pending = Kind.SUCCESS, self._success_line(index)
            else:
                kind, pending = Kind.NOISE, self._noise_line(index)
            offset += rng.expovariate(gap_rate)
            if int(offset) != stamp_second:
                # Date formatting is the slow part: lines within one second share a stamp, and the
                # "Mmm dd" part is only recomputed when the day changes.
                stamp_second = int(offset)
                days, second_of_day = divmod(start_second + stamp_second, 86_400)
                if days != day_index:
                    day_index = days
                    day_prefix = _syslog_day(start.date() + timedelta(days=days))
                hour, rest = divmod(second_of_day, 3600)
                stamp = f"{day_prefix} {hour:02}:{rest // 60:02}:{rest % 60:02}"
            yield kind, pending, stamp


def _syslog_day(day: date) -> str:
    # BSD syslog pads the day with a space ("Jan  6"); strftime's %b would follow the locale.
    return f"{_MONTHS[day.month - 1]} {day.day:>2}"


def generate(spec: CorpusSpec) -> Iterator[CorpusLine]:
    """Yields the corpus line by line, each with the kind it was generated as."""
    for kind, (host, tag, message, attacker), stamp in _CorpusBuilder(spec).lines():
        # The kernel tag carries its own colon and no pid.
        sep = " " if tag.endswith(":") else ": "
        yield CorpusLine(kind, f"{stamp} {host} {tag}{sep}{message}", attacker)


def write_corpus(spec: CorpusSpec, out: TextIO) -> CorpusSummary:
    """Writes the corpus to ``out`` (one line per entry, newline-terminated) and returns its counts."""
    summary = CorpusSummary()
    chunk: list[str] = []
    for line in generate(spec):
        chunk.append(line.text + "\n")
        summary.by_kind[line.kind] += 1
        if line.attacker:
            summary.attackers_seen.add(line.attacker)
        if len(chunk) >= 8192:
            out.writelines(chunk)
            chunk.clear()
    out.writelines(chunk)
    summary.lines = sum(summary.by_kind.values())
    return summary


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Write a deterministic, mixed sshd syslog corpus.")
    defaults = CorpusSpec()
    parser.add_argument(
        "--lines", type=int, default=defaults.lines, help="number of lines (default %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed (default %(default)s)")
    parser.add_argument("--out", default="-", help="output file, '-' for stdout (default %(default)s)")
    parser.add_argument(
        "--attack",
        type=float,
        default=defaults.mix.attack,
        help="share of attack lines (default %(default)s)",
    )
    parser.add_argument(
        "--success",
        type=float,
        default=defaults.mix.success,
        help="share of successful-login lines (default %(default)s); the rest is noise",
    )
    parser.add_argument(
        "--attackers",
        type=int,
        default=defaults.attackers,
        help="size of the attacker address pool (default %(default)s)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        spec = CorpusSpec(
            lines=args.lines,
            seed=args.seed,
            mix=Mix(attack=args.attack, success=args.success),
            attackers=args.attackers,
        )
    except ValueError as exc:
        print(f"gen_sshd_corpus: {exc}", file=sys.stderr)
        return 2
    if args.out == "-":
        summary = write_corpus(spec, sys.stdout)
    else:
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="ascii", newline="\n") as out:
            summary = write_corpus(spec, out)
    kinds = ", ".join(f"{summary.by_kind[k]} {k.value}" for k in Kind)
    print(
        f"gen_sshd_corpus: wrote {summary.lines} lines ({kinds}; "
        f"{len(summary.attackers_seen)} distinct attackers) to {args.out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
