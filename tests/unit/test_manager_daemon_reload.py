"""ManagerDaemon in-process: a reload that changes the <localfile>s swaps the collectors without losing or
repeating a line, a refused reload keeps everything, and a stop drains the queue."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from threatlockdown.manager.daemon import ManagerDaemon
from threatlockdown.manager.home import Home

RULES = """<group name="tldtest,"><rule id="100100" level="3"><match>tldtest seq=</match>
<description>test line</description></rule></group>"""
RULESET = (
    "<ruleset><decoder_dir>ruleset/decoders</decoder_dir><rule_dir>ruleset/rules</rule_dir>"
    "<rule_dir>etc/rules</rule_dir></ruleset>"
)


def _conf(home: Path, files: list[Path]) -> None:
    blocks = "".join(
        f"<localfile><log_format>syslog</log_format><location>{f}</location></localfile>" for f in files
    )
    (home / "etc" / "ossec.conf").write_text(f"<ossec_config>{blocks}{RULESET}</ossec_config>\n")


def _seqs(home: Path) -> list[str]:
    path = home / "logs" / "alerts" / "alerts.json"
    if not path.exists():
        return []
    return [json.loads(line)["full_log"].rsplit("seq=", 1)[1] for line in path.read_text().splitlines()]


async def _until(what: object, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not what():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_reload_swaps_collectors_exactly_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "etc" / "rules").mkdir(parents=True)
    (home / "etc" / "rules" / "t.xml").write_text(RULES)
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.touch()
    b.touch()
    _conf(home, [a])

    def add(path: Path, tag: str) -> None:
        with path.open("a") as f:
            f.write(f"Nov 26 05:33:21 h t[1]: tldtest seq={tag}\n")

    async def main() -> dict[str, object]:
        daemon = ManagerDaemon(Home(home))
        ready: list[str | None] = []
        task = asyncio.create_task(daemon.run(ready.append))
        await _until(lambda: ready)
        assert ready == [None]
        add(a, "a1")
        await _until(lambda: _seqs(home) == ["a1"])

        (home / "etc" / "ossec.conf").write_text("<ossec_config><localfile>")  # broken
        refused = await daemon.reload()
        assert refused["ok"] is False and "XML syntax error" in refused["errors"][0]
        assert [c.name for c in daemon.collectors] == [f"file:{a}"]

        _conf(home, [a, b])
        add(a, "a2")  # written while the old collectors may still read it
        reloaded = await daemon.reload()
        assert reloaded == {"ok": True, "changed": ["ruleset", "outputs", "collectors"]}
        assert sorted(c.name for c in daemon.collectors) == sorted([f"file:{a}", f"file:{b}"])
        add(a, "a3")
        # A file new to the configuration is read from its end (only-future-events, as in Wazuh): wait
        # until the new tailer has opened it.
        await _until(lambda: daemon.status()["sources"][f"file:{b}"]["files"] == 1)
        add(b, "b1")
        await _until(lambda: len(_seqs(home)) >= 4)
        status = daemon.status()
        daemon.request_stop()
        assert await asyncio.wait_for(task, 30) == 0
        return status

    status = asyncio.run(main())
    assert sorted(_seqs(home)) == ["a1", "a2", "a3", "b1"]
    assert status["reloads"] == 1
    assert not (home / "var" / "run" / "tld-manager.pid").exists()
