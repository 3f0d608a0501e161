# Copyright: ThreatLockDown contributors
# SPDX-License-Identifier: Apache-2.0
"""The part of /etc/hosts.deny that ``host_deny`` manages.

Our entries live between two marker comments, so an unblock only ever removes lines we wrote. An address
is "already denied" only when a line's client list holds exactly that address (Wazuh's script matches a
substring, so 10.0.0.1 also matched 10.0.0.10).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ansible_collections.threatlockdown.active_response.plugins.module_utils.validation import (
    Address,
    parse_address,
)

BEGIN = "# BEGIN threatlockdown.active_response host_deny (managed block, do not edit)"
END = "# END threatlockdown.active_response host_deny"


class HostsDenyError(Exception):
    """The file cannot be edited safely; the message names the file and line."""


def entry_for(address: Address) -> str:
    """``ALL: 192.0.2.1`` or ``ALL: [2001:db8::1]`` (tcp_wrappers wants IPv6 in brackets)."""
    client = address.text if address.version == 4 else f"[{address.text}]"
    return f"ALL: {client}"


def split_fields(line: str) -> list[str]:
    """Split a hosts_access line on ':' except inside [IPv6] brackets."""
    fields = []
    depth = 0
    current = ""
    for char in line:
        if char == "[":
            depth += 1
        elif char == "]":
            depth = max(0, depth - 1)
        if char == ":" and depth == 0:
            fields.append(current)
            current = ""
        else:
            current += char
    fields.append(current)
    return fields


def denied_addresses(line: str) -> list[str]:
    """Canonical addresses a line denies to ALL daemons, e.g. ``ALL: 192.0.2.1, [2001:db8::1]``.

    Lines with options (a third field) or other daemon lists do not count: they do not deny everything.
    """
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return []
    fields = split_fields(stripped)
    if len(fields) != 2 or fields[0].strip() != "ALL":
        return []
    found = []
    for token in fields[1].replace(",", " ").split():
        if token.startswith("[") and token.endswith("]"):
            token = token[1:-1]
        elif ":" in token:
            # An unbracketed IPv6 address is not understood by tcp_wrappers.
            continue
        try:
            found.append(parse_address(token).text)
        except ValueError:
            continue
    return found


@dataclass
class HostsDeny:
    """The file split around our managed block; line numbers are 1-based positions in the original."""

    path: str
    head: list[str] = field(default_factory=list)
    managed: list[str] = field(default_factory=list)
    tail: list[str] = field(default_factory=list)
    had_block: bool = False
    # canonical address -> line number of lines outside our block that already deny it
    foreign: dict[str, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, path: str, text: str | None) -> HostsDeny:
        doc = cls(path=path)
        lines = (text or "").splitlines()
        begin: int | None = None
        end: int | None = None
        for number, line in enumerate(lines, start=1):
            if line.strip() == BEGIN:
                if begin is not None:
                    raise HostsDenyError(f"{path}:{number}: second '{BEGIN}' marker")
                begin = number
            elif line.strip() == END:
                if begin is None or end is not None:
                    raise HostsDenyError(f"{path}:{number}: '{END}' marker without a matching BEGIN")
                end = number
        if begin is not None and end is None:
            raise HostsDenyError(f"{path}:{begin}: '{BEGIN}' marker is never closed by '{END}'")
        if begin is None or end is None:
            doc.head = lines
        else:
            doc.had_block = True
            doc.head = lines[: begin - 1]
            doc.managed = lines[begin : end - 1]
            doc.tail = lines[end:]
        offset_tail = end or 0
        for number, line in list(enumerate(doc.head, start=1)) + list(
            enumerate(doc.tail, start=offset_tail + 1)
        ):
            for address in denied_addresses(line):
                doc.foreign.setdefault(address, number)
        return doc

    def managed_addresses(self) -> dict[str, int]:
        """Canonical address -> index in ``managed`` of lines we wrote."""
        found: dict[str, int] = {}
        for index, line in enumerate(self.managed):
            addresses = denied_addresses(line)
            if len(addresses) == 1 and line.strip() == entry_for(parse_address(addresses[0])):
                found.setdefault(addresses[0], index)
        return found

    def add(self, addresses: list[Address]) -> list[Address]:
        """Append entries for addresses no line denies yet; returns the ones added."""
        ours = self.managed_addresses()
        added = [a for a in addresses if a.text not in ours and a.text not in self.foreign]
        self.managed.extend(entry_for(a) for a in added)
        return added

    def remove(self, addresses: list[Address]) -> tuple[list[Address], list[Address]]:
        """Drop our entries; returns (removed, still denied by a line outside the block)."""
        wanted = {a.text for a in addresses}
        kept = []
        removed_texts = set()
        for line in self.managed:
            found = denied_addresses(line)
            if len(found) == 1 and found[0] in wanted and line.strip() == entry_for(parse_address(found[0])):
                removed_texts.add(found[0])
                continue
            kept.append(line)
        self.managed = kept
        removed = [a for a in addresses if a.text in removed_texts]
        foreign = [a for a in addresses if a.text in self.foreign]
        return removed, foreign

    def block_text(self) -> str:
        """Our block as it appears in the file ('' when there is none), used for diffs."""
        if not self.managed:
            return ""
        return "\n".join([BEGIN, *self.managed, END]) + "\n"

    def render(self) -> str:
        lines = list(self.head)
        if self.managed:
            lines += [BEGIN, *self.managed, END]
        lines += self.tail
        return "".join(line + "\n" for line in lines)
