"""Digest subscriptions, scheduling and exactly-once delivery to groups and channels.

Wiring (from the bot's ``build_application``)::

    register_digest_handlers(app, settings)           # after the bot's own handlers
    await start_digest_scheduler(app)                  # in post_init, after services open
    await stop_digest_scheduler(app)                   # in post_stop

State lives in the bot's SQLite (``settings.bot_state_path``), in ``digest_*`` tables of its
own connection: subscriptions are the bot's state, not the index's, and must survive a
rebuilt index.

Delivery is a small state machine persisted before anything is sent:

1. when a subscription's slot is due, the digest is built and *planned* in one transaction:
   its messages (HTML and story ids), the articles it covers, and the slot marked as taken;
2. each message is marked sent as soon as Telegram accepts it;
3. when the last one is accepted, the plan is closed and the watermark (the end of the period
   the digest covered) advances, in one transaction.

A crash anywhere leaves either no plan (nothing sent; the slot is still due, so it is
planned again at start-up) or a plan whose unsent messages are sent at start-up. A message
is never re-planned, so no story is posted twice, and none is dropped. One case is
irreducible: a request Telegram executed but whose answer never came back (a timeout, or a
crash while waiting). Like the bot's answers, such a message is not sent again: it is marked
"uncertain" and logged, because a duplicate in a channel is worse than the rare loss.

Scheduling is one JobQueue job that ticks every ``tick_seconds`` and asks, with an
injectable clock, which subscriptions have a slot (HH:MM in their time zone, daily or on one
weekday) later than the one last taken. A bot that was down at 08:00 therefore sends the
missed digest at start-up, once, and a restart never sends one twice.

A digest that keeps failing (a rejected or unreachable send, a build that raises) is
retried as above and counted in :mod:`bot.delivery_failures`, which tells the bot's admins
once per failure streak and feeds ``/stats``; a delivered digest ends the streak. A chat
that removed the bot is not a failure: it is unsubscribed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import html
import json
import logging
import re
import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiosqlite
from telegram import LinkPreviewOptions, Update
from telegram.constants import ChatMemberStatus, ChatType, ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    filters,
)

from bot.delivery_failures import DeliveryFailures, delivery_failures
from index.digest.stories import (
    Digest,
    DigestMessage,
    build_digest,
    render_digest_html,
)
from index.render.i18n import format_date, normalize_lang
from index.storage.store import connect_sqlite

log = logging.getLogger(__name__)

KEY = "digests"
HANDLER_GROUP = -1  # before the bot's own handlers, which answer unknown commands with help
TELEGRAM_GROUP_RATE = 20  # messages per minute to one group or channel
LATE_GRACE = timedelta(days=2)
SENT_ARTICLES_TTL = timedelta(days=30)
MAX_TOPIC = 200
MAX_NETWORK_RETRIES = 5
RETRY_BACKOFF_MAX = timedelta(hours=1)
FAILURE_KIND = "digest"  # this module's deliveries in bot.delivery_failures

DIGEST_COMMANDS = {
    "en": {
        "subscribe": "Periodic news digest here: [HH:MM] [daily|weekly] [topic]",
        "unsubscribe": "Stop this chat's digest",
        "digest": "Preview the digest that would be sent now",
        "subscriptions": "This chat's digest settings",
    },
    "it": {
        "subscribe": "Rassegna periodica qui: [HH:MM] [daily|weekly] [argomento]",
        "unsubscribe": "Ferma la rassegna di questa chat",
        "digest": "Anteprima della rassegna di adesso",
        "subscriptions": "Impostazioni della rassegna di questa chat",
    },
}

_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "subscribed": "✅ Digest set up for {chat}: {schedule}{topic}.\nNext one: {next}.",
        "topic": ", topic “{topic}”",
        "daily": "every day at {at} ({tz})",
        "weekly": "every {weekday} at {at} ({tz})",
        "empty_on": " A “no news” line is posted when there is nothing new.",
        "unsubscribed": "Digest stopped for {chat}.",
        "not_subscribed": "{chat} has no digest. Set one up with /subscribe.",
        "need_group_admin": "Only the group's administrators can change its digest.",
        "need_bot_admin": "Only the bot's administrators can set up digests for channels.",
        "admin_check_failed": "I could not check who administers this chat: {error}",
        "bad_time": "“{value}” is not a time: write it as HH:MM, e.g. 08:00.",
        "bad_tz": "Unknown time zone “{value}”: use a name like Europe/Rome or UTC.",
        "channel_not_found": (
            "I cannot see {channel}. Add me to the channel as an administrator with the right "
            "to post messages, then send this command again."
        ),
        "channel_not_admin": (
            "I am not an administrator of {channel}. Open the channel's settings → "
            "Administrators → Add administrator, choose me and allow “Post messages”, then "
            "send this command again."
        ),
        "channel_cannot_post": (
            "I am an administrator of {channel} but may not post messages. In the channel's "
            "settings → Administrators, open my entry and allow “Post messages”, then send "
            "this command again."
        ),
        "not_a_channel": "{channel} is a group: send /subscribe in the group itself.",
        "channel_only_private": "Set up a channel's digest from a private chat with me.",
        "list_none": "No digest is set up here. Try /subscribe 08:00 daily.",
        "list_header": "Digests:",
        "list_item": "• {chat}: {schedule}{topic}; next {next}{last}",
        "list_last": "; last sent {last}",
        "nothing_new": "Nothing new since the last digest.",
        "failure_what": "digest {schedule}{topic}",
        "preview_failed": "I could not build the digest right now, sorry. Please try later.",
        "error": "Sorry, something went wrong with the digest settings. Please try again.",
        "usage": (
            "Usage: /subscribe [HH:MM] [daily|weekly] [mon…sun] [Area/City] [--empty] "
            "[topic words]"
        ),
    },
    "it": {
        "subscribed": "✅ Rassegna attivata per {chat}: {schedule}{topic}.\nProssima: {next}.",
        "topic": ", argomento «{topic}»",
        "daily": "ogni giorno alle {at} ({tz})",
        "weekly": "ogni {weekday} alle {at} ({tz})",
        "empty_on": " Se non ci sono novità scrivo una riga per dirlo.",
        "unsubscribed": "Rassegna fermata per {chat}.",
        "not_subscribed": "{chat} non ha una rassegna. Attivala con /subscribe.",
        "need_group_admin": "Solo gli amministratori del gruppo possono cambiarne la rassegna.",
        "need_bot_admin": "Solo gli amministratori del bot possono attivare rassegne nei canali.",
        "admin_check_failed": "Non riesco a verificare chi amministra questa chat: {error}",
        "bad_time": "«{value}» non è un orario: scrivilo come HH:MM, per esempio 08:00.",
        "bad_tz": "Fuso orario «{value}» sconosciuto: usa un nome come Europe/Rome o UTC.",
        "channel_not_found": (
            "Non vedo {channel}. Aggiungimi al canale come amministratore con il permesso di "
            "pubblicare messaggi, poi manda di nuovo questo comando."
        ),
        "channel_not_admin": (
            "Non sono amministratore di {channel}. Apri le impostazioni del canale → "
            "Amministratori → Aggiungi amministratore, scegli me e consenti «Pubblica "
            "messaggi», poi manda di nuovo questo comando."
        ),
        "channel_cannot_post": (
            "Sono amministratore di {channel} ma non posso pubblicare messaggi. Nelle "
            "impostazioni del canale → Amministratori, apri la mia voce e consenti «Pubblica "
            "messaggi», poi manda di nuovo questo comando."
        ),
        "not_a_channel": "{channel} è un gruppo: manda /subscribe nel gruppo stesso.",
        "channel_only_private": "Attiva la rassegna di un canale da una chat privata con me.",
        "list_none": "Qui non c'è nessuna rassegna. Prova /subscribe 08:00 daily.",
        "list_header": "Rassegne:",
        "list_item": "• {chat}: {schedule}{topic}; prossima {next}{last}",
        "list_last": "; ultima inviata {last}",
        "nothing_new": "Nessuna novità dall'ultima rassegna.",
        "failure_what": "rassegna {schedule}{topic}",
        "preview_failed": "Non riesco a preparare la rassegna adesso, scusa. Riprova più tardi.",
        "error": "Scusa, qualcosa è andato storto con la rassegna. Riprova.",
        "usage": (
            "Uso: /subscribe [HH:MM] [daily|weekly] [lun…dom] [Area/Città] [--empty] "
            "[parole dell'argomento]"
        ),
    },
}

WEEKDAYS = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "it": ("lunedì", "martedì", "mercoledì", "giovedì", "venerdì", "sabato", "domenica"),
}
_WEEKDAY_WORDS = {
    **{w: i for i, w in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))},
    **{w: i for i, w in enumerate(("monday", "tuesday", "wednesday", "thursday", "friday",
                                   "saturday", "sunday"))},
    **{w: i for i, w in enumerate(("lun", "mar", "mer", "gio", "ven", "sab", "dom"))},
    **{w: i for i, w in enumerate(("lunedi", "martedi", "mercoledi", "giovedi", "venerdi",
                                   "sabato", "domenica"))},
    **{w: i for i, w in enumerate(("lunedì", "martedì", "mercoledì", "giovedì", "venerdì"))},
}
_FREQUENCIES = {
    "daily": "daily", "day": "daily", "giornaliera": "daily", "quotidiana": "daily",
    "weekly": "weekly", "week": "weekly", "settimanale": "weekly",
}
_TIME = re.compile(r"^([01]?\d|2[0-3])[:.]([0-5]\d)$")


def _tx(key: str, lang: str | None, **kwargs: object) -> str:
    table = _TEXTS[normalize_lang(lang)]
    template = table.get(key) or _TEXTS["en"][key]
    return template.format(**kwargs) if kwargs else template


# -- clock ------------------------------------------------------------------------------------


class Clock(Protocol):
    """What the scheduler knows of time; tests pass one they move by hand."""

    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


# -- subscriptions ----------------------------------------------------------------------------


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


def _iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).isoformat() if dt is not None else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS digest_subscriptions(
    chat_id INTEGER PRIMARY KEY,
    chat_type TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    at TEXT NOT NULL,
    frequency TEXT NOT NULL,
    weekday INTEGER NOT NULL DEFAULT 0,
    tz TEXT NOT NULL,
    topic TEXT,
    lang TEXT NOT NULL,
    send_empty INTEGER NOT NULL DEFAULT 0,
    created_by INTEGER,
    created_at TEXT NOT NULL,
    last_slot TEXT,
    watermark TEXT,
    last_sent TEXT
);
CREATE TABLE IF NOT EXISTS digest_plans(
    id INTEGER PRIMARY KEY,
    chat_id INTEGER NOT NULL,
    slot TEXT NOT NULL,
    since TEXT NOT NULL,
    until TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    retry_at TEXT
);
CREATE INDEX IF NOT EXISTS digest_plans_open ON digest_plans(status, chat_id);
CREATE TABLE IF NOT EXISTS digest_messages(
    plan_id INTEGER NOT NULL REFERENCES digest_plans(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    html TEXT NOT NULL,
    story_ids TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    message_id INTEGER,
    sent_at TEXT,
    PRIMARY KEY(plan_id, seq)
);
CREATE TABLE IF NOT EXISTS digest_sent_articles(
    chat_id INTEGER NOT NULL,
    article_id TEXT NOT NULL,
    plan_id INTEGER NOT NULL,
    ts TEXT NOT NULL,
    PRIMARY KEY(chat_id, article_id)
);
"""

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


