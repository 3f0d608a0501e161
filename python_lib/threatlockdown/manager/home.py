"""Where a manager or agent keeps its files: Wazuh's /var/ossec layout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# sockaddr_un.sun_path is 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107


@dataclass(frozen=True)
class Home:
    """The installation directory of one daemon; ``role`` is "manager" or "agent"."""

    root: Path
    role: str = "manager"

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def ossec_conf(self) -> Path:
        return self.etc / "ossec.conf"

    @property
    def rules_dir(self) -> Path:
        return self.etc / "rules"

    @property
    def decoders_dir(self) -> Path:
        return self.etc / "decoders"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def internal_log(self) -> Path:
        """The analogue of Wazuh's ossec.log."""
        return self.logs / "threatlockdown.log"

    @property
    def alerts_dir(self) -> Path:
        return self.logs / "alerts"

    @property
    def alerts_json(self) -> Path:
        return self.alerts_dir / "alerts.json"

    @property
    def alerts_log(self) -> Path:
        return self.alerts_dir / "alerts.log"

    @property
    def queue(self) -> Path:
        return self.root / "queue"

    @property
    def collector_state(self) -> Path:
        """Saved file positions and the journal cursor."""
        return self.queue / "collect"

    @property
    def batch_journal(self) -> Path:
        return self.queue / "alerts" / "batch.journal"

    @property
    def run_dir(self) -> Path:
        return self.root / "var" / "run"

    @property
    def pidfile(self) -> Path:
        return self.run_dir / f"tld-{self.role}.pid"

    @property
    def control_socket(self) -> Path:
        return self.run_dir / f"tld-{self.role}.sock"

    def create_dirs(self) -> None:
        """Create the directories the daemon writes to (etc/ stays as the administrator left it)."""
        dirs = [self.logs, self.queue, self.collector_state, self.batch_journal.parent, self.run_dir]
        if self.role == "manager":
            dirs.append(self.alerts_dir)
        for d in dirs:
            d.mkdir(parents=True, exist_ok=True)
        self.run_dir.chmod(0o750)

    def socket_problem(self) -> str | None:
        """Why the control socket cannot be created at its path, or None."""
        if len(str(self.control_socket).encode()) > MAX_SOCKET_PATH:
            return (
                f"{self.control_socket}: path longer than {MAX_SOCKET_PATH} bytes, too long for a unix "
                "socket; use a shorter --home"
            )
        return None
