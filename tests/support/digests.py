"""The digest tests' corpus, clock and settings: three days of labelled current-events items."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.support.bot import SAMPLE_DIR

DIGEST_DAYS = ("2025-12-01", "2025-12-02", "2025-12-03")
DIGEST_ADMIN_ID = 515151
# The Pokrovsk report copied word for word by another outlet, and the MH370 report (long
# enough for MinHash) lightly rewritten by another: the indexer links them as exact and near
# duplicates.
DIGEST_EXACT_OF = "ce-2025-12-01-01585"
DIGEST_NEAR_OF = "ce-2025-12-03-01633"


def digest_articles() -> list[dict[str, Any]]:
    """Three days of labelled current-events items, with times of day, two copies and a
    hostile article (markup and entities in every field)."""
    path = SAMPLE_DIR / "current-events-2025q4.jsonl"
    keep = ("id", "title", "text", "url", "source", "lang", "story")
    rows: list[dict[str, Any]] = []
    per_day: dict[str, int] = {}
    for line in path.open(encoding="utf-8"):
        row = json.loads(line)
        day = row["published"]
        if day not in DIGEST_DAYS:
            continue
        k = per_day.get(day, 0)
        per_day[day] = k + 1
        when = datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(
            hours=6, minutes=20 * k
        )
        rows.append({key: row.get(key) for key in keep} | {"published": when.isoformat()})
    by_id = {r["id"]: r for r in rows}
    exact = dict(by_id[DIGEST_EXACT_OF])
    exact.update(id="copy-exact-pokrovsk", source="Kyiv Independent",
                 url="https://kyivindependent.com/pokrovsk-captured")
    near = dict(by_id[DIGEST_NEAR_OF])
    near.update(
        id="copy-near-mh370", source="The Star", url="https://www.thestar.com.my/news/mh370",
        text=near["text"].replace("with the government", "with the Malaysian government"),
    )
    hostile = {
        "id": "hostile-digest", "title": "<b>Zebra</b> & <script>alert(1)</script> crossings",
        "text": ("Officials said <i>zebra</i> crossings & 'striped' roads < > save lives in "
                 "Brescia & Bergamo, a claim disputed by <b>motorists</b>. " * 3).strip(),
        "url": "javascript:alert(1)", "source": "The <Daily> & Co", "lang": "en",
        "published": "2025-12-02T09:00:00+00:00", "story": None,
    }
    return [*rows, exact, near, hostile]


class DigestClock:
    """A clock tests move by hand. ``sleep`` advances it at once (``auto=True``) or waits
    until the test advances it past the wake-up time (``auto=False``); every sleep is
    recorded."""

    def __init__(self, now: datetime, *, auto: bool = True) -> None:
        self._now = now
        self.auto = auto
        self.slept: list[float] = []
        self.parked = 0  # sleeps now waiting for the test to move the clock
        self._moved = asyncio.Event()

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when
        self._moved.set()
        self._moved = asyncio.Event()

    def advance(self, **delta: float) -> None:
        self.set(self._now + timedelta(**delta))

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        wake = self._now + timedelta(seconds=seconds)
        if self.auto:
            self._now = max(self._now, wake)
            await asyncio.sleep(0)
            return
        self.parked += 1
        try:
            while self._now < wake:
                await self._moved.wait()
        finally:
            self.parked -= 1


def digest_settings(data_dir: Path, state_file: Path, **overrides: Any) -> Any:
    from bot.settings import BotSettings

    values: dict[str, Any] = {
        "data_dir": data_dir, "embedding_model": "minilm", "bot_state_file": state_file,
        "admin_ids": [DIGEST_ADMIN_ID], "timezone": "Europe/Rome", "sources": {},
        "digest_max_stories": 8, "digest_default_time": "08:00",
    }
    values.update(overrides)
    return BotSettings(_env_file=None, **values)
