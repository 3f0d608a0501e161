"""AnsibleRunnerExecutor without SSH: real ansible-runner runs of small playbooks on local-connection hosts.

The integration tests (tests/integration/test_ansible_executor.py) run the real response playbooks on
lab hosts over SSH; these check the executor's own behaviour quickly and without root: the variables a
playbook receives, per-host limits, fresh run directories and their pruning, warm and cold runs giving
the same results, timeouts, cancellation and close().
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from threatlockdown.response.ansible_executor import (
    AnsibleExecutorSettings,
    AnsibleRunnerExecutor,
    batch_extravars,
    batch_options,
    host_problem,
)
from threatlockdown.response.ansible_unsafe import UNSAFE_KEY, plain
from threatlockdown.response.executor import Batch, ResponseItem

PAYLOAD = "{{ lookup('pipe','touch PWNED') }} $(touch PWNED) `touch PWNED`"
SLEEP_SECONDS = "41.0173"  # an unusual number so the test can find its own sleep process

# debug runs nothing on the host (fast); the test reads what each host got from the run's job events.
RECORD_PLAYBOOK = """\
- name: Record what this host received
  hosts: all
  gather_facts: false
  tasks:
    - name: Show the variables
      ansible.builtin.debug:
        msg:
          action: "{{ tld_action }}"
          command: "{{ tld_command }}"
          options: "{{ tld_options }}"
          extra_args: "{{ tld_extra_args }}"
          mine: "{{ tld_items[inventory_hostname] }}"
          alerts: "{{ tld_items[inventory_hostname] | map(attribute='alert_json') | map('from_json') }}"
      changed_when: tld_action == 'add'
"""
SLOW_PLAYBOOK = f"""\
- name: Take long
  hosts: all
  gather_facts: false
  tasks:
    - name: Sleep
      ansible.builtin.command: sleep {SLEEP_SECONDS}
      changed_when: false
