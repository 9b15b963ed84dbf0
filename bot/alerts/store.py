"""The ``alert_*`` tables in the bot's state file: follows, the planned messages, what was seen.

Exactly once rests on one transaction per matched batch (:meth:`AlertStore.commit_batch`):
the messages it plans, the articles they cover, the articles it looked at and the index run
it got to are written together. A crash before that commit leaves nothing (the batch is
matched again at start-up); after it, the pending messages are sent at start-up and marked
one by one as Telegram accepts them.

The tables are migration ``m002_alerts`` of the bot state (:mod:`bot.migrations`). Like
:class:`bot.digests.store.DigestStore`
this store has a connection of its own on the bot's state file, for the same reason: its
``BEGIN IMMEDIATE … COMMIT`` spans must not take in another component's writes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from bot.locked_store import LockedStore, serialized

MEMORY_TTL = timedelta(days=7)  # a follow remembers the articles it alerted this long ...
MEMORY_SIZE = 20  # ... and at most this many, the newest (set, not tuned: bounds the cost)
SEEN_TTL = timedelta(days=30)  # articles looked at, and articles alerted, are kept this long
DONE_TTL = timedelta(days=7)  # sent message rows (the hourly cap reads the last hour)


# Removing follows forgets what they learned, in the same transaction.
FORGET_ORPHANS = ("DELETE FROM alert_follow_stories"
                  " WHERE follow_id NOT IN (SELECT id FROM alert_follows)")
WATERMARK = "run_watermark"  # the highest index run whose articles were all matched


def iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).isoformat() if dt is not None else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(slots=True)
class Follow:
    """A followed topic, with what matching needs computed once at /follow: the query's
    vector (for ``model_id``), its keyword groups and their rarity weights."""

    id: int
    chat_id: int
    chat_type: str
    title: str
    query: str  # as typed
    words: str  # the query without its filters
    sources: list[str]
    langs: list[str]
    lang: str
    model_id: str
    vector: np.ndarray
    terms: list[list[str]]
    weights: list[float]
    created_by: int | None = None
    created_at: datetime | None = None

    @property
    def name(self) -> str:
        return self.title or str(self.chat_id)


@dataclass(slots=True)
class Planned:
    """One story alert to send."""

    chat_id: int
    follow_id: int
    lang: str
    html: str
    article_ids: list[str]


@dataclass(slots=True)
class Held:
    """A story that waits in the chat's summary (quiet hours, or the hourly cap reached)."""

    chat_id: int
    follow_id: int
    lang: str
    line: str  # one HTML line of the summary
    article_ids: list[str]
    not_before: datetime


@dataclass(slots=True)
class OutMessage:
    id: int
    chat_id: int
    follow_id: int | None
    kind: str  # story | summary
    html: str
    state: str
    not_before: datetime | None
    attempts: int = 0
    retry_at: datetime | None = None
    article_ids: list[str] = field(default_factory=list)


SummaryRenderer = Callable[[list[str], str], str]  # (lines, lang) -> message HTML



_FOLLOW_COLS = (
    "id, chat_id, chat_type, title, query, words, sources, langs, lang, created_by, created_at,"
    " model_id, vector, terms, weights"
)


def _follow_row(r: sqlite3.Row) -> Follow:
    return Follow(
        id=r["id"], chat_id=r["chat_id"], chat_type=r["chat_type"], title=r["title"],
        query=r["query"], words=r["words"], sources=json.loads(r["sources"]),
        langs=json.loads(r["langs"]), lang=r["lang"], model_id=r["model_id"],
        vector=np.frombuffer(r["vector"], dtype=np.float32).copy(),
        terms=json.loads(r["terms"]), weights=json.loads(r["weights"]),
        created_by=r["created_by"], created_at=_dt(r["created_at"]),
    )


def _out_row(r: sqlite3.Row) -> OutMessage:
    return OutMessage(
        id=r["id"], chat_id=r["chat_id"], follow_id=r["follow_id"], kind=r["kind"],
        html=r["html"], state=r["state"], not_before=_dt(r["not_before"]),
        attempts=r["attempts"], retry_at=_dt(r["retry_at"]),
        article_ids=json.loads(r["article_ids"]),
    )


