"""Deliveries that keep failing: told once to the bot's admins, listed by ``/stats``.

A scheduled delivery (a digest today, a topic alert tomorrow) is retried by its owner until
it goes through; before this, a streak of failures only reached the log. The owner now calls
:meth:`DeliveryFailures.failed` after each failed pass and :meth:`DeliveryFailures.succeeded`
after a good one. The rules:

- a delivery is one ``(kind, chat_id, ref)``: ``kind`` names the owner ("digest"), ``ref``
  tells apart several deliveries of one kind to one chat ("" when there is one);
- its streak starts at the first failure and ends at the next success, which deletes it:
  a later failure starts a new streak, reported again;
- the admins (``ADMIN_IDS``, in private) are told once per streak, when it reaches
  ``DELIVERY_FAILURE_NOTICE_AFTER`` consecutive failed passes (3 by default: a failure that
  the very next try cures, say while the index is being swapped, is not worth a message);
- the streak and its "reported" mark live in the bot's SQLite, so a restart neither forgets
  the failure nor announces it again. The mark is written *before* the notice is sent, as
  with digests: a crash while sending loses the notice rather than repeating it;
- an admin who cannot be reached (blocked the bot, never started it) is logged and skipped;
  the notice is not tried again for that streak, so a dead admin chat costs one request per
  streak, not one per retry.

The reason shown is the exception's class and message, one line, cut short, with every
secret :func:`bot.logs.redact` knows (the bot token above all) removed; the notice and the
``/stats`` lines escape it for Telegram HTML.

The table sits in the bot's state file but on its own connection: the digest store holds
long transactions on its connection, and a failure written from inside one would share its
fate. Several owners share one instance (``application.bot_data["delivery_failures"]``);
each takes it with :meth:`acquire` and gives it back with :meth:`release`, and the last
release closes the connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import aiosqlite
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import Application

from bot import texts
from bot.logs import redact
from bot.migrations import BOT_MIGRATIONS
from bot.settings import BotSettings
from index.render.i18n import date_prepositions, format_date, normalize_lang
from index.storage.sqlite import connect_sqlite, migrate

log = logging.getLogger(__name__)

KEY = "delivery_failures"
MAX_REASON = 300  # characters of the reason in a notice
MAX_REASON_LISTED = 160  # and in a /stats line
MAX_TITLE = 128  # Telegram's own limit on chat titles
MAX_WHAT = 300
MAX_LISTED_CHARS = 3000  # the /stats section, so the whole answer stays under 4096
NOTICE_LANGS = ("en", "it")


# An owner's description of one of its deliveries: (chat title, what, by language), or None
# when the delivery is gone.
Describe = Callable[[], Awaitable[tuple[str, Mapping[str, str]] | None]]

_COLS = "kind, chat_id, ref, chat_title, what, since, last_at, attempts, reason, reported_at"


@dataclass(frozen=True, slots=True)
class DeliveryFailure:
    """One delivery's current streak of failures."""

    kind: str
    chat_id: int
    ref: str
    chat_title: str
    what: Mapping[str, str]  # language → what is being delivered, e.g. the digest's schedule
    since: datetime
    last_at: datetime
    attempts: int
    reason: str
    reported_at: datetime | None

    def what_in(self, lang: str) -> str:
        return self.what.get(normalize_lang(lang)) or self.what.get("en") or self.kind

    @property
    def chat_name(self) -> str:
        return f"{self.chat_title} ({self.chat_id})" if self.chat_title else str(self.chat_id)


def describe_error(error: BaseException | str) -> str:
    """``BadRequest: Chat not found``: one line, no secret, at most :data:`MAX_REASON`."""
    if isinstance(error, BaseException):
        message = str(error).strip()
        text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    else:
        text = error
    return _cut(" ".join(redact(text).split()), MAX_REASON)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _row(row: sqlite3.Row) -> DeliveryFailure:
    return DeliveryFailure(
        kind=row["kind"], chat_id=row["chat_id"], ref=row["ref"], chat_title=row["chat_title"],
        what=json.loads(row["what"] or "{}"), since=datetime.fromisoformat(row["since"]),
        last_at=datetime.fromisoformat(row["last_at"]), attempts=row["attempts"],
        reason=row["reason"],
        reported_at=datetime.fromisoformat(row["reported_at"]) if row["reported_at"] else None,
    )


def _when(dt: datetime, tz: ZoneInfo, lang: str) -> str:
    local = dt.astimezone(tz)
    return f"{format_date(local.date(), lang)} {local:%H:%M}"


