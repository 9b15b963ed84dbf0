"""When a subscription's digests fall due: times, frequencies, weekdays, time zones, slots.

Pure: nothing here reads the clock, the state or the network; the time is always passed in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAY_WORDS = {
    **{w: i for i, w in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))},
    **{w: i for i, w in enumerate(("monday", "tuesday", "wednesday", "thursday", "friday",
                                   "saturday", "sunday"))},
    **{w: i for i, w in enumerate(("lun", "mar", "mer", "gio", "ven", "sab", "dom"))},
    **{w: i for i, w in enumerate(("lunedi", "martedi", "mercoledi", "giovedi", "venerdi",
                                   "sabato", "domenica"))},
    **{w: i for i, w in enumerate(("lunedì", "martedì", "mercoledì", "giovedì", "venerdì"))},
}
FREQUENCIES = {
    "daily": "daily", "day": "daily", "giornaliera": "daily", "quotidiana": "daily",
    "weekly": "weekly", "week": "weekly", "settimanale": "weekly",
}
_TIME = re.compile(r"^([01]?\d|2[0-3])[:.]([0-5]\d)$")
_TIME_LIKE = (re.compile(r"\d{1,2}[:.]\d{1,2}"), re.compile(r"\d{1,2}:\d*"))


def parse_time(word: str) -> str | None:
    """``7:05`` or ``07.05`` → ``"07:05"``; None for anything that is not a time of day."""
    m = _TIME.match(word)
    return f"{int(m.group(1)):02d}:{m.group(2)}" if m else None


def looks_like_time(word: str) -> bool:
    """``25:00``, ``8:7``: meant as a time (so an error, not a topic word)."""
    return any(p.fullmatch(word) for p in _TIME_LIKE)


def zone_name(name: str) -> str:
    """The IANA zone ``name`` as stored (``utc`` → ``UTC``); ValueError when unknown."""
    name = "UTC" if name.lower() == "utc" else name
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc
    return name


@dataclass(slots=True)
class Subscription:
    chat_id: int
    chat_type: str
    title: str
    at: str  # "HH:MM", local to tz
    frequency: str  # daily | weekly
    weekday: int  # 0 = Monday; weekly only
    tz: str
    topic: str | None
    lang: str
    send_empty: bool
    created_by: int | None = None
    created_at: datetime | None = None
    last_slot: datetime | None = None  # the last slot planned (or found empty)
    watermark: datetime | None = None  # end of the period the last complete digest covered
    last_sent: datetime | None = None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    @property
    def period(self) -> timedelta:
        return timedelta(days=7 if self.frequency == "weekly" else 1)

    def latest_slot(self, now: datetime) -> datetime:
        """The last scheduled moment at or before ``now`` (UTC).

        Computed on the wall clock of the subscription's zone, so 08:00 stays 08:00 across a
        daylight-saving change.
        """
        zone = self.zone
        local = now.astimezone(zone)
        hh, mm = (int(x) for x in self.at.split(":"))
        cand = datetime.combine(local.date(), time(hh, mm), tzinfo=zone)
        if self.frequency == "weekly":
            cand -= timedelta(days=(local.weekday() - self.weekday) % 7)
            if cand > local:
                cand -= timedelta(days=7)
        elif cand > local:
            cand -= timedelta(days=1)
        return cand.astimezone(UTC)

    def next_slot(self, now: datetime) -> datetime:
        latest = self.latest_slot(now).astimezone(self.zone)
        return (latest + self.period).astimezone(UTC)

    def due_slot(self, now: datetime) -> datetime | None:
        slot = self.latest_slot(now)
        if self.last_slot is None or slot > self.last_slot:
            return slot
        return None


    @property
    def name(self) -> str:
        """What the admins and the lists call the chat."""
        return self.title or str(self.chat_id)
