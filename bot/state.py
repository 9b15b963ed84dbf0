"""The bot's own SQLite: the question log (with latency), feedback, and "More" pages.

Kept apart from the index store on purpose: the index can be rebuilt or replaced (``newsbot
index``, ``/reindex``) without losing what users asked and voted, and the bot's frequent
small writes never contend with the indexer's single writer.

Page ids are short random strings because they travel in ``callback_data`` (≤ 64 bytes) and
must not be guessable from a chat or message id.

Writes on the answering path (the page and the question log, two per question) are queued
and written in one batch every fraction of a second: under load that saves two round trips
to SQLite's thread per question. Every read flushes the queue first, so a "More" pressed a
millisecond after the answer still finds its page; a crash loses at most one batch of log
rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiosqlite

from bot.migrations import BOT_MIGRATIONS
from index.storage.sqlite import connect_sqlite, migrate

log = logging.getLogger(__name__)

PAGE_TTL_DAYS = 30
FLUSH_SECONDS = 0.2
_INSERT_QUESTION = (
    "INSERT INTO questions(ts, day, user_id, chat_id, chat_type, kind, lang, question, hits,"
    " latency_ms) VALUES(?,?,?,?,?,?,?,?,?,?)"
)
_INSERT_PAGE = (
    "INSERT INTO pages(id, ts, chat_id, user_id, lang, question, start, k, hit_ids)"
    " VALUES(?,?,?,?,?,?,?,?,?)"
)


@dataclass(slots=True)
class Page:
    """One answer message: enough to fetch the next passages and to file feedback on it."""

    id: str
    chat_id: int | None
    user_id: int | None
    lang: str
    question: str
    start: int  # offset of this page's first hit
    k: int
    hit_ids: list[str]
    followed: bool = False

    @property
    def next_offset(self) -> int:
        return self.start + self.k


@dataclass(slots=True)
class QuestionLog:
    user_id: int | None
    chat_id: int | None
    chat_type: str | None
    kind: str  # message | more | inline
    lang: str
    question: str
    hits: int
    latency_ms: float


def new_page_id() -> str:
    return secrets.token_urlsafe(8)  # 11 characters, 64 random bits


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile: a latency somebody actually saw, not an interpolation."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


class BotState:
    def __init__(self, db: aiosqlite.Connection, tz: ZoneInfo) -> None:
        self.db = db
        self.tz = tz
        self._questions: list[tuple[Any, ...]] = []
        self._pages: list[tuple[Any, ...]] = []
        self._flush_lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, path: Path, tz: ZoneInfo) -> BotState:
        db = await connect_sqlite(path)
        try:
            await migrate(db, BOT_MIGRATIONS, label=str(path))
        except BaseException:
            await db.close()
            raise
        await db.execute(
            "DELETE FROM pages WHERE ts < ?", (time.time() - PAGE_TTL_DAYS * 86400,)
        )
        state = cls(db, tz)
        state._flusher = asyncio.create_task(state._flush_periodically(), name="bot-state-flush")
        return state

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()
        await self.db.close()

    async def flush(self) -> None:
        """Write the queued pages and question log rows (pages first: buttons refer to them)."""
        if not (self._pages or self._questions):
            return
        async with self._flush_lock:
            pages, self._pages = self._pages, []
            questions, self._questions = self._questions, []
            if pages:
                await self.db.executemany(_INSERT_PAGE, pages)
            if questions:
                await self.db.executemany(_INSERT_QUESTION, questions)

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            try:
                await self.flush()
            except Exception:  # noqa: BLE001 - logged; the bot keeps answering
                log.exception("could not write the bot state")

    def today(self) -> date:
        return datetime.now(self.tz).date()

    # -- questions ----------------------------------------------------------------------------

    async def log_question(self, q: QuestionLog) -> None:
        now = time.time()
        day = datetime.fromtimestamp(now, self.tz).date().isoformat()
        self._questions.append(
            (now, day, q.user_id, q.chat_id, q.chat_type, q.kind, q.lang, q.question, q.hits,
             round(q.latency_ms, 2))
        )

    async def last_question_lang(self, user_id: int) -> str | None:
        """The language of the user's last logged question, if any."""
        rows = list(await self.db.execute_fetchall(
            "SELECT lang FROM questions WHERE user_id=? ORDER BY rowid DESC LIMIT 1", (user_id,)
        ))  # fmt: skip
        return rows[0][0] if rows else None

    # -- pages --------------------------------------------------------------------------------

    async def save_page(self, page: Page) -> None:
        self._pages.append(
            (page.id, time.time(), page.chat_id, page.user_id, page.lang, page.question,
             page.start, page.k, json.dumps(page.hit_ids))
        )

    async def page(self, page_id: str) -> Page | None:
        await self.flush()
        async with self.db.execute(
            "SELECT id, chat_id, user_id, lang, question, start, k, hit_ids, followed"
            " FROM pages WHERE id=?", (page_id,)
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        return Page(
            row["id"], row["chat_id"], row["user_id"], row["lang"], row["question"],
            row["start"], row["k"], json.loads(row["hit_ids"]), bool(row["followed"]),
        )

    async def claim_next_page(self, page_id: str) -> bool:
        """True for exactly one caller per page: two quick presses of "More" page once."""
        await self.flush()
        cur = await self.db.execute(
            "UPDATE pages SET followed=1 WHERE id=? AND followed=0", (page_id,)
        )
        return cur.rowcount == 1

    async def release_page(self, page_id: str) -> None:
        """Undo :meth:`claim_next_page` when the next page could not be sent."""
        await self.db.execute("UPDATE pages SET followed=0 WHERE id=?", (page_id,))

    # -- feedback -----------------------------------------------------------------------------

    async def record_feedback(self, page: Page, user_id: int, vote: int) -> None:
        """One vote per user and answer; voting again replaces the earlier vote."""
        await self.flush()
        await self.db.execute(
            "INSERT INTO feedback(page_id, user_id, vote, question, hit_ids, ts)"
            " VALUES(?,?,?,?,?,?) ON CONFLICT(page_id, user_id) DO UPDATE SET"
            " vote=excluded.vote, ts=excluded.ts",
            (page.id, user_id, 1 if vote > 0 else -1, page.question, json.dumps(page.hit_ids),
             time.time()),
        )

    async def feedback(self, page_id: str) -> list[tuple[int, int]]:
        async with self.db.execute(
            "SELECT user_id, vote FROM feedback WHERE page_id=?", (page_id,)
        ) as cur:
            return [(r[0], r[1]) for r in await cur.fetchall()]

    # -- stats --------------------------------------------------------------------------------

    async def stats(self) -> dict[str, Any]:
        await self.flush()
        day = self.today().isoformat()
        async with self.db.execute(
            "SELECT latency_ms FROM questions WHERE day=? AND kind != 'inline'", (day,)
        ) as cur:
            latencies = [r[0] for r in await cur.fetchall()]
        async with self.db.execute("SELECT count(*) FROM questions WHERE day=?", (day,)) as cur:
            row = await cur.fetchone()
            today = int(row[0]) if row else 0
        async with self.db.execute(
            "SELECT sum(vote > 0), sum(vote < 0) FROM feedback"
        ) as cur:
            row = await cur.fetchone()
        up, down = (int(row[0] or 0), int(row[1] or 0)) if row else (0, 0)
        return {
            "questions_today": today,
            "up": up,
            "down": down,
            "p50_ms": percentile(latencies, 50),
            "p95_ms": percentile(latencies, 95),
        }
