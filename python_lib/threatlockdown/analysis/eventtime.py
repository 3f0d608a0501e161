"""Event time from a log header's timestamp text, for replaying old logs (tld analyze).

Live analysis uses the wall clock, as Wazuh does; a replay must use the time the line was written or
every frequency rule would see the whole file inside one timeframe.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

from ..ruleset.event import Event

_MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}

_SECONDS = {f"{second:02d}": second for second in range(60)}


@dataclass(slots=True)
class ReplayClock:
    """Turns header timestamps into epoch seconds; keeps the last good one for lines without."""

    year: int = field(default_factory=lambda: time.localtime().tm_year)
    last: float = field(default_factory=time.time)
    _cache_key: str = ""
    _cache_val: float = 0.0
    _day_key: str = ""
    _day_val: float = 0.0
    # The first 13 characters of the last parsed ``Mmm dd hh:mm:ss`` stamp and its time at second 0:
    # a stamp of the same minute differs only in its two-digit seconds (most lines of a busy log).
    _minute_key: str = "\0" * 16  # longer than any stamp it is compared with: matches none
    _minute_val: float = 0.0

    def __call__(self, event: Event) -> float:
        """The time of ``event`` (a session clock): time_of its header timestamp."""
        stamp = event.timestamp
        if stamp == self._cache_key and stamp:
            return self._cache_val  # the same second as the line before: no call
        return self.time_of(stamp)

    def time_of(self, stamp: str) -> float:
        if not stamp:
            return self.last
        if stamp == self._cache_key:
            return self._cache_val
        if stamp.startswith(self._minute_key):
            # One lookup for seconds 00-59 (a longer stamp has no key); 60-99 as before it.
            second = _SECONDS.get(stamp[13:])
            if second is None and len(stamp) == 15 and stamp[13:].isascii() and stamp[13:].isdigit():
                second = int(stamp[13:])
            if second is not None:
                value = self._minute_val + second
                self._cache_key, self._cache_val, self.last = stamp, value, value
                return value
        parsed = self._parse(stamp)
        if parsed is None:
            return self.last
        self._cache_key, self._cache_val, self.last = stamp, parsed, parsed
        return parsed

    def _parse(self, stamp: str) -> float | None:
        parts = stamp.split()
        try:
            if len(parts) == 3 and parts[0][:3].lower() in _MONTHS:  # Mmm dd hh:mm:ss
                h, m, s = (int(x) for x in parts[2].split(":"))
                day = f"{parts[0]} {parts[1]}"
                if day != self._day_key:
                    # mktime is slow: one call per day of log, then plain arithmetic.
                    month = _MONTHS[parts[0][:3].lower()]
                    self._day_val = time.mktime((self.year, month, int(parts[1]), 0, 0, 0, 0, 0, -1))
                    self._day_key = day
                minute = self._day_val + h * 3600 + m * 60
                tail = stamp[13:]
                if len(stamp) == 15 and parts[2].endswith(":" + tail) and tail.isascii() and tail.isdigit():
                    # Same sum, same order as below: the fast path in time_of gives identical floats.
                    self._minute_key, self._minute_val = stamp[:13], minute
                return minute + s
            if len(parts) == 4 and parts[0].isdigit() and parts[1][:3].lower() in _MONTHS:
                h, m, s = (int(x) for x in parts[3].split(":"))
                return time.mktime(
                    (int(parts[0]), _MONTHS[parts[1][:3].lower()], int(parts[2]), h, m, s, 0, 0, -1)
                )
            text = stamp.replace(",", ".")
            dt = datetime.fromisoformat(text)
            return dt.timestamp()
        except (ValueError, OverflowError):
            return None
