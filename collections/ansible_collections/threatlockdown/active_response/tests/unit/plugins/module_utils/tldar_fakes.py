"""A Runner that records argv lists and answers from a handler instead of running anything."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ansible_collections.threatlockdown.active_response.plugins.module_utils.commands import CommandResult

Handler = Callable[[list[str], "str | None"], "tuple[int, str, str]"]

DEFAULT_TOOLS = {
    "nft": "/usr/sbin/nft",
    "ipset": "/usr/sbin/ipset",
    "iptables": "/usr/sbin/iptables",
    "ip6tables": "/usr/sbin/ip6tables",
    "firewall-cmd": "/usr/bin/firewall-cmd",
    "ip": "/usr/sbin/ip",
    "passwd": "/usr/bin/passwd",
    "usermod": "/usr/sbin/usermod",
}


class FakeRunner:
    def __init__(self, handler: Handler, tools: dict[str, str] | None = None) -> None:
        self.handler = handler
        self.tools = dict(DEFAULT_TOOLS if tools is None else tools)
        self.calls: list[tuple[list[str], str | None]] = []

    def run(self, argv: Sequence[str], data: str | None = None) -> CommandResult:
        args = list(argv)
        self.calls.append((args, data))
        rc, out, err = self.handler(args, data)
        return CommandResult(argv=args, rc=rc, stdout=out, stderr=err)

    def find(self, name: str) -> str | None:
        return self.tools.get(name)

    def argvs(self) -> list[list[str]]:
        return [argv for argv, _data in self.calls]
