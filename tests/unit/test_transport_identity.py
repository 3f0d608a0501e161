"""Manager certificate creation with openssl, fingerprints, agent-side files, manager seq state."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from threatlockdown.errors import SourceErrors
from threatlockdown.transport.agent_files import read_agent_key, read_pinned_fingerprint, write_agent_files
from threatlockdown.transport.errors import IdentityError
from threatlockdown.transport.identity import ensure_manager_identity, normalize_fingerprint
from threatlockdown.transport.keys import AgentKey
from threatlockdown.transport.seqstate import SeqStateStore, StreamState

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


@needs_openssl
def test_certificate_is_created_once_with_a_private_key(tmp_path: Path) -> None:
    first = ensure_manager_identity(tmp_path)
    assert first.cert_path == tmp_path / "etc" / "sslmanager.cert"
    assert stat.S_IMODE(first.key_path.stat().st_mode) == 0o600
    # Our fingerprint is what openssl itself reports for the certificate.
    out = subprocess.run(
        ["openssl", "x509", "-in", str(first.cert_path), "-noout", "-fingerprint", "-sha256"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert normalize_fingerprint(out.split("=", 1)[1]) == first.fingerprint
    again = ensure_manager_identity(tmp_path)
    assert again == first  # not regenerated: agents keep their pin
    assert sorted(p.name for p in (tmp_path / "etc").iterdir()) == ["sslmanager.cert", "sslmanager.key"]


@needs_openssl
def test_half_an_identity_is_an_error_not_a_silent_regeneration(tmp_path: Path) -> None:
    identity = ensure_manager_identity(tmp_path)
    identity.key_path.unlink()
    with pytest.raises(IdentityError, match=r"sslmanager.cert exists but .*sslmanager.key is missing"):
        ensure_manager_identity(tmp_path)


def test_missing_openssl_is_explained(tmp_path: Path) -> None:
    with pytest.raises(IdentityError, match="Debian package openssl"):
        ensure_manager_identity(tmp_path, openssl="/nonexistent/openssl")


def test_fingerprint_forms_are_normalized() -> None:
    plain = "ab" * 32
    assert normalize_fingerprint(":".join(["AB"] * 32)) == plain
    assert normalize_fingerprint(f"  sha256={plain}\n") == plain
    with pytest.raises(ValueError, match="not a SHA-256 fingerprint"):
        normalize_fingerprint("ab" * 20)


def test_agent_files_round_trip_and_errors(tmp_path: Path) -> None:
    agent = AgentKey("004", "web-4", "any", "c" * 64)
    with pytest.raises(SourceErrors, match=r"client\.keys: file not found"):
        read_agent_key(tmp_path)
    with pytest.raises(SourceErrors, match=r"manager\.fingerprint: file not found: enroll the agent"):
        read_pinned_fingerprint(tmp_path)
    write_agent_files(tmp_path, agent, "CD:" * 31 + "CD")
    assert read_agent_key(tmp_path) == agent
    assert read_pinned_fingerprint(tmp_path) == "cd" * 32
    (tmp_path / "etc" / "manager.fingerprint").write_text("nope\n")
    with pytest.raises(SourceErrors, match=r"manager.fingerprint:1: 'nope' is not a SHA-256 fingerprint"):
        read_pinned_fingerprint(tmp_path)
    (tmp_path / "etc" / "client.keys").write_text(f"004 web-4 any {'c' * 64}\n005 web-5 any {'d' * 64}\n")
    with pytest.raises(SourceErrors, match="holds 2 agents, expected 1"):
        read_agent_key(tmp_path)


def test_seq_state_round_trip_and_corruption(tmp_path: Path) -> None:
    store = SeqStateStore(tmp_path / "queue" / "agent-seq")
    assert store.load("001") is None
    state = StreamState("0f" * 16, 42)
    store.save("001", state)
    assert store.load("001") == state
    store.path_for("002").write_text('{"stream": "0f0f", "last_seq": 1}')
    with pytest.raises(SourceErrors, match=r"002.json:1: <stream>: must be 32 lowercase hex"):
        store.load("002")
    store.path_for("003").write_text("{")
    with pytest.raises(SourceErrors, match=r"003.json: not JSON"):
        store.load("003")