"""


@pytest.fixture
def workdir() -> Iterator[Path]:
    # Short paths: the warm socket and SSH control sockets must fit in a Unix socket path.
    with tempfile.TemporaryDirectory(prefix="tldx-", dir="/tmp") as name:
        yield Path(name)


def make_settings(workdir: Path, **options: Any) -> AnsibleExecutorSettings:
    playbooks = workdir / "playbooks"
    playbooks.mkdir(exist_ok=True)
    (playbooks / "record.yml").write_text(RECORD_PLAYBOOK)
    (playbooks / "slow.yml").write_text(SLOW_PLAYBOOK)
    (playbooks / "broken.yml").write_text("- hosts: all\n  tasks: [\n")
    inventory = workdir / "hosts.ini"
    # The system Python starts faster than the venv's for the modules; both have what they need.
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    host_vars = f"ansible_connection=local ansible_python_interpreter={python}"
    inventory.write_text("".join(f"{name} {host_vars}\n" for name in ("h1", "h2", "h3")))
    return AnsibleExecutorSettings(
        inventory=(str(inventory),), queue_dir=workdir / "q", playbook_dir=playbooks, **options
    )


def item(key: str, host: str, **fields: Any) -> ResponseItem:
    return ResponseItem(key, host, **fields)


def record_batch(workdir: Path, action: str = "add") -> Batch:
    payload = PAYLOAD.replace("PWNED", str(workdir / "pwned"))
    alert = {"full_log": payload, "data": {"srcip": "203.0.113.9", "dstuser": payload}, payload: 1}
    items = (
        item(
            "firewall-drop:h1:203.0.113.9",
            "h1",
            srcip="203.0.113.9",
            timeout=60,
            alert=alert,
            extra_args=("backend=ipset", "-v"),
        ),
        item(
            "firewall-drop:h1:2001:db8::9",
            "h1",
            srcip="2001:db8::9",
            timeout=60,
            alert={},
            extra_args=("backend=ipset", "-v"),
        ),
        item(
            "firewall-drop:h2:203.0.113.9",
            "h2",
            srcip="203.0.113.9",
            timeout=60,
            alert=alert,
            extra_args=("backend=ipset", "-v"),
        ),
    )
    return Batch("batch-1", "firewall-drop", "record", action, items)  # type: ignore[arg-type]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def execute_and_close(executor: AnsibleRunnerExecutor, *batches: Batch) -> list[list[Any]]:
    try:
        return [await executor.execute(b) for b in batches]
    finally:
        await executor.close()


# -- pure parts -------------------------------------------------------------------------------------


def test_every_string_of_the_batch_is_sent_unsafe(workdir: Path) -> None:
    batch = record_batch(workdir)
    extravars = batch_extravars(batch, batch.items)

    def bare_strings(value: Any) -> list[str]:
        if isinstance(value, str):
            return [value]
        if isinstance(value, dict):
            if set(value) == {UNSAFE_KEY}:
                return []
            return [s for v in value.values() for s in bare_strings(v)]
        if isinstance(value, list):
            return [s for v in value for s in bare_strings(v)]
        return []

    assert bare_strings(extravars) == []
    readable = plain(extravars)
    assert readable["tld_action"] == "add"
    assert readable["tld_options"] == {"backend": "ipset"}
    assert readable["tld_extra_args"] == ["backend=ipset", "-v"]
    assert sorted(readable["tld_items"]) == ["h1", "h2"]
    first = readable["tld_items"]["h1"][0]
    assert json.loads(first["alert_json"])["full_log"].startswith("{{ lookup('pipe'")
    assert first["timeout"] == 60 and first["srcip"] == "203.0.113.9"
    assert [i["key"] for i in readable["tld_items"]["h1"]] == [batch.items[0].key, batch.items[1].key]


def test_options_and_host_names() -> None:
    assert batch_options(["backend=nftables", "Bad=1", "x", "backend=ipset", "script=a=b"]) == {
        "backend": "ipset",
        "script": "a=b",
    }
    assert host_problem("web1") is None
    assert host_problem("db-2.example.org") is None
    assert host_problem("2001:db8::1") is None
    for bad in ("web*", "a,b", "!web1", "@hosts.txt", "web1:&web2", "~web", "web[1]", ""):
        problem = host_problem(bad)
        assert problem is not None and "exact --limit pattern" in problem, bad


def test_settings_problems_name_the_setting(workdir: Path) -> None:
    settings = AnsibleExecutorSettings(
        inventory=(str(workdir / "missing.yml"),),
        queue_dir=workdir,
        playbook_dir=workdir / "none",
        keep_runs=0,
        forks=0,
        control_path_dir=Path("/tmp/" + "x" * 100),
    )
    problems = "\n".join(settings.problems())
    for expected in (
        "inventory: ",
        "missing.yml does not exist",
        "playbook_dir: ",
        "keep_runs: ",
        "forks: ",
        "control_path_dir: ",
    ):
        assert expected in problems
    with pytest.raises(ValueError, match="ansible executor settings: inventory"):
        AnsibleRunnerExecutor(settings)


def test_environment_keeps_connections_and_host_key_checks(workdir: Path) -> None:
    env = make_settings(workdir, envvars={"ANSIBLE_FORCE_COLOR": "0"}).environment()
    assert env["ANSIBLE_SSH_CONTROL_PATH_DIR"] == str(workdir / "q" / "ssh-cp")
    assert "ControlPersist" in env["ANSIBLE_SSH_ARGS"]
    assert env["ANSIBLE_PIPELINING"] == "True"
    assert env["ANSIBLE_HOST_KEY_CHECKING"] == "True"
    assert env["ANSIBLE_FORCE_COLOR"] == "0"
    assert "ANSIBLE_SSH_ARGS" not in make_settings(workdir, ssh_args=None).environment()


def test_missing_playbook_and_bad_hosts_fail_without_a_run(workdir: Path) -> None:
    executor = AnsibleRunnerExecutor(make_settings(workdir, warm=False))
    missing = Batch("b", "custom", "no-such-playbook", "add", (item("k1", "h1"),))
    escaping = Batch("b", "custom", "../record", "add", (item("k2", "h1"),))
    bad_host = Batch("b", "firewall-drop", "record", "add", (item("k3", "h1,h2"),))
    results = run(execute_and_close(executor, missing, escaping, bad_host))
    assert results[0][0].status == "failed" and "no response playbook" in results[0][0].message
    assert results[1][0].status == "failed" and "not a plain playbook name" in results[1][0].message
    assert results[2][0].status == "failed" and "exact --limit pattern" in results[2][0].message
    assert executor.runs_started == 0


def received(run_dir: Path) -> dict[str, Any]:
    """What the record playbook showed, by host, from the kept job events."""
    shown = {}
    for path in (run_dir / "artifacts" / "run" / "job_events").glob("*.json"):
        event = json.loads(path.read_text())
        if event.get("event") == "runner_on_ok":
            shown[event["event_data"]["host"]] = event["event_data"]["res"]["msg"]
    return shown


# -- real runs --------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("warm", [True, False], ids=["warm", "cold"])
def test_run_records_the_batch_on_its_hosts_only(workdir: Path, warm: bool) -> None:
    executor = AnsibleRunnerExecutor(make_settings(workdir, warm=warm, keep_runs=2))
    batch = record_batch(workdir)
    [results] = run(execute_and_close(executor, batch))
    assert [(r.key, r.host, r.status, r.changed) for r in results] == [
        (i.key, i.host, "ok", True) for i in batch.items
    ]
    assert executor.runs_started == 1
    [run_dir] = executor.runs.existing()
    shown = received(run_dir)
    assert sorted(shown) == ["h1", "h2"]  # --limit: h3 untouched
    h1 = shown["h1"]
    assert h1["action"] == "add" and h1["command"] == "firewall-drop"
    assert h1["options"] == {"backend": "ipset"}
    assert [i["srcip"] for i in h1["mine"]] == ["203.0.113.9", "2001:db8::9"]
    payload = PAYLOAD.replace("PWNED", str(workdir / "pwned"))
    assert h1["alerts"][0]["full_log"] == payload
    assert h1["alerts"][0]["data"]["dstuser"] == payload
    assert payload in h1["alerts"][0]
    assert h1["alerts"][1] == {}
    assert not (workdir / "pwned").exists()
    # The run directory is kept for forensics, with the unsafe extra vars and the job events.
    extravars = (run_dir / "env" / "extravars").read_text()
    assert '"__ansible_unsafe"' in extravars
    assert any((run_dir / "artifacts" / "run" / "job_events").iterdir())
    assert (run_dir / "artifacts" / "run" / "rc").read_text() == "0"


@pytest.mark.slow
def test_unchanged_results_and_old_runs_are_pruned(workdir: Path) -> None:
    executor = AnsibleRunnerExecutor(make_settings(workdir, keep_runs=1))
    first, second = run(execute_and_close(executor, record_batch(workdir), record_batch(workdir, "delete")))
    assert all(r.changed for r in first)
    assert not any(r.changed for r in second)  # the playbook reports no change for delete
    assert all(r.status == "ok" for r in second)
    [kept] = executor.runs.existing()
    assert received(kept)["h1"]["action"] == "delete"
    assert executor.runs_started == 2


@pytest.mark.slow
def test_broken_playbook_fails_items_with_the_error(workdir: Path) -> None:
    executor = AnsibleRunnerExecutor(make_settings(workdir))
    [results] = run(execute_and_close(executor, Batch("b", "x", "broken", "add", (item("k", "h1"),))))
    assert results[0].status == "failed"
    assert "ansible-playbook exited with status" in results[0].message
    assert "ERROR" in results[0].message


def sleepers() -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[:2] == [b"sleep", SLEEP_SECONDS.encode()]:
                found.append(int(proc.name))
    return found


def wait_until_gone(deadline: float) -> list[int]:
    while sleepers() and time.monotonic() < deadline:
        time.sleep(0.1)
    return sleepers()


@pytest.mark.slow
@pytest.mark.parametrize("warm", [True, False], ids=["warm", "cold"])
def test_run_timeout_kills_the_run_and_its_workers(workdir: Path, warm: bool) -> None:
    executor = AnsibleRunnerExecutor(make_settings(workdir, run_timeout=3, warm=warm))
    started = time.monotonic()
    [results] = run(execute_and_close(executor, Batch("b", "x", "slow", "add", (item("k", "h1"),))))
    assert time.monotonic() - started < 25
    assert results[0].status == "failed"
    assert "timed out after 3 s" in results[0].message
    assert wait_until_gone(time.monotonic() + 5) == []


@pytest.mark.slow
def test_close_cancels_running_work(workdir: Path) -> None:
    executor = AnsibleRunnerExecutor(make_settings(workdir))
    batch = Batch("b", "x", "slow", "add", (item("k", "h1"),))

    async def scenario() -> tuple[list[Any], float, list[Any]]:
        running = asyncio.create_task(executor.execute(batch))
        deadline = time.monotonic() + 30
        while not sleepers() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert sleepers(), "the playbook never started its sleep"
        closing = time.monotonic()
        await executor.close()
        results = await running
        took = time.monotonic() - closing
        after = await executor.execute(batch)
        return results, took, after

    results, took, after = run(scenario())
    assert took < 10
    assert results[0].status == "failed" and "canceled" in results[0].message
    assert after[0].status == "failed" and "closed" in after[0].message
    assert wait_until_gone(time.monotonic() + 5) == []
    assert not (workdir / "q" / "ansible-warm" / "server.sock").exists()


@pytest.mark.slow
def test_cancelling_execute_stops_the_run(workdir: Path) -> None:
    executor = AnsibleRunnerExecutor(make_settings(workdir))

    async def scenario() -> None:
        running = asyncio.create_task(executor.execute(Batch("b", "x", "slow", "add", (item("k", "h1"),))))
        deadline = time.monotonic() + 30
        while not sleepers() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        await executor.close()

    run(scenario())
    assert wait_until_gone(time.monotonic() + 5) == []


@pytest.mark.slow
def test_warm_server_is_restarted_when_it_died(workdir: Path) -> None:
    executor = AnsibleRunnerExecutor(make_settings(workdir))
    executor.start()
    warm = executor._warm
    assert warm is not None and warm.running
    process = warm._process
    assert process is not None
    os.kill(process.pid, 9)
    process.wait()
    [results] = run(execute_and_close(executor, record_batch(workdir)))
    assert all(r.status == "ok" for r in results)


def test_queue_directory_may_be_group_readable(workdir: Path) -> None:
    """The manager role creates HOME/queue 0750; the socket directories inside are the private ones."""
    settings = make_settings(workdir)
    settings.queue_dir.mkdir(mode=0o750)
    settings.queue_dir.chmod(0o750)
    executor = AnsibleRunnerExecutor(settings)
    try:
        executor.start()
        warm = executor._warm
        assert warm is not None and warm.running
        assert settings.warm_socket.parent != settings.queue_dir
    finally:
        asyncio.run(executor.close())


def test_socket_paths_stay_short_under_a_long_home(workdir: Path) -> None:
    settings = make_settings(workdir)
    deep = AnsibleExecutorSettings(
        inventory=settings.inventory,
        queue_dir=workdir / ("d" * 120) / "queue",
        playbook_dir=settings.playbook_dir,
    )
    assert deep.problems() == []
    assert len(str(deep.control_dir).encode()) <= 95 and deep.control_dir.name.startswith("tld-ssh-")
    assert len(str(deep.warm_socket).encode()) <= 107
    assert settings.control_dir == workdir / "q" / "ssh-cp"  # short enough: under the queue directory
