"""Where the transport keeps its files under a manager or agent home directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class HomeLayout:
    """File names follow Wazuh's layout where Wazuh has an equivalent (etc/client.keys, etc/sslmanager.*)."""

    home: Path

    @property
    def etc(self) -> Path:
        return self.home / "etc"

    @property
    def client_keys(self) -> Path:
        return self.etc / "client.keys"

    @property
    def client_keys_lock(self) -> Path:
        # A separate lock file: client.keys itself is replaced by rename, so locking it would not serialise.
        return self.etc / ".client.keys.lock"

    @property
    def manager_cert(self) -> Path:
        return self.etc / "sslmanager.cert"

    @property
    def manager_key(self) -> Path:
        return self.etc / "sslmanager.key"

    @property
    def pinned_fingerprint(self) -> Path:
        """Agent side: SHA-256 fingerprint of the manager certificate this agent trusts."""
        return self.etc / "manager.fingerprint"

    @property
    def agent_seq_dir(self) -> Path:
        """Manager side: one file per agent with the last event sequence number persisted."""
        return self.home / "queue" / "agent-seq"

    @property
    def spool_dir(self) -> Path:
        """Agent side: segment files of events not yet acknowledged by the manager."""
        return self.home / "queue" / "spool"