_F = TypeVar("_F", bound=Callable[..., Awaitable[Any]])


def _serialized(method: _F) -> _F:
    @functools.wraps(method)
    async def wrapper(self: DigestStore, *args: Any, **kwargs: Any) -> Any:
        async with self._lock:
            return await method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class DigestStore:
    """The ``digest_*`` tables. Every multi-row change is one transaction.

    The scheduler's deliveries and the command handlers share one connection, and SQLite
    has one transaction per connection: each method holds a lock for its whole body, so a
    handler's statement can never land inside a delivery's transaction (or vice versa).
    """

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> DigestStore:
        db = await connect_sqlite(path)
        await db.executescript(_SCHEMA)
        return cls(db)

    async def close(self) -> None:
        async with self._lock:
            await self.db.close()

    @contextlib.asynccontextmanager
    async def _tx(self) -> Any:
        await self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            await self.db.execute("ROLLBACK")
            raise
        await self.db.execute("COMMIT")

    # subscriptions

    @_serialized
    async def subscription(self, chat_id: int) -> Subscription | None:
        async with self.db.execute(
            f"SELECT {_SUB_COLS} FROM digest_subscriptions WHERE chat_id=?", (chat_id,)
        ) as cur:
            row = await cur.fetchone()
        return _sub_row(row) if row else None

    @_serialized
    async def subscriptions(self) -> list[Subscription]:
        async with self.db.execute(
            f"SELECT {_SUB_COLS} FROM digest_subscriptions ORDER BY chat_id"
        ) as cur:
            return [_sub_row(r) for r in await cur.fetchall()]

    @_serialized
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
                _iso(sub.created_at), _iso(sub.last_slot), _iso(sub.watermark),
                _iso(sub.last_sent),
            ),
        )

    @_serialized
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

    @_serialized
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

    @_serialized
    async def open_plan(self, chat_id: int) -> Plan | None:
        async with self.db.execute(
            "SELECT * FROM digest_plans WHERE chat_id=? AND status='sending' ORDER BY id LIMIT 1",
            (chat_id,),
        ) as cur:
            row = await cur.fetchone()
        return _plan_row(row) if row else None

    @_serialized
    async def open_plans(self) -> list[Plan]:
        async with self.db.execute(
            "SELECT * FROM digest_plans WHERE status='sending' ORDER BY id"
        ) as cur:
            return [_plan_row(r) for r in await cur.fetchall()]

    @_serialized
    async def plan(self, plan_id: int) -> Plan | None:
        async with self.db.execute("SELECT * FROM digest_plans WHERE id=?", (plan_id,)) as cur:
            row = await cur.fetchone()
        return _plan_row(row) if row else None

    @_serialized
    async def messages(self, plan_id: int) -> list[PlannedMessage]:
        async with self.db.execute(
            "SELECT plan_id, seq, html, story_ids, state FROM digest_messages WHERE plan_id=?"
            " ORDER BY seq", (plan_id,),
        ) as cur:
            return [
                PlannedMessage(r[0], r[1], r[2], json.loads(r[3]), r[4])
                for r in await cur.fetchall()
            ]

    @_serialized
    async def sent_article_ids(self, chat_id: int) -> set[str]:
        async with self.db.execute(
            "SELECT article_id FROM digest_sent_articles WHERE chat_id=?", (chat_id,)
        ) as cur:
            return {r[0] for r in await cur.fetchall()}

    @_serialized
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
                    (_iso(slot), _iso(until), sub.chat_id),
                )
                return None
            cur2 = await self.db.execute(
                "INSERT INTO digest_plans(chat_id, slot, since, until, status, created_at)"
                " VALUES(?,?,?,?, 'sending', ?)",
                (sub.chat_id, _iso(slot), _iso(since), _iso(until), _iso(now)),
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
                [(sub.chat_id, aid, plan_id, _iso(now)) for aid in article_ids],
            )
            await self.db.execute(
                "UPDATE digest_subscriptions SET last_slot=? WHERE chat_id=?",
                (_iso(slot), sub.chat_id),
            )
            await self.db.execute(
                "DELETE FROM digest_sent_articles WHERE chat_id=? AND ts < ?",
                (sub.chat_id, _iso(now - SENT_ARTICLES_TTL)),
            )
        return plan_id

    @_serialized
    async def mark(
        self, plan_id: int, seq: int, state: str, message_id: int | None, now: datetime
    ) -> None:
        await self.db.execute(
            "UPDATE digest_messages SET state=?, message_id=?, sent_at=? WHERE plan_id=? AND seq=?",
            (state, message_id, _iso(now), plan_id, seq),
        )

    @_serialized
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
                (_iso(now), plan.id),
            )
            await self.db.execute(
                "UPDATE digest_subscriptions SET watermark=?, last_sent=? WHERE chat_id=?",
                (_iso(plan.until), _iso(now), plan.chat_id),
            )

    @_serialized
    async def abandon(self, plan_id: int) -> None:
        await self.db.execute(
            "UPDATE digest_plans SET status='abandoned' WHERE id=? AND status='sending'",
            (plan_id,),
        )

    @_serialized
    async def postpone(self, plan_id: int, attempts: int, retry_at: datetime) -> None:
        await self.db.execute(
            "UPDATE digest_plans SET attempts=?, retry_at=? WHERE id=?",
            (attempts, _iso(retry_at), plan_id),
        )


