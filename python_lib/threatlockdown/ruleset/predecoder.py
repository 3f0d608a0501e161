"""The syslog header parser: what Wazuh's OS_CleanMSG finds before decoding.

Recognised headers, tried in Wazuh's order (positions are checked the way Wazuh checks them):

* syslog family, then host and program are parsed:
  ``Mmm dd hh:mm:ss`` (BSD, also ``Mmm  d``), ``YYYY-MM-DD hh:mm:ss,mmm`` (proftpd),
  ``YYYY-MM-DDThh:mm:ss[.frac][Z|+hh:mm]`` (ISO 8601 / rsyslog high precision / syslog-ng),
  ``YYYY Mmm dd hh:mm:ss``, ``YYYY-MM-DD hh:mm:ss.ffffff+zzzz`` (macOS ULS);
* then timestamp only: xferlog ``Ddd Mmm dd hh:mm:ss YYYY``, snort ``MM/DD-hh:mm:ss.ffffff``,
  suricata ``MM/DD/YYYY-hh:mm:ss.ffffff``, apache ``[Ddd Mmm dd hh:mm:ss YYYY]``, macOS ASL
  ``[Time ...] [Sender p] [Message m] [Host h]`` (program, message and host, no timestamp, as Wazuh) and
  squid ``1140804070.368``.

After a syslog-family timestamp (and one optional extra space) comes the host: a run of
``A-Z a-z 0-9 ( ) - . / @ _``. Followed by ``": "`` it is really the program (Solaris, no host).
Program forms: ``p:`` (the space after ``:`` is optional), ``p[pid]:``, ``p[pid] `` and AIX
``host |facility:severity p:``. A leading ``[ID nnn fac.sev] `` is removed from the message.
Anything else leaves the host (if valid) but no program, and the message starts where the program
would have.

Additions over Wazuh, which a user reading syslog from the network or from RFC 5424 senders expects:
a leading ``<PRI>`` (0-191) is removed before anything else, and an RFC 5424 line
``<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`` gives program APP, pid PROCID and the message after
the structured data (Wazuh would treat the whole line as the message). ISO timestamps are accepted
with any fraction length, ``Z``, ``+hh:mm`` or ``+hhmm`` zones and on short lines.

Wazuh quirks we keep because alerts show them: the ``Mär`` fix-up that cuts the timestamp one
character short (``Mär 02 17:30:5``), snort's message starting two characters after the timestamp,
and squid's timestamp keeping all but the last of the spaces after it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any, Final

from threatlockdown.ruleset.event import Event, Predecoded

# Characters Wazuh accepts in a hostname or program name (its hostname_map).
_NAME_RUN: Final = re.compile(r"[A-Za-z0-9()./@_-]*")
_DIGIT_RUN: Final = re.compile(r"[0-9]*")
_ALNUM_RUN: Final = re.compile(r"[A-Za-z0-9]*")

# The common case, tried first: BSD header, host, ``prog:`` or ``prog[pid]:``. It accepts a subset of
# what the general path does and gives the same result for it. Possessive: nothing to backtrack into.
_BSD_FAST: Final = re.compile(
    r"([A-Z][a-z][a-z] [ 0-3][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]) "
    r"([A-Za-z0-9()./@_-]++) ([A-Za-z0-9()./@_-]++)(?:\[([0-9]++)\])?+: ?+"
)
# _BSD_FAST followed by the message as a fifth group: one call gives every part. Its groups are
# (timestamp, host, program, pid or None, message); a message starting with "[ID " still needs
# strip_solaris_id (bsd_header does both).
BSD_LINE: Final = re.compile(_BSD_FAST.pattern + "(.*)", re.DOTALL)
# Wazuh adds predecoder.hostname to alerts only when full_log matches this.
_CLASSIC_BSD: Final = re.compile(r"[A-Z][a-z][a-z] [ 0123][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9] [^ ]")
_PRI: Final = re.compile(r"<(?:1[0-8][0-9]|19[01]|[1-9]?[0-9])>")

_ISO: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:[.,][0-9]+)?(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)? "
)
_PROFTPD: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2},[0-9]+ ")
_ULS: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]+[+-][0-9]{4} ")
_YEAR_FIRST: Final = re.compile(r"[0-9]{4} [A-Za-z]{3} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} ")
_RFC5424: Final = re.compile(r"1 (\S+) (\S+) (\S+) (\S+) (\S+) ")
_RFC5424_BARE: Final = re.compile(r"1 [0-9]{4}-[0-9]{2}-[0-9]{2}T")
_ASL_ENTRY: Final = re.compile(r"\[(Sender |Message |Host )")
# One RFC 5424 SD-ELEMENT: quoted values may contain ']' and backslash escapes. Possessive throughout.
_SD_ELEMENT: Final = re.compile(r'\[(?:[^\]"]++|"(?:[^"\\]++|\\.)*+")*+\]', re.DOTALL)

_MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def predecode(line: str) -> Predecoded:
    """Split a log line into header fields and the message decoders and rules look at."""
    fast = _BSD_FAST.match(line)
    if fast is not None:
        return _from_fast(line, fast)
    pri = _PRI.match(line)
    if pri is not None:
        rest = line[pri.end() :]
        fast = _BSD_FAST.match(rest)
        if fast is not None:
            return _from_fast(rest, fast)
        if rest.startswith("1 "):
            parsed = _rfc5424(rest)
            if parsed is not None:
                return parsed
        return _general(rest)
    if line.startswith("1 ") and _RFC5424_BARE.match(line):
        parsed = _rfc5424(line)
        if parsed is not None:
            return parsed
    return _general(line)


def bsd_header(line: str) -> tuple[str, str, str, str, str] | None:
    """(timestamp, host, program, pid, message) when the line has the common BSD header, else None.

    The first thing predecode() tries, for callers that want the parts without a Predecoded or Event.
    """
    found = BSD_LINE.match(line)
    if found is None:
        return None
    timestamp, host, program, pid, message = found.groups(default="")
    if message.startswith("[ID "):
        message = strip_solaris_id(message)
    return timestamp, host, program, pid, message


def strip_solaris_id(message: str) -> str:
    """``message`` without a leading ``[ID 702911 auth.notice] `` (the caller saw it starts with "[ID ")."""
    return message[_skip_solaris_id(message, 0) :]


def predecode_event(line: str, location: str) -> Event:
    """``Event.from_predecoded(predecode(line), line, location)`` without the intermediate object."""
    fast = _BSD_FAST.match(line)
    if fast is None:
        return Event.from_predecoded(predecode(line), line, location)
    at = fast.end()
    if line.startswith("[ID ", at):
        at = _skip_solaris_id(line, at)
    timestamp, host, program, _pid = fast.groups()
    # Positional: full_log, location, log, program_name, timestamp, hostname, hostname_in_alert.
    return Event(line, location, line[at:], program, timestamp, host, True)


def _from_fast(line: str, fast: re.Match[str]) -> Predecoded:
    at = fast.end()
    if line.startswith("[ID ", at):
        at = _skip_solaris_id(line, at)
    timestamp, host, program, pid = fast.groups()
    # Positional: this is the hot path (log, program_name, timestamp, hostname, in_alert, pid).
    return Predecoded(line[at:], program, timestamp, host, True, pid or "")


def _general(s: str) -> Predecoded:
    """Wazuh's header checks in Wazuh's order, for everything the fast path did not take."""
    # Wazuh repairs "Mär" to "Mar" to recognise the date, but keeps counting bytes of the original,
    # where "ä" takes two: the timestamp ends and the message starts one character early.
    shift = 1 if len(s) > 2 and s[1] == "\u00e4" else 0
    work = s[0] + "a" + s[2:] if shift else s

    stamp = _syslog_family(work)
    if stamp is not None:
        ts_end, log_at = stamp
        return _after_timestamp(s, s[: ts_end - shift], log_at - shift, in_alert=bool(_CLASSIC_BSD.match(s)))

    n = len(work)
    if (
        n >= 28
        and work[3] == " "
        and work[7] == " "
        and work[10] == " "
        and work[13] == ":"
        and work[16] == ":"
        and work[19] == " "
        and work[24] == " "
        and work[26] == " "
    ):  # xferlog
        return Predecoded(log=s[25 - shift :], timestamp=s[: 24 - shift])
    if (
        n >= 24
        and work[2] == "/"
        and work[5] == "-"
        and work[8] == ":"
        and work[11] == ":"
        and work[14] == "."
        and work[21] == " "
    ):  # snort: Wazuh skips two characters after the timestamp ("  [**]")
        return Predecoded(log=s[23 - shift :], timestamp=s[: 21 - shift])
    if (
        n >= 27
        and work[2] == "/"
        and work[5] == "/"
        and work[10] == "-"
        and work[13] == ":"
        and work[16] == ":"
        and work[19] == "."
        and work[26] == " "
    ):  # suricata
        return Predecoded(log=s[28 - shift :], timestamp=s[: 26 - shift])
    if (
        n >= 27
        and work[0] == "["
        and work[4] == " "
        and work[8] == " "
        and work[11] == " "
        and work[14] == ":"
        and work[17] == ":"
        and work[20] == " "
        and work[25] == "]"
    ):  # apache
        return Predecoded(log=s[27 - shift :], timestamp=s[1 : 25 - shift])
    if (
        n >= 26
        and work[0] == "["
        and work[1] == "T"
        and work[5] == " "
        and work[10] == "."
        and work[13] == "."
        and work[16] == " "
        and work[19] == ":"
    ):
        return _asl(s)
    if (
        n >= 32
        and work[0] == "1"
        and _is_digit(work[1])
        and _is_digit(work[2])
        and _is_digit(work[3])
        and work[10] == "."
        and _is_digit(work[13])
        and work[14] == " "
        and (work[21] == " " or work[22] == " ")
    ):  # squid epoch
        at = 14
        while at < len(s) and s[at] == " ":
            at += 1
        return Predecoded(log=s[at:], timestamp=s[: at - 1])
    return Predecoded(log=s)


def _syslog_family(s: str) -> tuple[int, int] | None:
    """(end of timestamp, start of what follows) for the headers after which host and program come."""
    n = len(s)
    if n >= 17 and s[3] == " " and s[6] == " " and s[9] == ":" and s[12] == ":" and s[15] == " ":
        return 15, 16
    if n < 20 or not _is_digit(s[0]):
        return None
    for pattern in (_PROFTPD, _ISO, _YEAR_FIRST, _ULS):
        found = pattern.match(s)
        if found is not None:
            return found.end() - 1, found.end()
    return None


def _after_timestamp(s: str, timestamp: str, at: int, in_alert: bool) -> Predecoded:
    if s.startswith(" ", at):
        at += 1  # Wazuh tolerates one extra space after the timestamp
    host_end = _run_end(_NAME_RUN, s, at)
    after = s[host_end : host_end + 2]
    if after == ": ":
        # Solaris: no hostname, the name is the program.
        log_at = _skip_solaris_id(s, host_end + 2) if s.startswith("[ID ", host_end + 2) else host_end + 2
        return Predecoded(
            log=s[log_at:], program_name=s[at:host_end], timestamp=timestamp, hostname_in_alert=in_alert
        )
    if not after.startswith(" "):
        # Not a hostname.
        return Predecoded(log=s[at:], timestamp=timestamp, hostname_in_alert=in_alert)
    host = s[at:host_end]
    prog_at = host_end + 1
    found = _program(s, prog_at)
    if found is None:
        return Predecoded(log=s[prog_at:], timestamp=timestamp, hostname=host, hostname_in_alert=in_alert)
    program, pid, log_at = found
    if s.startswith("[ID ", log_at):
        log_at = _skip_solaris_id(s, log_at)
    return Predecoded(
        log=s[log_at:],
        program_name=program,
        timestamp=timestamp,
        hostname=host,
        hostname_in_alert=in_alert,
        pid=pid,
    )


def _program(s: str, at: int) -> tuple[str, str, int] | None:
    """(program, pid, message start) for the program forms after a hostname, or None."""
    end = _run_end(_NAME_RUN, s, at)
    name = s[at:end]
    nxt = s[end : end + 1]
    if nxt == ":":
        return name, "", end + 1 + (s[end + 1 : end + 2] == " ")
    if nxt == "[" and _is_digit(s[end + 1 : end + 2]):
        digits_end = _run_end(_DIGIT_RUN, s, end + 1)
        pid = s[end + 1 : digits_end]
        closing = s[digits_end : digits_end + 2]
        if closing == "]:":
            return name, pid, digits_end + 2 + (s[digits_end + 2 : digits_end + 3] == " ")
        if closing == "] ":
            return name, pid, digits_end + 2
        return None
    if nxt == "|" and "a" <= s[end + 1 : end + 2] <= "z":
        return _aix_program(s, at, end + 2)
    return None


def _aix_program(s: str, field_at: int, at: int) -> tuple[str, str, int] | None:
    """``auth|security:info prog:`` (AIX); ``field_at`` is where that field starts."""
    at = _run_end(_ALNUM_RUN, s, at)
    if s[at : at + 1] != ":":
        return None
    at = _run_end(_ALNUM_RUN, s, at + 1)
    if s[at : at + 1] != " ":
        return None
    start = at + 1
    end = _run_end(_NAME_RUN, s, start)
    name = s[start:end]
    if s[end : end + 2] == ": ":
        return name, "", end + 2
    if s[end : end + 1] == "[" and _is_digit(s[end + 1 : end + 2]):
        digits_end = _run_end(_DIGIT_RUN, s, end + 1)
        if s[digits_end : digits_end + 3] == "]: ":
            return name, s[end + 1 : digits_end], digits_end + 3
        # Wazuh keeps the program name but leaves the message at the start of the AIX field.
        return name, s[end + 1 : digits_end], field_at
    # Wazuh's program name here runs to the end of the line (it is never terminated); we keep the name.
    return name, "", end


def _run_end(run: re.Pattern[str], s: str, at: int) -> int:
    found = run.match(s, at)
    return found.end() if found is not None else at


def _skip_solaris_id(s: str, at: int) -> int:
    """Skip ``[ID 702911 auth.notice] ``; ``at`` points at the ``[``."""
    close = s.find("]", at + 4)
    return at if close < 0 else min(close + 2, len(s))


def _asl(s: str) -> Predecoded:
    """macOS ASL ``[Time ...] [Sender p] [PID n] [Message m] [Host h]`` (Wazuh: no timestamp)."""
    program = ""
    hostname = ""
    log_start, log_end = 25, len(s)
    seen_sender = seen_message = False
    # Wazuh walks every '['; only these three entries do anything, so let the regex skip the rest.
    entry = _ASL_ENTRY.search(s, 25)
    while entry is not None:
        kind = entry.group(1)
        value_at = entry.end()
        close = s.find("]", value_at)
        if kind == "Host ":
            if close >= 0:
                hostname = s[value_at:close]
            break
        if kind == "Sender " and not seen_sender:
            if close < 0:
                break
            seen_sender = True
            program = s[value_at:close]
            entry = _ASL_ENTRY.search(s, close + 1)
        elif kind == "Message " and not seen_message:
            # Only the first Message entry counts, so a message cannot fake another one.
            seen_message = True
            log_start = value_at
            if close < 0:
                break
            log_end = close
            entry = _ASL_ENTRY.search(s, close + 1)
        else:
            entry = _ASL_ENTRY.search(s, entry.start() + 1)
    return Predecoded(log=s[log_start:log_end], program_name=program, hostname=hostname)


def _rfc5424(s: str) -> Predecoded | None:
    """``1 TIMESTAMP HOST APP PROCID MSGID SD [MSG]`` after the PRI, or None if it is not one."""
    head = _RFC5424.match(s)
    if head is None:
        return None
    at = head.end()
    if s.startswith("-", at):
        at += 1
    elif s.startswith("[", at):
        while s.startswith("[", at):
            close = _sd_element_end(s, at)
            if close < 0:
                return None
            at = close + 1
    else:
        return None
    if at < len(s):
        if s[at] != " ":
            return None
        at += 1
    message = s[at:]
    if message.startswith("\ufeff"):
        message = message[1:]

    def nil(value: str) -> str:
        return "" if value == "-" else value

    return Predecoded(
        log=message,
        program_name=nil(head.group(3)),
        timestamp=nil(head.group(1)),
        hostname=nil(head.group(2)),
        pid=nil(head.group(4)),
    )


def _sd_element_end(s: str, at: int) -> int:
    """Index of the ``]`` closing the structured-data element at ``at``, or -1."""
    found = _SD_ELEMENT.match(s, at)
    return -1 if found is None else found.end() - 1


def _is_digit(ch: str) -> bool:
    return len(ch) == 1 and "0" <= ch <= "9"


# --------------------------------------------------------------------------------------------------
# journald


def predecode_journald(record: Mapping[str, Any]) -> tuple[str, Predecoded]:
    """A ``journalctl -o json`` record -> (full_log, Predecoded), as if rsyslog had written the line.

    The line is ``Mmm dd hh:mm:ss HOST PROG[PID]: MESSAGE`` with the local time of
    ``__REALTIME_TIMESTAMP``, ``_HOSTNAME``, ``SYSLOG_IDENTIFIER`` (else ``_COMM``) and ``SYSLOG_PID``
    (else ``_PID``). Control characters in the message are written as ``#ooo`` like rsyslog does.
    """
    message = _journal_text(record, "MESSAGE")
    if message is None:
        raise ValueError("journald record has no MESSAGE field")
    stamp = _journal_text(record, "__REALTIME_TIMESTAMP") or _journal_text(
        record, "_SOURCE_REALTIME_TIMESTAMP"
    )
    if stamp is None:
        raise ValueError("journald record has no __REALTIME_TIMESTAMP field")
    try:
        micros = int(stamp)
    except ValueError:
        raise ValueError(f"journald __REALTIME_TIMESTAMP is not a number: {stamp!r}") from None
    local = time.localtime(micros // 1_000_000)
    clock = f"{local.tm_hour:02d}:{local.tm_min:02d}:{local.tm_sec:02d}"
    when = f"{_MONTHS[local.tm_mon - 1]} {local.tm_mday:2d} {clock}"
    host = _journal_text(record, "_HOSTNAME") or "localhost"
    program = _journal_text(record, "SYSLOG_IDENTIFIER") or _journal_text(record, "_COMM") or "journal"
    pid = _journal_text(record, "SYSLOG_PID") or _journal_text(record, "_PID")
    tag = f"{program}[{pid}]:" if pid else f"{program}:"
    full_log = f"{when} {host} {tag} {_escape_controls(message)}"
    return full_log, predecode(full_log)


def _journal_text(record: Mapping[str, Any], key: str) -> str | None:
    """A journal field as text: journalctl writes non-UTF-8 values as byte lists, repeats as lists."""
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, list):
        if value and all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255 for b in value):
            return bytes(value).decode("utf-8", errors="replace")
        for item in value:  # a field given several times: rsyslog uses the first
            text = _journal_text({key: item}, key)
            if text is not None:
                return text
        return "" if not value else None
    return None


_CONTROL: Final = re.compile(r"[\x00-\x1f]")


def _escape_controls(text: str) -> str:
    return _CONTROL.sub(lambda m: f"#{ord(m.group(0)):03o}", text)
