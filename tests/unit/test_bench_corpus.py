"""Benchmark corpus generator: deterministic, exact size, documentation addresses only, mix as asked."""

from __future__ import annotations

import importlib.util
import io
import ipaddress
import re
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

_GENERATOR_PATH = Path(__file__).resolve().parents[2] / "bench" / "gen_sshd_corpus.py"


def _load_generator() -> ModuleType:
    # bench/ is not an installed package; load the script by path under a private name.
    name = "_bench_gen_sshd_corpus"
    spec = importlib.util.spec_from_file_location(name, _GENERATOR_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class body runs
    spec.loader.exec_module(module)
    return module


gen = _load_generator()

_HEADER = re.compile(
    r"^(?P<mon>[A-Z][a-z]{2}) (?P<day>[ \d]\d) (?P<h>\d\d):(?P<m>\d\d):(?P<s>\d\d) (?P<host>\S+) "
    r"(?P<prog>[\w-]+)(?:\[(?P<pid>\d+)\])?: (?P<msg>.+)$"
)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# Written independently of the generator's templates: what a reader of auth.log would call each line.
_ATTACK = re.compile(
    r"^(?:Invalid user \S+ from "
    r"|Failed password for (?:invalid user )?\S+ from "
    r"|Connection closed by invalid user \S+ "
    r"|Disconnected from authenticating user \S+ "
    r"|Disconnecting authenticating user \S+ .*Too many authentication failures"
    r"|error: maximum authentication attempts exceeded for "
    r"|banner exchange: Connection from .*: invalid format$"
    r"|Did not receive identification string from "
    r"|pam_unix\(sshd:auth\): authentication failure;.* rhost=\S+"
    r"|pam_unix\(sshd:auth\): check pass; user unknown$"
    r"|PAM \d+ more authentication failures?;)"
)
_SUCCESS = re.compile(
    r"^(?:Accepted (?:publickey|password) for \S+ from "
    r"|pam_unix\(sshd:session\): session opened for user \S+\(uid=\d+\) by \(uid=0\)$)"
)
_DOC_NETS = [
    ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
]
# "Server listening on 0.0.0.0 / ::" names the wildcard bind address, not a host.
_ADDRESS_LIKE = re.compile(r"[0-9a-fA-F]*[.:][0-9a-fA-F.:]+")
_WILDCARDS = {ipaddress.ip_address("0.0.0.0"), ipaddress.ip_address("::")}


def _text(spec: object) -> str:
    out = io.StringIO()
    gen.write_corpus(spec, out)
    return out.getvalue()


def _classify(line: str) -> str:
    m = _HEADER.match(line)
    assert m is not None, f"not a BSD syslog line: {line!r}"
    if m["prog"] == "sshd":
        if _ATTACK.match(m["msg"]):
            return "attack"
        if _SUCCESS.match(m["msg"]):
            return "success"
    return "noise"


def _addresses(line: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    found = []
    message = line.split(": ", 1)[1]
    for raw in re.split(r"[\s=]+", message):
        token = raw.strip(".,;:()[]")
        if not _ADDRESS_LIKE.fullmatch(token):
            continue  # cheap pre-filter; ip_address() below has the final word
        try:
            found.append(ipaddress.ip_address(token))
        except ValueError:
            continue
    return found


def test_same_seed_gives_identical_output_and_another_seed_does_not() -> None:
    first = _text(gen.CorpusSpec(lines=5000, seed=7))
    again = _text(gen.CorpusSpec(lines=5000, seed=7))
    other = _text(gen.CorpusSpec(lines=5000, seed=8))
    assert first == again
    assert first != other


@pytest.mark.parametrize("lines", [0, 1, 4321])
def test_writes_exactly_the_requested_number_of_lines(lines: int) -> None:
    text = _text(gen.CorpusSpec(lines=lines, seed=3))
    assert text.count("\n") == lines
    assert text == "" or text.endswith("\n")


def test_command_line_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "corpus.log"
    assert gen.main(["--lines", "777", "--seed", "2", "--out", str(out)]) == 0
    written = out.read_text(encoding="ascii")
    assert written.count("\n") == 777
    assert written == _text(gen.CorpusSpec(lines=777, seed=2))


def test_bad_mix_is_rejected() -> None:
    with pytest.raises(ValueError, match="exceeds 1"):
        gen.Mix(attack=0.8, success=0.3)
    with pytest.raises(ValueError, match=re.escape("attack share -0.1")):
        gen.Mix(attack=-0.1)
    assert gen.main(["--lines", "10", "--attack", "0.95", "--success", "0.1", "--out", "-"]) == 2


def test_every_line_has_a_bsd_header_and_time_never_goes_back() -> None:
    previous = (0, 0, 0)
    hosts = set()
    for line in _text(gen.CorpusSpec(lines=20_000, seed=5)).splitlines():
        m = _HEADER.match(line)
        assert m is not None, f"not a BSD syslog line: {line!r}"
        if m["prog"] == "sshd":
            assert m["pid"] is not None, line
        hosts.add(m["host"])
        stamp = (_MONTHS.index(m["mon"]), int(m["day"]), int(m["h"]) * 3600 + int(m["m"]) * 60 + int(m["s"]))
        assert stamp >= previous, f"timestamp goes back at {line!r}"
        previous = stamp
    assert previous[2] > 0 and len(hosts) > 1


def test_only_documentation_addresses_appear() -> None:
    lines = _text(gen.CorpusSpec(lines=20_000, seed=11)).splitlines()
    seen: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    lines_with_address = 0
    for line in lines:
        found = [a for a in _addresses(line) if a not in _WILDCARDS]
        lines_with_address += bool(found)
        for address in found:
            assert any(address in net for net in _DOC_NETS), f"undocumented address {address} in {line!r}"
        seen.update(found)
    # Guard against a vacuous pass: addresses were really found, of both families.
    assert lines_with_address > len(lines) // 4
    assert any(a.version == 4 for a in seen) and any(a.version == 6 for a in seen)
    assert len(seen) > 300


@pytest.mark.parametrize(
    ("attack", "success"),
    [(0.30, 0.10), (0.60, 0.05), (0.0, 0.0)],
)
def test_mix_proportions_follow_the_configuration(attack: float, success: float) -> None:
    mix = gen.Mix(attack=attack, success=success)
    lines = _text(gen.CorpusSpec(lines=40_000, seed=13, mix=mix)).splitlines()
    shares = Counter(_classify(line) for line in lines)
    total = len(lines)
    assert abs(shares["attack"] / total - attack) < 0.015, shares
    assert abs(shares["success"] / total - success) < 0.015, shares
    assert abs(shares["noise"] / total - mix.noise) < 0.015, shares


def test_generator_labels_match_what_the_text_says() -> None:
    mismatches = [
        line.text
        for line in gen.generate(gen.CorpusSpec(lines=20_000, seed=17))
        if _classify(line.text) != line.kind.value
    ]
    assert mismatches == []


def test_attackers_repeat_in_bursts_but_are_many() -> None:
    per_attacker = Counter(
        line.attacker for line in gen.generate(gen.CorpusSpec(lines=60_000, seed=19)) if line.attacker
    )
    counts = sorted(per_attacker.values(), reverse=True)
    assert len(counts) > 500  # many distinct sources
    assert counts[0] >= 10 * counts[len(counts) // 2]  # a few hammer far harder than the typical one
    assert sum(1 for c in counts if c <= 3) > 20  # and a long tail of one-off probes


@pytest.mark.slow
def test_default_size_has_a_few_thousand_attackers() -> None:
    summary = gen.write_corpus(gen.CorpusSpec(), io.StringIO())
    assert summary.lines == 250_000
    assert 2000 <= len(summary.attackers_seen) <= 3000
