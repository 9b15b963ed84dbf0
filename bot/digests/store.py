"""The digests' tables in the bot's SQLite: subscriptions, plans, their messages, and the
articles each chat was sent. Every multi-row change is one transaction.

The tables sit in the bot's state file (``settings.bot_state_path``) beside
:class:`bot.state.BotState`'s, on a connection of their own: see :class:`DigestStore`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.digests.schedule import Subscription
from bot.locked_store import LockedStore, serialized
from index.digest.stories import DigestMessage

SENT_ARTICLES_TTL = timedelta(days=30)


@dataclass(slots=True)
class PlannedMessage:
    plan_id: int
    seq: int
    html: str
    story_ids: list[str]
    state: str  # pending | sent | uncertain


@dataclass(slots=True)
class Plan:
    id: int
    chat_id: int
    slot: datetime
    since: datetime
    until: datetime
    status: str
    attempts: int = 0
    retry_at: datetime | None = None


def iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).isoformat() if dt is not None else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


_SUB_COLS = (
    "chat_id, chat_type, title, at, frequency, weekday, tz, topic, lang, send_empty, "
    "created_by, created_at, last_slot, watermark, last_sent"
)


def _sub_row(row: sqlite3.Row) -> Subscription:
    return Subscription(
        chat_id=row["chat_id"], chat_type=row["chat_type"], title=row["title"], at=row["at"],
        frequency=row["frequency"], weekday=row["weekday"], tz=row["tz"], topic=row["topic"],
        lang=row["lang"], send_empty=bool(row["send_empty"]), created_by=row["created_by"],
        created_at=_dt(row["created_at"]), last_slot=_dt(row["last_slot"]),
        watermark=_dt(row["watermark"]), last_sent=_dt(row["last_sent"]),
    )


def _plan_row(row: sqlite3.Row) -> Plan:
    return Plan(
        id=row["id"], chat_id=row["chat_id"], slot=_dt(row["slot"]),  # type: ignore[arg-type]
        since=_dt(row["since"]), until=_dt(row["until"]),  # type: ignore[arg-type]
        status=row["status"], attempts=row["attempts"], retry_at=_dt(row["retry_at"]),
    )




class DigestStore(LockedStore):
    """The ``digest_*`` tables. Every multi-row change is one transaction.

    The scheduler's deliveries and the command handlers share one connection, and SQLite
    has one transaction per connection: each method holds a lock for its whole body, so a
    handler's statement can never land inside a delivery's transaction (or vice versa).

    That connection is not :class:`bot.state.BotState`'s, though both open the same file in
    the same ``post_init`` (``BotServices.open``). The exactly-once design rests on these
    ``BEGIN IMMEDIATE … COMMIT`` spans, and on one connection every statement issued between
    a ``BEGIN`` and its ``COMMIT`` is part of that transaction: ``BotState`` writes without
    taking this lock (its batched flush every 0.2 s, a "More" claim, a vote), so on a shared
    connection its rows would land inside a digest's transaction and be rolled back with it
    (``finish`` rolls back by design when a message is still pending), and making every
    ``BotState`` write take this lock would put the answering path behind digest planning.
    Two connections to one WAL file cost nothing here: SQLite serialises the writers (with
    ``busy_timeout``), readers never wait. :mod:`bot.delivery_failures` keeps its own
    connection for the same reason.
    """

    # subscriptions

    @serialized
    async def subscription(self, chat_id: int) -> Subscription | None:
        async with self.db.execute(
            f"SELECT {_SUB_COLS} FROM digest_subscriptions WHERE chat_id=?", (chat_id,)
        ) as cur:
            row = await cur.fetchone()
        return _sub_row(row) if row else None

    @serialized
    async def subscriptions(self) -> list[Subscription]:
        async with self.db.execute(
            f"SELECT {_SUB_COLS} FROM digest_subscriptions ORDER BY chat_id"
        ) as cur:
            return [_sub_row(r) for r in await cur.fetchall()]

    @serialized
    async def upsert(self, sub: Subscription) -> None:
        """Create or replace the settings; the watermark and taken slot are the caller's."""
        await self.db.execute(
            f"INSERT INTO digest_subscriptions({_SUB_COLS}) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT(chat_id) DO UPDATE SET chat_type=excluded.chat_type,"
            " title=excluded.title, at=excluded.at, frequency=excluded.frequency,"
            " weekday=excluded.weekday, tz=excluded.tz, topic=excluded.topic,"
            " lang=excluded.lang, send_empty=excluded.send_empty, last_slot=excluded.last_slot",
            (
                sub.chat_id, sub.chat_type, sub.title, sub.at, sub.frequency, sub.weekday,
                sub.tz, sub.topic, sub.lang, int(sub.send_empty), sub.created_by,
                iso(sub.created_at), iso(sub.last_slot), iso(sub.watermark),
                iso(sub.last_sent),
            ),
        )

    @serialized
    async def remove(self, chat_id: int) -> bool:
        """Unsubscribe: open plans are abandoned (their unsent messages are never sent)."""
        async with self._tx():
            cur = await self.db.execute(
                "DELETE FROM digest_subscriptions WHERE chat_id=?", (chat_id,)
            )
            await self.db.execute(
                "UPDATE digest_plans SET status='abandoned' WHERE chat_id=? AND status='sending'",
                (chat_id,),
            )
            await self.db.execute("DELETE FROM digest_sent_articles WHERE chat_id=?", (chat_id,))
        return cur.rowcount > 0

    @serialized
    async def forget_user(self, user_id: int) -> int:
        """/forgetme: the digest of the user's private chat (its id is the user's) with every
        plan, message and sent-article row of it; as the creator of a group's digest the user
        becomes anonymous (the group keeps its digest). The rows deleted or anonymised."""
        total = 0
        async with self._tx():
            for sql in (
                "DELETE FROM digest_messages WHERE plan_id IN"
                " (SELECT id FROM digest_plans WHERE chat_id=?)",
                "DELETE FROM digest_plans WHERE chat_id=?",
                "DELETE FROM digest_sent_articles WHERE chat_id=?",
                "DELETE FROM digest_subscriptions WHERE chat_id=?",
                "UPDATE digest_subscriptions SET created_by=NULL WHERE created_by=?",
            ):
                cur = await self.db.execute(sql, (user_id,))
                total += max(0, cur.rowcount)
        return total

    @serialized
    async def migrate(self, old: int, new: int) -> None:
        """A group became a supergroup: everything moves to the new chat id."""
        async with self._tx():
            await self.db.execute("DELETE FROM digest_subscriptions WHERE chat_id=?", (new,))
            await self.db.execute(
                "UPDATE digest_subscriptions SET chat_id=?, chat_type='supergroup'"
                " WHERE chat_id=?", (new, old),
            )
            await self.db.execute("UPDATE digest_plans SET chat_id=? WHERE chat_id=?", (new, old))
            await self.db.execute(
                "UPDATE OR REPLACE digest_sent_articles SET chat_id=? WHERE chat_id=?", (new, old)
            )

    # plans

    @serialized
    async def open_plan(self, chat_id: int) -> Plan | None:
        async with self.db.execute(
            "SELECT * FROM digest_plans WHERE chat_id=? AND status='sending' ORDER BY id LIMIT 1",
            (chat_id,),
        ) as cur:
            row = await cur.fetchone()
        return _plan_row(row) if row else None

    @serialized
    async def open_plans(self) -> list[Plan]:
        async with self.db.execute(
            "SELECT * FROM digest_plans WHERE status='sending' ORDER BY id"
        ) as cur:
            return [_plan_row(r) for r in await cur.fetchall()]

    @serialized
    async def plan(self, plan_id: int) -> Plan | None:
        async with self.db.execute("SELECT * FROM digest_plans WHERE id=?", (plan_id,)) as cur:
            row = await cur.fetchone()
        return _plan_row(row) if row else None

    @serialized
    async def messages(self, plan_id: int) -> list[PlannedMessage]:
        async with self.db.execute(
            "SELECT plan_id, seq, html, story_ids, state FROM digest_messages WHERE plan_id=?"
            " ORDER BY seq", (plan_id,),
        ) as cur:
            return [
                PlannedMessage(r[0], r[1], r[2], json.loads(r[3]), r[4])
                for r in await cur.fetchall()
            ]

    @serialized
    async def sent_article_ids(self, chat_id: int) -> set[str]:
        async with self.db.execute(
            "SELECT article_id FROM digest_sent_articles WHERE chat_id=?", (chat_id,)
        ) as cur:
            return {r[0] for r in await cur.fetchall()}

    @serialized
    async def take_slot(
        self,
        sub: Subscription,
        slot: datetime,
        since: datetime,
        until: datetime,
        messages: Sequence[DigestMessage],
        article_ids: Sequence[str],
        now: datetime,
    ) -> int | None:
        """Persist a planned digest and take its slot, atomically and at most once.

        Returns the plan id; None when there is nothing to send (the slot is taken and the
        watermark moves on at once) or when the slot was taken meanwhile (then nothing is
        written at all).
        """
        async with self._tx():
            async with self.db.execute(
                "SELECT last_slot FROM digest_subscriptions WHERE chat_id=?", (sub.chat_id,)
            ) as cur:
                row = await cur.fetchone()
            if row is None:
                return None
            taken = _dt(row[0])
            if taken is not None and taken >= slot:
                return None
            async with self.db.execute(
                "SELECT 1 FROM digest_plans WHERE chat_id=? AND status='sending'", (sub.chat_id,)
            ) as cur:
                if await cur.fetchone():
                    return None
            if not messages:
                await self.db.execute(
                    "UPDATE digest_subscriptions SET last_slot=?, watermark=? WHERE chat_id=?",
                    (iso(slot), iso(until), sub.chat_id),
                )
                return None
            cur2 = await self.db.execute(
                "INSERT INTO digest_plans(chat_id, slot, since, until, status, created_at)"
                " VALUES(?,?,?,?, 'sending', ?)",
                (sub.chat_id, iso(slot), iso(since), iso(until), iso(now)),
            )
            plan_id = cur2.lastrowid
            assert plan_id is not None
            await self.db.executemany(
                "INSERT INTO digest_messages(plan_id, seq, html, story_ids) VALUES(?,?,?,?)",
                [(plan_id, i, m.html, json.dumps(m.story_ids)) for i, m in enumerate(messages)],
            )
            await self.db.executemany(
                "INSERT OR REPLACE INTO digest_sent_articles(chat_id, article_id, plan_id, ts)"
                " VALUES(?,?,?,?)",
                [(sub.chat_id, aid, plan_id, iso(now)) for aid in article_ids],
            )
            await self.db.execute(
                "UPDATE digest_subscriptions SET last_slot=? WHERE chat_id=?",
                (iso(slot), sub.chat_id),
            )
            await self.db.execute(
                "DELETE FROM digest_sent_articles WHERE chat_id=? AND ts < ?",
                (sub.chat_id, iso(now - SENT_ARTICLES_TTL)),
            )
        return plan_id

    @serialized
    async def mark(
        self, plan_id: int, seq: int, state: str, message_id: int | None, now: datetime
    ) -> None:
        await self.db.execute(
            "UPDATE digest_messages SET state=?, message_id=?, sent_at=? WHERE plan_id=? AND seq=?",
            (state, message_id, iso(now), plan_id, seq),
        )

    @serialized
    async def finish(self, plan: Plan, now: datetime) -> None:
        """Close the plan and advance the watermark: only after every message is through."""
        async with self._tx():
            async with self.db.execute(
                "SELECT count(*) FROM digest_messages WHERE plan_id=? AND state='pending'",
                (plan.id,),
            ) as cur:
                row = await cur.fetchone()
            if row and row[0]:
                raise RuntimeError(f"plan {plan.id} still has {row[0]} unsent messages")
            await self.db.execute(
                "UPDATE digest_plans SET status='done', finished_at=? WHERE id=?",
                (iso(now), plan.id),
            )
            await self.db.execute(
                "UPDATE digest_subscriptions SET watermark=?, last_sent=? WHERE chat_id=?",
                (iso(plan.until), iso(now), plan.chat_id),
            )

    @serialized
    async def abandon(self, plan_id: int) -> None:
        await self.db.execute(
            "UPDATE digest_plans SET status='abandoned' WHERE id=? AND status='sending'",
            (plan_id,),
        )

    @serialized
    async def postpone(self, plan_id: int, attempts: int, retry_at: datetime) -> None:
        await self.db.execute(
            "UPDATE digest_plans SET attempts=?, retry_at=? WHERE id=?",
            (attempts, iso(retry_at), plan_id),
        )