# -- parsing ----------------------------------------------------------------------------------


class UsageError(ValueError):
    """A /subscribe argument that cannot be understood; the message is for the user."""


@dataclass(slots=True)
class SubscribeArgs:
    target: str | None = None  # "@channel" or a numeric id, from a private chat
    at: str | None = None
    frequency: str = "daily"
    weekday: int = 0
    tz: str | None = None
    send_empty: bool = False
    lang: str | None = None
    topic: str | None = None


def parse_subscribe(args: Sequence[str], lang: str) -> SubscribeArgs:
    """``[@channel] [HH:MM] [daily|weekly] [weekday] [Area/City] [--empty] [--lang=it] [topic…]``

    Options may come in any order before the topic; everything else is topic words.
    """
    out = SubscribeArgs()
    topic: list[str] = []
    for i, raw in enumerate(args):
        word = raw.strip()
        low = word.lower()
        if not word:
            continue
        if topic:
            topic.append(word)
            continue
        if i == 0 and (word.startswith("@") or re.fullmatch(r"-?\d{5,}", word)):
            out.target = word
        elif _TIME.match(word):
            m = _TIME.match(word)
            assert m is not None
            out.at = f"{int(m.group(1)):02d}:{m.group(2)}"
        elif re.fullmatch(r"\d{1,2}[:.]\d{1,2}", word) or re.fullmatch(r"\d{1,2}:\d*", word):
            raise UsageError(_tx("bad_time", lang, value=word))
        elif low in _FREQUENCIES:
            out.frequency = _FREQUENCIES[low]
        elif low in _WEEKDAY_WORDS:
            out.weekday = _WEEKDAY_WORDS[low]
            out.frequency = "weekly"
        elif low in ("--empty", "-e", "--vuota"):
            out.send_empty = True
        elif low.startswith("--lang="):
            out.lang = normalize_lang(low.split("=", 1)[1])
        elif "/" in word or low in ("utc", "tz=utc") or low.startswith("tz="):
            name = word.split("=", 1)[1] if low.startswith("tz=") else word
            try:
                ZoneInfo("UTC" if name.lower() == "utc" else name)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise UsageError(_tx("bad_tz", lang, value=name)) from exc
            out.tz = "UTC" if name.lower() == "utc" else name
        else:
            topic.append(word)
    text = " ".join(topic).strip()
    out.topic = text[:MAX_TOPIC] if text else None
    return out


