from __future__ import annotations

import pwd

import pytest
from ansible_collections.threatlockdown.active_response.plugins.module_utils.accounts import (
    LOCKED,
    NO_PASSWORD,
    USABLE,
    AccountError,
    PasswordLocks,
    UidRange,
    lookup_accounts,
    parse_login_defs,
    parse_status,
    plan_changes,
)
from ansible_collections.threatlockdown.active_response.plugins.module_utils.blackhole_routes import (
    BlackholeRoutes,
    RouteError,
    parse_blackholes,
)
from ansible_collections.threatlockdown.active_response.plugins.module_utils.validation import (
    InvalidItems,
    parse_address_list,
)
from ansible_collections.threatlockdown.active_response.tests.unit.plugins.module_utils.tldar_fakes import (
    FakeRunner,
)


def test_login_defs() -> None:
    text = "# comment\nUID_MIN\t\t\t 2000\n#UID_MAX 10\nUID_MAX 59999\nSYS_UID_MIN 100\n"
    assert parse_login_defs("/etc/login.defs", text) == UidRange(2000, 59999)
    assert parse_login_defs("/etc/login.defs", None) == UidRange(1000, 60000)
    with pytest.raises(AccountError, match=r"/etc/login.defs:2: UID_MIN: 'x' is not a number"):
        parse_login_defs("/etc/login.defs", "\nUID_MIN x\n")


@pytest.mark.parametrize(
    ("output", "state"),
    [
        ("alice L 2024-01-01 0 99999 7 -1\n", LOCKED),
        ("alice LK 2024-01-01 0 99999 7 -1 (Password locked.)\n", LOCKED),
        ("alice P 2024-01-01 0 99999 7 -1\n", USABLE),
        ("alice PS 2024-01-01 0 99999 7 -1\n", USABLE),
        ("alice NP 2024-01-01 0 99999 7 -1\n", NO_PASSWORD),
    ],
)
def test_passwd_status(output: str, state: str) -> None:
    assert parse_status("alice", output) == state


def test_passwd_status_for_another_user_is_an_error() -> None:
    with pytest.raises(AccountError, match="unexpected"):
        parse_status("alice", "bob P 2024-01-01\n")


def fake_getpwnam(name: str) -> pwd.struct_passwd:
    uids = {"alice": 1001, "toor": 0, "root": 0, "www-data": 33, "nobody": 65534}
    if name not in uids:
        raise KeyError(name)
    return pwd.struct_passwd((name, "x", uids[name], uids[name], "", "/", "/bin/sh"))


def test_root_uid0_and_system_accounts_are_refused_together() -> None:
    with pytest.raises(InvalidItems) as caught:
        lookup_accounts(
            ["alice", "root", "toor", "www-data", "nobody", "ghost"], UidRange(1000, 60000), fake_getpwnam
        )
    assert [p.index for p in caught.value.problems] == [1, 2, 3, 4]
    assert "uid 33 is a system account" in str(caught.value)
    accounts = lookup_accounts(["alice", "ghost"], UidRange(1000, 60000), fake_getpwnam)
    assert [(a.name, a.uid, a.exists) for a in accounts] == [("alice", 1001, True), ("ghost", None, False)]


def test_plan_and_commands() -> None:
    accounts = lookup_accounts(["alice", "ghost"], UidRange(1000, 60000), fake_getpwnam)
    assert [(a.name, s) for a, s in plan_changes(accounts, {"alice": USABLE}, lock=True)] == [
        ("alice", USABLE)
    ]
    assert plan_changes(accounts, {"alice": LOCKED}, lock=True) == []
    assert plan_changes(accounts, {"alice": USABLE}, lock=False) == []
    runner = FakeRunner(lambda argv, data: (0, "", ""))
    assert PasswordLocks(runner).commands("alice", True) == ["/usr/sbin/usermod", "-L", "--", "alice"]
    no_usermod = FakeRunner(lambda argv, data: (0, "", ""), {"passwd": "/usr/bin/passwd"})
    assert PasswordLocks(no_usermod).commands("alice", False) == ["/usr/bin/passwd", "-u", "alice"]


def test_blackhole_listing() -> None:
    listing = (
        '[{"type":"blackhole","dst":"203.0.113.7","flags":[]},'
        '{"type":"blackhole","dst":"198.51.100.0/24","flags":[]},'
        '{"type":"unicast","dst":"192.0.2.1","flags":[]}]'
    )
    assert parse_blackholes(listing) == {"203.0.113.7"}
    with pytest.raises(RouteError):
        parse_blackholes("{")


def test_blackhole_commands_and_conflict() -> None:
    def handler(argv: list[str], data: str | None) -> tuple[int, str, str]:
        if "192.0.2.1/32" in argv:
            return 2, "", "RTNETLINK answers: File exists"
        return 0, "[]", ""

    runner = FakeRunner(handler)
    routes = BlackholeRoutes(runner)
    routes.add(parse_address_list("a", ["2001:db8::7"]))
    assert runner.calls[-1][0] == ["/usr/sbin/ip", "-6", "route", "add", "blackhole", "2001:db8::7/128"]
    with pytest.raises(RouteError, match=r"192\.0\.2\.1/32 already exists"):
        routes.add(parse_address_list("a", ["192.0.2.1"]))
