"""The human-readable form of ``tld manager status``."""

from __future__ import annotations

from typing import Any

from .service import duration, when


def manager_status_text(s: dict[str, Any]) -> str:
    ev, q, al = s["events"], s["queue"], s["alerts"]
    out = [
        f"tld manager running (pid {s['pid']}), up {duration(s['uptime_seconds'])}, home {s['home']}",
        f"events: {ev['received']} received, {ev['processed']} processed, {ev['per_second']}/s "
        f"(last 10 s; {ev['per_second_since_start']}/s since start), {ev['dropped']} dropped",
        f"queue: {q['depth']} of {q['capacity']}",
    ]
    levels = ", ".join(f"level {k}: {v}" for k, v in al["by_level"].items()) or "none"
    out.append(f"alerts written: {al['written']} ({levels})")
    out.append("sources:")
    for name, st in sorted(s["sources"].items()):
        extra = ""
        if st.get("dropped") or st.get("kernel_dropped"):
            extra = f"  DROPPED {st.get('dropped', 0)} (+{st.get('kernel_dropped', 0)} by the kernel)"
        if st.get("refused"):
            extra += f"  refused {st['refused']}"
        out.append(
            f"  {name:<40} received {st.get('received', 0):>9}  processed {st.get('processed', 0):>9}{extra}"
        )
    agents = s["agents"]
    if "port" in agents:
        out.append(f"agents: {len(agents['connected'])} connected (port {agents['port']})")
        for a in agents["connected"]:
            out.append(
                f"  {a['id']} {a['name']} {a['ip']}  since {when(a['since'])}  events {a['events_received']}"
            )
        refused = sum(agents.get("refused", {}).values())
        if refused:
            out.append(f"  refused connections: {agents['refused']}")
    else:
        out.append("agents: not listening (no <remote><connection>secure</connection>)")
    if s.get("last_reload") and not s["last_reload"].get("ok"):
        out.append(f"last reload FAILED: {'; '.join(s['last_reload'].get('errors', []))}")
    return "\n".join(out) + "\n"