# -- building ---------------------------------------------------------------------------------


async def build_subscription_digest(
    sub: Subscription,
    retriever: Any,
    settings: Any,
    now: datetime,
    *,
    since: datetime | None = None,
    exclude: set[str] | frozenset[str] = frozenset(),
) -> Digest:
    """The digest ``sub`` would get at ``now``: since its watermark, or one period back for
    a first digest. Shared by the scheduler, /digest and ``newsbot digest --chat``."""
    start = since or sub.watermark or (sub.latest_slot(now) - sub.period)
    return await build_digest(
        retriever.store,
        retriever.vectors,
        since=start,
        until=now,
        max_stories=int(getattr(settings, "digest_max_stories", 8)),
        topic=sub.topic,
        retriever=retriever,
        exclude=exclude,
        late_grace=LATE_GRACE if sub.watermark is not None else timedelta(0),
        frequency=sub.frequency,
    )


# -- the service ------------------------------------------------------------------------------


RetrieverProvider = Callable[[], Any]


@dataclass
class _ChatPacer:
    sent: deque[datetime] = field(default_factory=deque)


class DigestService:
    """Plans and delivers digests; lives in ``application.bot_data["digests"]``."""

    def __init__(
        self,
        application: Application,
        settings: Any,
        *,
        retriever: RetrieverProvider,
        clock: Clock | None = None,
        tick_seconds: float = 30.0,
        max_len: int | None = None,
        per_minute: int = TELEGRAM_GROUP_RATE,
    ) -> None:
        self.application = application
        self.settings = settings
        self._retriever = retriever
        self.clock: Clock = clock or SystemClock()
        self.tick_seconds = tick_seconds
        self.max_len = max_len
        self.per_minute = per_minute
        self.store: DigestStore | None = None
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._pacers: dict[int, _ChatPacer] = {}
        self._stopping = asyncio.Event()
        self._job: Any = None
        self.failures: DeliveryFailures = delivery_failures(application, settings)

    # lifecycle

    async def start(self) -> None:
        if self.store is None:
            self.store = await DigestStore.open(Path(self.settings.bot_state_path))
            await self.failures.acquire()
        self._stopping.clear()
        jq = self.application.job_queue
        if jq is None:
            raise RuntimeError(
                "digests need PTB's JobQueue: install python-telegram-bot[job-queue]"
            )
        self._job = jq.run_repeating(
            self._tick_job,
            interval=self.tick_seconds,
            first=self.tick_seconds,
            name="newsbot-digests",
            job_kwargs={"coalesce": True, "misfire_grace_time": None},
        )
        # Start-up: resume interrupted digests and send the ones missed while down.
        await self.run_due()

    async def stop(self) -> None:
        """Let each digest finish the message it is sending, then stop; the rest waits in
        the state DB for the next start."""
        self._stopping.set()
        if self._job is not None:
            # Usually gone already: Application.stop() shuts the JobQueue down first.
            with contextlib.suppress(Exception):
                self._job.schedule_removal()
            self._job = None
        try:
            tasks = list(self.tasks.values())
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            if self.store is not None:
                await self.store.close()
                self.store = None
                await self.failures.release()

    async def _tick_job(self, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self.run_due()

    def _db(self) -> DigestStore:
        if self.store is None:
            raise RuntimeError("the digest scheduler is not started")
        return self.store

    @property
    def retriever(self) -> Any:
        return self._retriever()

    # scheduling

    async def run_due(self) -> list[int]:
        """Start delivery for every chat with an open plan or a due slot; returns their ids.

        Each chat's delivery is its own task, so a chat waiting out a 429 or its per-minute
        budget never holds up the others, and a tick never waits for sending.
        """
        if self._stopping.is_set():
            return []
        db = self._db()
        now = self.clock.now()
        started = []
        subs = {s.chat_id: s for s in await db.subscriptions()}
        open_plans = {p.chat_id: p for p in await db.open_plans()}
        for chat_id, orphan in open_plans.items():
            if chat_id not in subs:
                await db.abandon(orphan.id)
        for chat_id, sub in subs.items():
            plan = open_plans.get(chat_id)
            if plan is not None and plan.retry_at is not None and plan.retry_at > now:
                continue
            if plan is None and sub.due_slot(now) is None:
                continue
            if chat_id in self.tasks:
                continue
            task = asyncio.create_task(self._deliver(chat_id), name=f"digest:{chat_id}")
            self.tasks[chat_id] = task
            task.add_done_callback(self._forget_task)
            started.append(chat_id)
        return started

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        for chat_id, running in list(self.tasks.items()):
            if running is task:
                del self.tasks[chat_id]

    async def wait_idle(self) -> None:
        """Wait for every running delivery (tests, and the CLI)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks.values()), return_exceptions=True)

    async def _deliver(self, chat_id: int) -> None:
        lock = self._locks.setdefault(chat_id, asyncio.Lock())
        async with lock:
            try:
                db = self._db()
                plan = await db.open_plan(chat_id)
                if plan is None:
                    sub = await db.subscription(chat_id)
                    if sub is None or sub.due_slot(self.clock.now()) is None:
                        return
                    plan = await self._plan(sub)
                    if plan is None:  # built, and nothing to send: the slot is done
                        await self._succeeded(chat_id)
                        return
                await self._send_plan(plan)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("digest delivery failed", extra={"kv": {"chat": chat_id}})
                await self._failed(chat_id, exc)

    async def build(
        self, sub: Subscription, now: datetime, *, since: datetime | None = None
    ) -> Digest:
        exclude = await self._db().sent_article_ids(sub.chat_id)
        return await build_subscription_digest(
            sub, self.retriever, self.settings, now, since=since, exclude=exclude
        )

    def render(self, digest: Digest, sub: Subscription, *, preview: bool = False,
               empty_line: bool | None = None) -> list[DigestMessage]:
        kwargs: dict[str, Any] = {}
        if self.max_len:
            kwargs["max_len"] = self.max_len
        return render_digest_html(
            digest, lang=sub.lang, tz=sub.zone, preview=preview,
            empty_line=sub.send_empty if empty_line is None else empty_line, **kwargs,
        )

    async def _plan(self, sub: Subscription) -> Plan | None:
        now = self.clock.now()
        slot = sub.due_slot(now)
        if slot is None:
            return None
        digest = await self.build(sub, now)
        messages = self.render(digest, sub)
        article_ids = [a for s in digest.stories for a in s.article_ids]
        plan_id = await self._db().take_slot(
            sub, slot, digest.since, digest.until, messages, article_ids, now
        )
        log.info("digest planned", extra={"kv": {
            "chat": sub.chat_id, "slot": _iso(slot), "stories": len(digest.stories),
            "messages": len(messages), "plan": plan_id,
        }})
        return await self._db().plan(plan_id) if plan_id is not None else None

    # sending

    async def _pace(self, chat_id: int) -> bool:
        """Wait for room in the chat's per-minute budget; False when stopping meanwhile."""
        if self.per_minute <= 0:
            return True
        pacer = self._pacers.setdefault(chat_id, _ChatPacer())
        window = timedelta(minutes=1)
        while True:
            now = self.clock.now()
            while pacer.sent and pacer.sent[0] <= now - window:
                pacer.sent.popleft()
            if len(pacer.sent) < self.per_minute:
                return True
            wait = (pacer.sent[0] + window - now).total_seconds()
            if not await self._sleep(max(wait, 0.001)):
                return False

    async def _sleep(self, seconds: float) -> bool:
        """Sleep on the service's clock; False if the service started stopping meanwhile."""
        if self._stopping.is_set():
            return False
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        stopper = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for fut in (sleeper, stopper):
                if not fut.done():
                    fut.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await fut
        return not self._stopping.is_set()

    async def _send_plan(self, plan: Plan) -> None:
        db = self._db()
        chat_id = plan.chat_id
        for msg in await db.messages(plan.id):
            if msg.state != "pending":
                continue
            network_failures = 0
            while True:
                if self._stopping.is_set() or not await self._pace(chat_id):
                    return
                try:
                    sent = await self.application.bot.send_message(
                        chat_id,
                        msg.html,
                        parse_mode=ParseMode.HTML,
                        link_preview_options=LinkPreviewOptions(is_disabled=True),
                    )
                except RetryAfter as exc:
                    wait = _seconds(exc)
                    log.warning("Telegram asked to slow down", extra={"kv": {
                        "chat": chat_id, "retry_after_s": wait}})
                    if not await self._sleep(wait):
                        return
                    continue
                except ChatMigrated as exc:
                    log.info("group became a supergroup", extra={"kv": {
                        "chat": chat_id, "new_chat": exc.new_chat_id}})
                    await db.migrate(chat_id, exc.new_chat_id)
                    await self.failures.migrate(chat_id, exc.new_chat_id)
                    chat_id = exc.new_chat_id
                    continue
                except Forbidden as exc:
                    await self.remove(chat_id)
                    log.warning("bot removed from chat: digest unsubscribed", extra={"kv": {
                        "chat": chat_id, "error": str(exc)}})
                    return
                except TimedOut as exc:
                    # Telegram may have posted it: not sent again (see the module docstring).
                    await db.mark(plan.id, msg.seq, "uncertain", None, self.clock.now())
                    log.warning("digest message timed out; not repeated", extra={"kv": {
                        "chat": chat_id, "plan": plan.id, "seq": msg.seq,
                        "stories": ",".join(msg.story_ids), "error": str(exc)}})
                    break
                except BadRequest as exc:
                    await self._postpone(plan, chat_id, f"rejected: {exc}", exc)
                    return
                except NetworkError as exc:
                    network_failures += 1
                    if network_failures > MAX_NETWORK_RETRIES:
                        await self._postpone(plan, chat_id, f"network: {exc}", exc)
                        return
                    if not await self._sleep(min(60.0, 2.0 ** network_failures)):
                        return
                    continue
                except TelegramError as exc:
                    await self._postpone(plan, chat_id, f"error: {exc}", exc)
                    return
                now = self.clock.now()
                self._pacers.setdefault(chat_id, _ChatPacer()).sent.append(now)
                await db.mark(plan.id, msg.seq, "sent", sent.message_id, now)
                break
        refreshed = await db.plan(plan.id)
        if refreshed is not None and refreshed.status == "sending":
            await db.finish(refreshed, self.clock.now())
            log.info("digest delivered", extra={"kv": {"chat": chat_id, "plan": plan.id}})
            await self._succeeded(chat_id)

    async def _postpone(
        self, plan: Plan, chat_id: int, reason: str, error: TelegramError
    ) -> None:
        """Leave the plan open and try again later, backing off up to an hour."""
        attempts = plan.attempts + 1
        delay = min(RETRY_BACKOFF_MAX, timedelta(minutes=2 ** min(attempts, 6)))
        await self._db().postpone(plan.id, attempts, self.clock.now() + delay)
        log.error("digest not delivered; will retry", extra={"kv": {
            "chat": chat_id, "plan": plan.id, "attempt": attempts,
            "retry_in_s": int(delay.total_seconds()), "reason": reason}})
        await self._failed(chat_id, error)

    # failures and removal

    async def _failed(self, chat_id: int, error: BaseException) -> None:
        """Count a failed pass for the admins (told once per streak, listed by /stats).

        Never raises: the bookkeeping of a failure must not become a second one."""
        try:
            sub = await self._db().subscription(chat_id)
            if sub is None:
                return
            topics = {lang: _tx("topic", lang, topic=sub.topic) if sub.topic else ""
                      for lang in _TEXTS}
            await self.failures.failed(
                FAILURE_KIND, chat_id, chat_title=_sub_name(sub),
                what={lang: _tx("failure_what", lang, schedule=_schedule(sub, lang),
                                topic=topics[lang]) for lang in _TEXTS},
                error=error, now=self.clock.now(),
            )
            if await self._db().subscription(chat_id) is None:
                # Unsubscribed while this was written: remove() forgot it too early.
                await self.failures.forget(FAILURE_KIND, chat_id)
        except Exception:
            log.exception("could not record a failed digest", extra={"kv": {"chat": chat_id}})

    async def _succeeded(self, chat_id: int) -> None:
        try:
            await self.failures.succeeded(FAILURE_KIND, chat_id)
        except Exception:
            log.exception("could not clear a failed digest", extra={"kv": {"chat": chat_id}})

    async def remove(self, chat_id: int) -> bool:
        """Unsubscribe ``chat_id``; a failure its digest had is no longer anyone's concern."""
        removed = await self._db().remove(chat_id)
        await self.failures.forget(FAILURE_KIND, chat_id)
        return removed


def _seconds(exc: RetryAfter) -> float:
    value: Any = exc.retry_after
    if isinstance(value, timedelta):
        return max(0.0, value.total_seconds())
    return max(0.0, float(value))


# -- handlers ---------------------------------------------------------------------------------


def service_of(application: Application) -> DigestService:
    return application.bot_data[KEY]  # type: ignore[no-any-return]


def _lang(update: Update) -> str:
    user = update.effective_user
    return normalize_lang(user.language_code if user else None)


def _chat_name(chat: Any) -> str:
    if getattr(chat, "username", None):
        return f"@{chat.username}"
    return getattr(chat, "title", None) or getattr(chat, "full_name", None) or str(chat.id)


def _sub_name(sub: Subscription) -> str:
    return sub.title or str(sub.chat_id)


def _when_text(dt: datetime, sub_tz: ZoneInfo, lang: str) -> str:
    local = dt.astimezone(sub_tz)
    return f"{format_date(local.date(), lang)} {local:%H:%M}"


def _schedule(sub: Subscription, lang: str) -> str:
    if sub.frequency == "weekly":
        return _tx("weekly", lang, weekday=WEEKDAYS[normalize_lang(lang)][sub.weekday],
                   at=sub.at, tz=sub.tz)
    return _tx("daily", lang, at=sub.at, tz=sub.tz)


async def _reply(update: Update, text: str) -> None:
    message = update.effective_message
    if message is not None:
        await message.reply_text(
            html.escape(text, quote=False), parse_mode=ParseMode.HTML,
            link_preview_options=LinkPreviewOptions(is_disabled=True),
        )


async def _is_group_admin(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    chat, user, message = update.effective_chat, update.effective_user, update.effective_message
    assert chat is not None
    settings = service_of(context.application).settings
    if user is not None and user.id in getattr(settings, "admin_ids", []):
        return True
    if message is not None and message.sender_chat is not None and (
        message.sender_chat.id == chat.id
    ):
        return True  # an anonymous administrator posting as the group
    if user is None:
        return False
    member = await context.bot.get_chat_member(chat.id, user.id)
    return member.status in (ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR)


def _is_bot_admin(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    user = update.effective_user
    settings = service_of(context.application).settings
    return user is not None and user.id in getattr(settings, "admin_ids", [])


async def _resolve_channel(
    update: Update, context: ContextTypes.DEFAULT_TYPE, target: str, lang: str
) -> Any | None:
    """The channel named in a private chat, if the bot may post there; else explain why."""
    ref: int | str = int(target) if re.fullmatch(r"-?\d+", target) else target
    try:
        chat = await context.bot.get_chat(ref)
    except (BadRequest, Forbidden):
        await _reply(update, _tx("channel_not_found", lang, channel=target))
        return None
    name = _chat_name(chat)
    if chat.type != ChatType.CHANNEL:
        await _reply(update, _tx("not_a_channel", lang, channel=name))
        return None
    try:
        me = await context.bot.get_chat_member(chat.id, context.bot.id)
    except (BadRequest, Forbidden):
        await _reply(update, _tx("channel_not_admin", lang, channel=name))
        return None
    if me.status != ChatMemberStatus.ADMINISTRATOR:
        await _reply(update, _tx("channel_not_admin", lang, channel=name))
        return None
    if not getattr(me, "can_post_messages", False):
        await _reply(update, _tx("channel_cannot_post", lang, channel=name))
        return None
    return chat


async def _target_chat(
    update: Update, context: ContextTypes.DEFAULT_TYPE, target: str | None, lang: str,
    *, for_change: bool, check_channel: bool = True,
) -> tuple[int, str, str] | None:
    """(chat id, type, name) the command is about, after the permission checks."""
    chat = update.effective_chat
    assert chat is not None
    if chat.type == ChatType.PRIVATE:
        if target is None:
            return chat.id, chat.type, _chat_name(chat)
        if not _is_bot_admin(update, context):
            await _reply(update, _tx("need_bot_admin", lang))
            return None
        if not check_channel:
            svc = service_of(context.application)
            for sub in await svc._db().subscriptions():
                if target.lower() in (sub.title.lower(), str(sub.chat_id)):
                    return sub.chat_id, sub.chat_type, sub.title
        found = await _resolve_channel(update, context, target, lang)
        if found is None:
            return None
        return found.id, found.type, _chat_name(found)
    if target is not None:
        await _reply(update, _tx("channel_only_private", lang))
        return None
    if for_change:
        try:
            allowed = await _is_group_admin(update, context)
        except TelegramError as exc:
            await _reply(update, _tx("admin_check_failed", lang, error=str(exc)))
            return None
        if not allowed:
            await _reply(update, _tx("need_group_admin", lang))
            return None
    return chat.id, chat.type, _chat_name(chat)


async def subscribe_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = service_of(context.application)
    lang = _lang(update)
    try:
        args = parse_subscribe(context.args or [], lang)
    except UsageError as exc:
        await _reply(update, f"{exc}\n{_tx('usage', lang)}")
        return
    target = await _target_chat(update, context, args.target, lang, for_change=True)
    if target is None:
        return
    chat_id, chat_type, name = target
    db = svc._db()
    now = svc.clock.now()
    old = await db.subscription(chat_id)
    user = update.effective_user
    sub = Subscription(
        chat_id=chat_id,
        chat_type=str(chat_type),
        title=name,
        at=args.at or str(getattr(svc.settings, "digest_default_time", "08:00")),
        frequency=args.frequency,
        weekday=args.weekday,
        tz=args.tz or str(getattr(svc.settings, "timezone", "UTC")),
        topic=args.topic,
        lang=args.lang or lang,
        send_empty=args.send_empty,
        created_by=user.id if user else None,
        created_at=old.created_at if old else now,
        watermark=old.watermark if old else None,
        last_sent=old.last_sent if old else None,
    )
    # The slot that has just passed is not owed: the first digest is the next one.
    sub.last_slot = sub.latest_slot(now)
    await db.upsert(sub)
    log.info("digest subscribed", extra={"kv": {
        "chat": chat_id, "type": chat_type, "at": sub.at, "frequency": sub.frequency,
        "tz": sub.tz, "topic": sub.topic or "", "by": sub.created_by}})
    topic = _tx("topic", lang, topic=sub.topic) if sub.topic else ""
    text = _tx("subscribed", lang, chat=name, schedule=_schedule(sub, lang), topic=topic,
               next=_when_text(sub.next_slot(now), sub.zone, lang))
    if sub.send_empty:
        text += _tx("empty_on", lang)
    await _reply(update, text)


async def unsubscribe_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = service_of(context.application)
    lang = _lang(update)
    args = context.args or []
    target = await _target_chat(
        update, context, args[0] if args else None, lang, for_change=True, check_channel=False
    )
    if target is None:
        return
    chat_id, _, name = target
    removed = await svc.remove(chat_id)
    if removed:
        log.info("digest unsubscribed", extra={"kv": {"chat": chat_id}})
    await _reply(update, _tx("unsubscribed" if removed else "not_subscribed", lang, chat=name))


async def digest_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A preview: built like the scheduled one but neither persisted nor moving the
    watermark."""
    svc = service_of(context.application)
    lang = _lang(update)
    args = context.args or []
    target = await _target_chat(
        update, context, args[0] if args else None, lang, for_change=False, check_channel=False
    )
    if target is None:
        return
    chat_id, chat_type, name = target
    now = svc.clock.now()
    sub = await svc._db().subscription(chat_id) or Subscription(
        chat_id=chat_id, chat_type=str(chat_type), title=name,
        at=str(getattr(svc.settings, "digest_default_time", "08:00")), frequency="daily",
        weekday=0, tz=str(getattr(svc.settings, "timezone", "UTC")), topic=None, lang=lang,
        send_empty=False,
    )
    try:
        digest = await svc.build(sub, now)
    except Exception:
        log.exception("digest preview failed", extra={"kv": {"chat": chat_id}})
        await _reply(update, _tx("preview_failed", lang))
        return
    messages = svc.render(digest, sub, preview=True, empty_line=False)
    if not messages:
        await _reply(update, _tx("nothing_new", lang))
        return
    message = update.effective_message
    assert message is not None
    for m in messages:
        await message.reply_text(
            m.html, parse_mode=ParseMode.HTML,
            link_preview_options=LinkPreviewOptions(is_disabled=True),
            do_quote=False,
        )


async def subscriptions_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = service_of(context.application)
    lang = _lang(update)
    chat = update.effective_chat
    assert chat is not None
    db = svc._db()
    if chat.type == ChatType.PRIVATE and _is_bot_admin(update, context):
        subs = await db.subscriptions()
    else:
        one = await db.subscription(chat.id)
        subs = [one] if one else []
    if not subs:
        await _reply(update, _tx("list_none", lang))
        return
    now = svc.clock.now()
    lines = [_tx("list_header", lang)]
    for sub in subs:
        topic = _tx("topic", lang, topic=sub.topic) if sub.topic else ""
        last = (
            _tx("list_last", lang, last=_when_text(sub.last_sent, sub.zone, lang))
            if sub.last_sent else ""
        )
        lines.append(_tx(
            "list_item", lang, chat=_sub_name(sub), schedule=_schedule(sub, lang), topic=topic,
            next=_when_text(sub.next_slot(now), sub.zone, lang), last=last,
        ))
    await _reply(update, "\n".join(lines))


async def bot_membership(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The bot was removed from a chat: its digest goes at once, not at the next 403."""
    change = update.my_chat_member
    if change is None:
        return
    if change.new_chat_member.status in (ChatMemberStatus.LEFT, ChatMemberStatus.BANNED):
        svc = service_of(context.application)
        if svc.store is not None and await svc.remove(change.chat.id):
            log.warning("bot removed from chat: digest unsubscribed", extra={"kv": {
                "chat": change.chat.id, "status": change.new_chat_member.status}})


def _command(callback: Callable[[Update, ContextTypes.DEFAULT_TYPE], Awaitable[None]]) -> Any:
    """Run a digest command and end the update there, even when it fails: the bot's own
    handlers (an "unknown command" help, a catch-all) must never answer it a second time."""

    @functools.wraps(callback)
    async def run(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        try:
            await callback(update, context)
        except Exception:
            chat = update.effective_chat
            log.exception("digest command failed", extra={"kv": {
                "command": callback.__name__, "chat": chat.id if chat else None}})
            with contextlib.suppress(TelegramError):
                await _reply(update, _tx("error", _lang(update)))
        raise ApplicationHandlerStop

    return run


# -- wiring -----------------------------------------------------------------------------------


def _default_retriever(application: Application) -> RetrieverProvider:
    def provide() -> Any:
        services = application.bot_data.get("services")
        if services is None:
            raise RuntimeError("the bot's services are not open yet")
        return services.retriever

    return provide


def register_digest_handlers(
    application: Application,
    settings: Any,
    *,
    retriever: RetrieverProvider | None = None,
    clock: Clock | None = None,
    tick_seconds: float = 30.0,
    max_len: int | None = None,
    per_minute: int = TELEGRAM_GROUP_RATE,
) -> DigestService:
    """Add /subscribe, /unsubscribe, /digest, /subscriptions and the membership watcher.

    They run in handler group -1 and stop the update there, so the bot's own fallback for
    unknown commands never answers them too. ``retriever`` defaults to the bot's
    ``bot_data["services"].retriever``.
    """
    svc = DigestService(
        application, settings, retriever=retriever or _default_retriever(application),
        clock=clock, tick_seconds=tick_seconds, max_len=max_len, per_minute=per_minute,
    )
    application.bot_data[KEY] = svc
    new_message = filters.UpdateType.MESSAGE & ~filters.ChatType.CHANNEL
    for name, callback in (
        ("subscribe", subscribe_command),
        ("unsubscribe", unsubscribe_command),
        ("digest", digest_command),
        ("subscriptions", subscriptions_command),
    ):
        application.add_handler(
            CommandHandler(name, _command(callback), filters=new_message), group=HANDLER_GROUP
        )
    application.add_handler(
        ChatMemberHandler(bot_membership, ChatMemberHandler.MY_CHAT_MEMBER), group=HANDLER_GROUP
    )
    return svc


async def start_digest_scheduler(application: Application) -> None:
    """Open the state, arm the tick and catch up (call in ``post_init``)."""
    await service_of(application).start()


async def stop_digest_scheduler(application: Application) -> None:
    """Finish in-flight messages and close the state (call in ``post_stop``)."""
    svc: DigestService | None = application.bot_data.get(KEY)
    if svc is not None:
        await svc.stop()


__all__ = [
    "DIGEST_COMMANDS",
    "Clock",
    "DigestService",
    "DigestStore",
    "Subscription",
    "SystemClock",
    "parse_subscribe",
    "register_digest_handlers",
    "start_digest_scheduler",
    "stop_digest_scheduler",
]