def notice_html(failure: DeliveryFailure, tz: ZoneInfo) -> str:
    """The admins' notice, in English and Italian: the bot does not know an admin's language
    (it only sees it on the updates they send), and a notice nobody can read helps nobody."""
    return "\n\n".join(
        texts.t(
            "delivery_failing_notice", lang, what=_cut(failure.what_in(lang), MAX_WHAT),
            chat=_cut(failure.chat_name, MAX_TITLE + 24), attempts=failure.attempts,
            since=_when(failure.since, tz, lang), reason=_cut(failure.reason, MAX_REASON),
            p_from=date_prepositions(_when(failure.since, tz, lang))["p_from"],
        )
        for lang in NOTICE_LANGS
    )


def failures_html(failures: Sequence[DeliveryFailure], lang: str, tz: ZoneInfo) -> str:
    """The ``/stats`` section: every failing delivery, oldest streak first, cut to fit."""
    if not failures:
        return texts.t("stats_failing_none", lang)
    lines = [texts.t("stats_failing_header", lang, n=len(failures))]
    used = len(lines[0])
    for i, f in enumerate(failures):
        line = texts.t(
            "stats_failing_item", lang, chat=_cut(f.chat_name, MAX_TITLE + 24),
            what=_cut(f.what_in(lang), MAX_WHAT), since=_when(f.since, tz, lang),
            p_from=date_prepositions(_when(f.since, tz, lang))["p_from"],
            attempts=f.attempts, attempts_word=texts.noun(f.attempts, "attempt", lang),
            reason=_cut(f.reason, MAX_REASON_LISTED),
        )
        if used + len(line) > MAX_LISTED_CHARS:
            lines.append(texts.t("stats_failing_more", lang, n=len(failures) - i))
            break
        lines.append(line)
        used += len(line) + 1
    return "\n".join(lines)