class AlertStore(LockedStore):
    """The ``alert_*`` tables; each method holds the lock for its whole body (one
    connection, one transaction at a time), as :class:`~bot.digests.store.DigestStore`."""

    # -- follows ----------------------------------------------------------------------------

    @serialized
    async def add_follow(self, f: Follow) -> int:
        cur = await self.db.execute(
            f"INSERT INTO alert_follows({_FOLLOW_COLS}) VALUES(NULL,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                f.chat_id, f.chat_type, f.title, f.query, f.words, json.dumps(f.sources),
                json.dumps(f.langs), f.lang, f.created_by, iso(f.created_at), f.model_id,
                np.asarray(f.vector, dtype=np.float32).tobytes(), json.dumps(f.terms),
                json.dumps(f.weights),
            ),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    @serialized
    async def follows(self, chat_id: int | None = None) -> list[Follow]:
        """A chat's follows (all follows when None), oldest first: /following's numbers."""
        sql = f"SELECT {_FOLLOW_COLS} FROM alert_follows"
        args: tuple[Any, ...] = ()
        if chat_id is not None:
            sql += " WHERE chat_id=?"
            args = (chat_id,)
        async with self.db.execute(sql + " ORDER BY id", args) as cur:
            return [_follow_row(r) for r in await cur.fetchall()]

    @serialized
    async def update_encoding(
        self, follow_id: int, model_id: str, vector: np.ndarray, weights: list[float]
    ) -> None:
        """A follow encoded again (the index's model changed)."""
        await self.db.execute(
            "UPDATE alert_follows SET model_id=?, vector=?, weights=? WHERE id=?",
            (model_id, np.asarray(vector, dtype=np.float32).tobytes(), json.dumps(weights),
             follow_id),
        )

    @serialized
    async def remove_follows(self, follow_ids: Sequence[int]) -> int:
        """Unfollow: their unsent alerts are dropped in the same transaction."""
        if not follow_ids:
            return 0
        q = ",".join("?" * len(follow_ids))
        async with self._tx():
            cur = await self.db.execute(
                f"DELETE FROM alert_follows WHERE id IN ({q})", tuple(follow_ids)
            )
            await self.db.execute(
                f"UPDATE alert_messages SET state='dropped' WHERE state='pending'"
                f" AND follow_id IN ({q})", tuple(follow_ids),
            )
            await self.db.execute(FORGET_ORPHANS)
        return cur.rowcount

    @serialized
    async def forget_user(self, user_id: int) -> int:
        """/forgetme: the follows of the user's private chat (its id is the user's), with its
        alerts; as the creator of a group's follow the user becomes anonymous."""
        total = 0
        async with self._tx():
            for sql in (
                "DELETE FROM alert_messages WHERE chat_id=?",
                "DELETE FROM alert_sent_articles WHERE chat_id=?",
                "DELETE FROM alert_follows WHERE chat_id=?",
                "UPDATE alert_follows SET created_by=NULL WHERE created_by=?",
            ):
                cur = await self.db.execute(sql, (user_id,))
                total += max(0, cur.rowcount)
            await self.db.execute(FORGET_ORPHANS)
        return total

    @serialized
    async def remove_chat(self, chat_id: int) -> int:
        """The chat is gone (403, the bot removed): every follow and unsent alert of it."""
        async with self._tx():
            cur = await self.db.execute("DELETE FROM alert_follows WHERE chat_id=?", (chat_id,))
            await self.db.execute(
                "UPDATE alert_messages SET state='dropped' WHERE state='pending' AND chat_id=?",
                (chat_id,),
            )
            await self.db.execute("DELETE FROM alert_sent_articles WHERE chat_id=?", (chat_id,))
            await self.db.execute(FORGET_ORPHANS)
        return cur.rowcount

    @serialized
    async def migrate(self, old: int, new: int) -> None:
        """A group became a supergroup: its follows and alerts move to the new id."""
        async with self._tx():
            for table in ("alert_follows", "alert_messages"):
                await self.db.execute(f"UPDATE {table} SET chat_id=? WHERE chat_id=?", (new, old))
            await self.db.execute(
                "UPDATE OR REPLACE alert_sent_articles SET chat_id=? WHERE chat_id=?", (new, old)
            )

    # -- matching ---------------------------------------------------------------------------

    @serialized
    async def watermark(self) -> int | None:
        async with self.db.execute(
            "SELECT value FROM alert_meta WHERE key=?", (WATERMARK,)
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else None

    @serialized
    async def set_watermark(self, run_id: int) -> None:
        await self.db.execute(
            "INSERT INTO alert_meta(key, value) VALUES(?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value=excluded.value", (WATERMARK, str(run_id)),
        )

    @serialized
    async def seen(self, article_ids: Sequence[str]) -> set[str]:
        return await self._in("SELECT article_id FROM alert_seen WHERE article_id IN ({q})",
                              article_ids)

    @serialized
    async def alerted(self, since: datetime) -> dict[int, list[str]]:
        """Per chat, the articles it was alerted about since ``since`` (newest first)."""
        out: dict[int, list[str]] = {}
        async with self.db.execute(
            "SELECT chat_id, article_id FROM alert_sent_articles WHERE ts >= ?"
            " ORDER BY ts DESC", (iso(since),),
        ) as cur:
            for r in await cur.fetchall():
                out.setdefault(r[0], []).append(r[1])
        return out

    async def memory(self, since: datetime) -> dict[int, list[str]]:
        """Per follow, the articles it alerted since ``since`` (newest first, at most
        :data:`MEMORY_SIZE`): the stories it learned (:func:`bot.alerts.matching.story_scores`)."""
        return {f: [a for _, a in rows] for f, rows in (await self.memory_rows(since)).items()}

    @serialized
    async def memory_rows(self, since: datetime) -> dict[int, list[tuple[datetime, str]]]:
        """:meth:`memory` with when each article was learned."""
        out: dict[int, list[tuple[datetime, str]]] = {}
        async with self.db.execute(
            "SELECT follow_id, article_id, ts FROM alert_follow_stories WHERE ts >= ?"
            " ORDER BY ts DESC, article_id", (iso(since),),
        ) as cur:
            for r in await cur.fetchall():
                got = out.setdefault(r[0], [])
                if len(got) < MEMORY_SIZE and (ts := _dt(r[2])) is not None:
                    got.append((ts, r[1]))
        return out

    @serialized
    async def recent_alerts(self, since: datetime) -> dict[int, list[datetime]]:
        """Per chat, when its story alerts since ``since`` were planned (the hourly cap)."""
        out: dict[int, list[datetime]] = {}
        async with self.db.execute(
            "SELECT chat_id, created_at FROM alert_messages WHERE kind='story'"
            " AND state != 'dropped' AND created_at >= ?", (iso(since),),
        ) as cur:
            for r in await cur.fetchall():
                if (d := _dt(r[1])) is not None:
                    out.setdefault(r[0], []).append(d)
        return out

    async def _in(self, sql: str, ids: Sequence[str]) -> set[str]:
        out: set[str] = set()
        ids = list(ids)
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            async with self.db.execute(sql.format(q=",".join("?" * len(part))), part) as cur:
                out.update(r[0] for r in await cur.fetchall())
        return out

    @serialized
    async def commit_batch(
        self,
        planned: Sequence[Planned],
        held: Sequence[Held],
        seen: Sequence[str],
        watermark: int | None,
        now: datetime,
        render_summary: SummaryRenderer,
        learned: Sequence[tuple[int, str]] = (),
    ) -> list[int]:
        """Persist one matched batch at once; returns the new or grown message ids.

        A held story joins the chat's pending summary (one per chat, created when none
        waits), so quiet hours or a full hour end in one message, however many batches fed it.
        ``learned`` (follow id, article id) are the articles that passed a follow's gate: its
        memory keeps the newest :data:`MEMORY_SIZE` for :data:`MEMORY_TTL`.
        """
        touched: list[int] = []
        async with self._tx():
            async with self.db.execute("SELECT coalesce(max(id), 0) FROM alert_messages") as cur:
                row = await cur.fetchone()
            first = (row[0] if row else 0) + 1
            ids = list(range(first, first + len(planned)))
            # One statement for all rows (a batch may plan hundreds): ids given, not returned.
            await self.db.executemany(
                "INSERT INTO alert_messages(id, chat_id, follow_id, kind, lang, html, article_ids,"
                " created_at) VALUES(?,?,?, 'story', ?,?,?,?)",
                [(i, p.chat_id, p.follow_id, p.lang, p.html, json.dumps(p.article_ids), iso(now))
                 for i, p in zip(ids, planned, strict=True)],
            )
            await self.db.executemany(
                "INSERT OR REPLACE INTO alert_sent_articles(chat_id, article_id, message_id, ts)"
                " VALUES(?,?,?,?)",
                [(p.chat_id, a, i, iso(now)) for i, p in zip(ids, planned, strict=True)
                 for a in p.article_ids],
            )
            touched.extend(ids)
            for h in held:
                touched.append(await self._hold(h, now, render_summary))
            await self.db.executemany(
                "INSERT OR IGNORE INTO alert_seen(article_id, ts) VALUES(?, ?)",
                [(a, iso(now)) for a in seen],
            )
            if watermark is not None:
                await self.db.execute(
                    "INSERT INTO alert_meta(key, value) VALUES(?, ?)"
                    " ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                    (WATERMARK, str(watermark)),
                )
            if learned:
                await self.db.executemany(
                    "INSERT OR REPLACE INTO alert_follow_stories(follow_id, article_id, ts)"
                    " SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM alert_follows WHERE id=?)",
                    [(f, a, iso(now), f) for f, a in learned],
                )
                await self.db.execute(
                    "DELETE FROM alert_follow_stories WHERE rowid IN (SELECT rowid FROM"
                    " (SELECT rowid, row_number() OVER (PARTITION BY follow_id"
                    " ORDER BY ts DESC, article_id) AS n FROM alert_follow_stories) WHERE n > ?)",
                    (MEMORY_SIZE,),
                )
            await self.db.execute("DELETE FROM alert_follow_stories WHERE ts < ?",
                                  (iso(now - MEMORY_TTL),))
            cutoff = iso(now - SEEN_TTL)
            await self.db.execute("DELETE FROM alert_seen WHERE ts < ?", (cutoff,))
            await self.db.execute("DELETE FROM alert_sent_articles WHERE ts < ?", (cutoff,))
            await self.db.execute(
                "DELETE FROM alert_messages WHERE state != 'pending' AND created_at < ?",
                (iso(now - DONE_TTL),),
            )
        return list(dict.fromkeys(touched))

    async def _mark_alerted(
        self, chat_id: int, article_ids: Sequence[str], message_id: int, now: datetime
    ) -> None:
        await self.db.executemany(
            "INSERT OR REPLACE INTO alert_sent_articles(chat_id, article_id, message_id, ts)"
            " VALUES(?,?,?,?)", [(chat_id, a, message_id, iso(now)) for a in article_ids],
        )

    async def _hold(self, h: Held, now: datetime, render: SummaryRenderer) -> int:
        async with self.db.execute(
            "SELECT id, items, article_ids, not_before FROM alert_messages WHERE chat_id=?"
            " AND kind='summary' AND state='pending' ORDER BY id DESC LIMIT 1", (h.chat_id,),
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            items, ids = [h.line], list(h.article_ids)
            cur2 = await self.db.execute(
                "INSERT INTO alert_messages(chat_id, follow_id, kind, lang, html, items,"
                " article_ids, not_before, created_at) VALUES(?,?, 'summary', ?,?,?,?,?,?)",
                (h.chat_id, h.follow_id, h.lang, render(items, h.lang), json.dumps(items),
                 json.dumps(ids), iso(h.not_before), iso(now)),
            )
            assert cur2.lastrowid is not None
            message_id = cur2.lastrowid
        else:
            message_id = row[0]
            items = [*json.loads(row[1]), h.line]
            ids = [*json.loads(row[2]), *h.article_ids]
            not_before = max(_dt(row[3]) or h.not_before, h.not_before)
            await self.db.execute(
                "UPDATE alert_messages SET html=?, items=?, article_ids=?, not_before=?"
                " WHERE id=?",
                (render(items, h.lang), json.dumps(items), json.dumps(ids), iso(not_before),
                 message_id),
            )
        await self._mark_alerted(h.chat_id, h.article_ids, message_id, now)
        return message_id

    # -- delivery ---------------------------------------------------------------------------

    @serialized
    async def pending_chats(self, now: datetime) -> list[int]:
        """Chats with a message that may be sent now."""
        async with self.db.execute(
            "SELECT DISTINCT chat_id FROM alert_messages WHERE state='pending'"
            " AND (not_before IS NULL OR not_before <= ?) AND (retry_at IS NULL OR retry_at <= ?)",
            (iso(now), iso(now)),
        ) as cur:
            return [r[0] for r in await cur.fetchall()]

    @serialized
    async def due_messages(self, chat_id: int, now: datetime) -> list[OutMessage]:
        async with self.db.execute(
            "SELECT * FROM alert_messages WHERE chat_id=? AND state='pending'"
            " AND (not_before IS NULL OR not_before <= ?) AND (retry_at IS NULL OR retry_at <= ?)"
            " ORDER BY id", (chat_id, iso(now), iso(now)),
        ) as cur:
            return [_out_row(r) for r in await cur.fetchall()]

    @serialized
    async def messages(self, chat_id: int | None = None) -> list[OutMessage]:
        sql, args = "SELECT * FROM alert_messages", tuple[Any, ...]()
        if chat_id is not None:
            sql, args = sql + " WHERE chat_id=?", (chat_id,)
        async with self.db.execute(sql + " ORDER BY id", args) as cur:
            return [_out_row(r) for r in await cur.fetchall()]

    @serialized
    async def mark(self, row_id: int, state: str, message_id: int | None, now: datetime) -> None:
        await self.db.execute(
            "UPDATE alert_messages SET state=?, message_id=?, sent_at=? WHERE id=?"
            " AND state='pending'", (state, message_id, iso(now), row_id),
        )

    @serialized
    async def postpone(self, row_id: int, attempts: int, retry_at: datetime) -> None:
        await self.db.execute(
            "UPDATE alert_messages SET attempts=?, retry_at=? WHERE id=?",
            (attempts, iso(retry_at), row_id),
        )
