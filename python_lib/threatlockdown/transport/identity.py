"""The manager's TLS identity: a self-signed certificate that agents pin by SHA-256 fingerprint.

Agents do not check a CA chain, host name or expiry date; they compare the fingerprint of the
certificate the manager presents with the one they pinned. That keeps a fleet free of a PKI while
still defeating a man in the middle.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
import shutil
import ssl
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .atomicfile import fsync_dir
from .errors import FingerprintMismatch, IdentityError
from .paths import HomeLayout

_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
_DEFAULT_SUBJECT = "/CN=threatlockdown-manager"
_DEFAULT_DAYS = 3650  # expiry is not checked by agents (they pin), so a long validity avoids surprises


@dataclass(frozen=True)
class ManagerIdentity:
    cert_path: Path
    key_path: Path
    fingerprint: str  # SHA-256 of the DER certificate, 64 lowercase hex characters


def certificate_fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def normalize_fingerprint(text: str) -> str:
    """Accept the forms people paste (``AB:CD:...`` as openssl prints it, or plain hex)."""
    cleaned = text.strip().replace(":", "").lower()
    if cleaned.startswith("sha256="):
        cleaned = cleaned.removeprefix("sha256=")
    if not _FINGERPRINT.fullmatch(cleaned):
        raise ValueError(f"{text.strip()[:100]!r} is not a SHA-256 fingerprint (64 hex characters)")
    return cleaned


def pem_certificate_fingerprint(path: Path) -> str:
    try:
        der = ssl.PEM_cert_to_DER_cert(path.read_text(encoding="ascii"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise IdentityError(f"{path}: cannot read the certificate: {exc}") from exc
    return certificate_fingerprint(der)


def ensure_manager_identity(home: Path, *, openssl: str = "openssl") -> ManagerIdentity:
    """Return the manager certificate under ``home/etc``, creating it with openssl the first time."""
    layout = HomeLayout(home)
    cert, key = layout.manager_cert, layout.manager_key
    if cert.exists() != key.exists():
        present, missing = (cert, key) if cert.exists() else (key, cert)
        raise IdentityError(
            f"{present} exists but {missing} is missing; restore it, or remove {present} to create a new "
            "identity (every agent then has to pin the new fingerprint)"
        )
    if not cert.exists():
        _create_self_signed(layout, openssl)
    return ManagerIdentity(cert, key, pem_certificate_fingerprint(cert))


def _create_self_signed(layout: HomeLayout, openssl: str) -> None:
    if shutil.which(openssl) is None:
        raise IdentityError(
            f"the {openssl!r} command is needed to create the manager certificate (Debian package openssl)"
        )
    layout.etc.mkdir(parents=True, exist_ok=True)
    # Build both files in a private directory, then move them in, so a crash never leaves a key
    # readable by others or a certificate without its key.
    work = Path(tempfile.mkdtemp(prefix=".tls-", dir=layout.etc))
    try:
        tmp_key, tmp_cert = work / "key.pem", work / "cert.pem"
        argv = [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-sha256", "-days", str(_DEFAULT_DAYS), "-subj", _DEFAULT_SUBJECT,
            "-keyout", str(tmp_key), "-out", str(tmp_cert),
        ]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
        if done.returncode != 0:
            raise IdentityError(f"openssl failed to create the manager certificate: {done.stderr.strip()}")
        os.chmod(tmp_key, 0o600)
        os.chmod(tmp_cert, 0o644)
        os.replace(tmp_key, layout.manager_key)
        os.replace(tmp_cert, layout.manager_cert)
        fsync_dir(layout.etc)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def server_context(identity: ManagerIdentity) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(identity.cert_path, identity.key_path)
    except (OSError, ssl.SSLError) as exc:
        raise IdentityError(f"cannot load {identity.cert_path} / {identity.key_path}: {exc}") from exc
    return ctx


def client_context() -> ssl.SSLContext:
    """No chain or host-name checks: the pinned fingerprint is checked right after the handshake."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def peer_fingerprint(writer: asyncio.StreamWriter) -> str:
    ssl_object = writer.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        raise IdentityError("the manager presented no certificate")
    return certificate_fingerprint(der)


def check_pinned(writer: asyncio.StreamWriter, expected: str) -> None:
    actual = peer_fingerprint(writer)
    if not hmac.compare_digest(actual, expected):
        raise FingerprintMismatch(expected, actual)
