"""When an alert may go out: quiet hours and the per-chat hourly cap. Pure: the time is
always passed in."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo

_SPEC = re.compile(r"^\s*(\d{1,2})(?::(\d{2}))?\s*-\s*(\d{1,2})(?::(\d{2}))?\s*$")
HOUR = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class QuietHours:
    start: time
    end: time

    def end_after(self, now: datetime, tz: tzinfo) -> datetime | None:
        """The end of the quiet period ``now`` falls in (UTC), or None when it is not quiet."""
        local = now.astimezone(tz)
        day = local.date()
        for offset in (-1, 0):
            begin = datetime.combine(day + timedelta(days=offset), self.start, tzinfo=tz)
            end_day = begin.date() + timedelta(days=1 if self.end <= self.start else 0)
            finish = datetime.combine(end_day, self.end, tzinfo=tz)
            if begin <= local < finish:
                return finish.astimezone(UTC)
        return None


def parse_quiet_hours(spec: str) -> QuietHours:
    """``23-7`` or ``22:30-06:45`` (across midnight or not); ValueError naming the value."""
    m = _SPEC.match(spec)
    if not m:
        raise ValueError(f"ALERT_QUIET_HOURS must look like 23-7 or 22:30-06:45, not {spec!r}")
    h1, m1, h2, m2 = int(m[1]), int(m[2] or 0), int(m[3]), int(m[4] or 0)
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise ValueError(f"ALERT_QUIET_HOURS: {spec!r} is not a pair of times of day")
    if (h1, m1) == (h2, m2):
        raise ValueError(f"ALERT_QUIET_HOURS: {spec!r} starts and ends at the same time")
    return QuietHours(time(h1, m1), time(h2, m2))


def cap_room(recent: Sequence[datetime], now: datetime, per_hour: int) -> tuple[int, datetime]:
    """How many more alerts the chat may get now, and when the next slot frees up.

    ``recent`` are the moments of the chat's alerts (planned or sent) of the last hour.
    ``per_hour`` 0 means no cap.
    """
    if per_hour <= 0:
        return 1 << 30, now
    window = sorted(t for t in recent if t > now - HOUR)
    room = max(0, per_hour - len(window))
    frees = window[len(window) - per_hour] + HOUR if len(window) >= per_hour else now
    return room, frees