class DeliveryFailures:
    """The ``delivery_failures`` table and the admins' notices; see the module docstring."""

    def __init__(self, application: Application, settings: BotSettings) -> None:
        self.application = application
        self.settings = settings
        self.notice_after = max(1, settings.delivery_failure_notice_after)
        self.tz = ZoneInfo(settings.timezone)
        self._db: aiosqlite.Connection | None = None
        self._users = 0
        self._lock = asyncio.Lock()

    # lifecycle

    async def acquire(self) -> None:
        async with self._lock:
            if self._db is None:
                db = await connect_sqlite(self.settings.bot_state_path)
                try:
                    await migrate(db, BOT_MIGRATIONS, label=str(self.settings.bot_state_path))
                except BaseException:
                    await db.close()
                    raise
                self._db = db
            self._users += 1

    async def release(self) -> None:
        async with self._lock:
            self._users = max(0, self._users - 1)
            if self._users == 0 and self._db is not None:
                await self._db.close()
                self._db = None

    @property
    def is_open(self) -> bool:
        return self._db is not None

    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("the delivery failure log is not open")
        return self._db

    # the owners' side

    async def failed(
        self, kind: str, chat_id: int, ref: str = "", *, chat_title: str,
        what: Mapping[str, str], error: BaseException | str, now: datetime,
    ) -> DeliveryFailure:
        """Count one failed pass; tell the admins if this streak has just become worth it."""
        reason = describe_error(error)
        async with self._lock:
            db = self._conn()
            await db.execute(
                f"INSERT INTO delivery_failures({_COLS}) VALUES(?,?,?,?,?,?,?,1,?,NULL)"
                " ON CONFLICT(kind, chat_id, ref) DO UPDATE SET"
                " chat_title=excluded.chat_title, what=excluded.what,"
                " last_at=excluded.last_at, attempts=attempts+1, reason=excluded.reason",
                (kind, chat_id, ref, chat_title, json.dumps(dict(what), ensure_ascii=False),
                 now.isoformat(), now.isoformat(), reason),
            )
            failure = await self._one(kind, chat_id, ref)
            assert failure is not None
            due = failure.reported_at is None and failure.attempts >= self.notice_after
            if due:
                await db.execute(
                    "UPDATE delivery_failures SET reported_at=? WHERE kind=? AND chat_id=?"
                    " AND ref=?", (now.isoformat(), kind, chat_id, ref),
                )
        if due:
            await self._tell_admins(failure)
        return failure

    async def succeeded(self, kind: str, chat_id: int, ref: str = "") -> bool:
        """The delivery went through: its streak (if any) ends. True if there was one."""
        async with self._lock:
            cur = await self._conn().execute(
                "DELETE FROM delivery_failures WHERE kind=? AND chat_id=? AND ref=?",
                (kind, chat_id, ref),
            )
        if cur.rowcount:
            log.info("failing delivery recovered", extra={"kv": {
                "kind": kind, "chat": chat_id, "ref": ref}})
        return bool(cur.rowcount)

    async def forget(self, kind: str, chat_id: int) -> None:
        """The deliveries themselves are gone (unsubscribed, bot removed): nothing to list."""
        async with self._lock:
            await self._conn().execute(
                "DELETE FROM delivery_failures WHERE kind=? AND chat_id=?", (kind, chat_id)
            )

    async def migrate(self, old: int, new: int) -> None:
        """A group became a supergroup: its streaks follow it to the new id."""
        async with self._lock:
            await self._conn().execute(
                "UPDATE OR REPLACE delivery_failures SET chat_id=? WHERE chat_id=?", (new, old)
            )

    async def record(
        self, kind: str, chat_id: int, describe: Describe, *, error: BaseException | str,
        now: datetime,
    ) -> None:
        """An owner's failed pass, in the owner's words: ``describe`` gives the chat's title
        and what is delivered there, or None once the delivery no longer exists (nothing to
        count). Never raises: the bookkeeping of a failure must not become a second one."""
        try:
            described = await describe()
            if described is None:
                return
            title, what = described
            await self.failed(kind, chat_id, chat_title=title, what=what, error=error, now=now)
            if await describe() is None:
                # Removed while this was written: its owner forgot the streak too early.
                await self.forget(kind, chat_id)
        except Exception:
            log.exception("could not record a failing delivery", extra={"kv": {
                "kind": kind, "chat": chat_id}})

    async def clear(self, kind: str, chat_id: int) -> None:
        """:meth:`succeeded` for owners that must not fail on it (it never raises)."""
        try:
            await self.succeeded(kind, chat_id)
        except Exception:
            log.exception("could not clear a failing delivery", extra={"kv": {
                "kind": kind, "chat": chat_id}})

    # the admins' side

    async def current(self) -> list[DeliveryFailure]:
        async with self._lock, self._conn().execute(
            f"SELECT {_COLS} FROM delivery_failures ORDER BY since, chat_id"
        ) as cur:
            return [_row(r) for r in await cur.fetchall()]

    async def _one(self, kind: str, chat_id: int, ref: str) -> DeliveryFailure | None:
        async with self._conn().execute(
            f"SELECT {_COLS} FROM delivery_failures WHERE kind=? AND chat_id=? AND ref=?",
            (kind, chat_id, ref),
        ) as cur:
            row = await cur.fetchone()
        return _row(row) if row else None

    async def _tell_admins(self, failure: DeliveryFailure) -> None:
        admins = list(self.settings.admin_ids)
        kv = {"kind": failure.kind, "chat": failure.chat_id, "ref": failure.ref,
              "attempts": failure.attempts, "reason": failure.reason}
        if not admins:
            log.warning("delivery keeps failing; no ADMIN_IDS to tell", extra={"kv": kv})
            return
        text = notice_html(failure, self.tz)
        told = 0
        for admin_id in admins:
            try:
                await self.application.bot.send_message(
                    admin_id, text, parse_mode=ParseMode.HTML,
                )
                told += 1
            except TelegramError as exc:
                log.warning("could not tell an admin about a failing delivery", extra={"kv": {
                    "admin": admin_id, "chat": failure.chat_id,
                    "error": f"{type(exc).__name__}: {exc}"}})
        log.warning("delivery keeps failing; admins told", extra={"kv": kv | {"told": told}})


def delivery_failures(application: Application, settings: BotSettings) -> DeliveryFailures:
    """The application's shared instance, made on first use (take it with ``acquire``)."""
    found = application.bot_data.get(KEY)
    if isinstance(found, DeliveryFailures):
        return found
    created = DeliveryFailures(application, settings)
    application.bot_data[KEY] = created
    return created


async def failing_deliveries(application: Application) -> list[DeliveryFailure]:
    """What ``/stats`` lists; nothing when no owner has opened the log."""
    found = application.bot_data.get(KEY)
    if not isinstance(found, DeliveryFailures) or not found.is_open:
        return []
    return await found.current()


__all__ = [
    "DeliveryFailure",
    "DeliveryFailures",
    "delivery_failures",
    "describe_error",
    "failing_deliveries",
    "failures_html",
    "notice_html",
]
