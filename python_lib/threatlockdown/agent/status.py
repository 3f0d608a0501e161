"""The human-readable form of ``tld agent status``."""

from __future__ import annotations

from typing import Any

from ..manager.service import duration


def agent_status_text(s: dict[str, Any]) -> str:
    fwd, mgr = s["forwarder"] or {}, s["manager"] or {}
    link = "connected" if fwd.get("connected") else "NOT connected"
    out = [
        f"tld agent running (pid {s['pid']}), up {duration(s['uptime_seconds'])}, home {s['home']}",
        f"manager {mgr.get('host')}:{mgr.get('port')}: {link}"
        + (
            f" (last error: {fwd['last_error']})"
            if fwd.get("last_error") and not fwd.get("connected")
            else ""
        ),
        f"events: {fwd.get('last_seq', 0)} spooled, {fwd.get('acked_seq', 0)} acknowledged by the manager, "
        f"{fwd.get('pending_events', 0)} waiting ({fwd.get('spool_bytes', 0)} bytes on disk)",
        f"queue: {s['queue']['depth']} of {s['queue']['capacity']}",
        "sources:",
    ]
    for name, st in sorted(s["sources"].items()):
        out.append(f"  {name:<40} read {st.get('received', 0):>9}  forwarded {st.get('forwarded', 0):>9}")
    return "\n".join(out) + "\n"
