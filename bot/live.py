"""Live news in the bot: sources re-read in the background, channel posts as articles, /sources.

Owned by :class:`bot.services.BotServices` (``services.live``): built when the services open,
started in ``post_init`` (it needs the bot, to tell admins about failing sources), stopped in
``post_stop`` and again, if need be, when the services close.

- The scheduled sources run in :class:`index.ingest.live.LiveIndexer`; each write run goes
  through a fresh index connection sharing the bot's embedder and Chroma client, as ``/reindex``
  does, and after a run that changed the store the retriever is told, so new articles are
  answerable at once, without a command.
- ``channel_post`` / ``edited_channel_post`` of a channel in ``TELEGRAM_CHANNEL_SOURCES``
  (the bot must be an administrator there to receive them) become articles
  (index/ingest/telegram.py), queued in the ledger and indexed a second later in a small batch.
  Telegram tells bots nothing about deleted posts: they stay in the archive.
- A source failing ``SOURCE_ALERT_FAILURES`` times in a row is reported once to every admin
  (in the language of their last question, English otherwise), and once when it recovers.
- At start-up every channel is checked with ``getChatMember``: Telegram sends channel posts
  only to administrators and says nothing when a bot is not one, so a channel the bot cannot
  read would otherwise just look quiet. What is wrong is logged and shown in ``/sources``.

What it says is in bot/texts/sources.py (``src_*`` keys of :func:`bot.texts.t`); its handlers
are ``channel_post`` in bot/handlers.py and ``/sources`` in bot/admin_handlers.py.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from telegram import Bot, Chat, ChatMember, Update
from telegram.error import BadRequest, Forbidden, TelegramError

from bot import texts
from bot.settings import BotSettings
from index.embed import Embedder
from index.ingest.live import LiveIndexer
from index.ingest.live_writers import services_writer
from index.ingest.polls import PollResult, source_kind
from index.ingest.telegram import channel_post_article
from index.render.i18n import format_date
from index.storage.sources import SourceHealth
from index.storage.vectors import VectorStore

if TYPE_CHECKING:
    from bot.services import BotServices

log = logging.getLogger(__name__)

MAX_MESSAGE = 3900  # visible characters of /sources, under Telegram's 4096
MAX_REASON = 160


@dataclass(frozen=True, slots=True)
class ChannelProblem:
    """Why the bot will not receive a channel's posts, found at start-up."""

    code: str  # "not_admin" (status: what it is there), "not_found", "unchecked"
    detail: str


def span(seconds: float | None, lang: str) -> str:
    """``75`` → ``1 min``, ``7200`` → ``2 h``: how long ago, how long until."""
    s = max(0.0, seconds or 0.0)
    if 0 < s < 1:
        return texts.t("src_ago_s", lang, n=round(s, 1))
    if s < 90:
        return texts.t("src_ago_s", lang, n=round(s))
    if s < 90 * 60:
        return texts.t("src_ago_m", lang, n=round(s / 60))
    if s < 36 * 3600:
        return texts.t("src_ago_h", lang, n=round(s / 3600))
    return texts.t("src_ago_d", lang, n=round(s / 86400))


class LiveNews:
    def __init__(
        self,
        settings: BotSettings,
        embedder: Embedder,
        vectors: VectorStore,
        tz: ZoneInfo,
        *,
        indexer: LiveIndexer | None = None,
    ) -> None:
        self.settings = settings
        self.tz = tz
        self.bot: Bot | None = None
        self.services: BotServices | None = None
        self.indexer = indexer or LiveIndexer(
            settings, services_writer(settings, embedder, vectors),
            on_change=self._changed, on_poll=self._polled,
            on_alert=self._alert if settings.source_alert_admins else None,
        )
        self.channels = list(settings.channel_sources)
        self.channel_problems: dict[str, ChannelProblem] = {}
        self.started = False

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self, bot: Bot, services: BotServices, *, just_read: list[str]) -> None:
        self.bot, self.services = bot, services
        await self.check_channels(bot)
        await self.indexer.start(just_read=just_read)
        self.started = True

    async def check_channels(self, bot: Bot) -> dict[str, ChannelProblem]:
        """Whether the bot administers every channel of ``TELEGRAM_CHANNEL_SOURCES``; what is
        wrong with each other one (never raises: the bot serves anyway)."""
        problems: dict[str, ChannelProblem] = {}
        for entry in self.channels:
            chat_id: int | str = int(entry) if entry.lstrip("-").isdigit() else entry
            try:
                member = await bot.get_chat_member(chat_id, bot.id)
            except BadRequest as exc:  # "chat not found": a wrong name, or a private channel
                problem = ChannelProblem("not_found", exc.message)
            except Forbidden as exc:  # "bot is not a member of the channel chat"
                problem = ChannelProblem("not_admin", exc.message)
            except Exception as exc:  # noqa: BLE001 - a check must not stop the bot
                problem = ChannelProblem("unchecked", f"{type(exc).__name__}: {exc}")
            else:
                if member.status in (ChatMember.ADMINISTRATOR, ChatMember.OWNER):
                    continue
                problem = ChannelProblem("not_admin", member.status)
            problems[entry] = problem
            log.warning("the bot will not receive this channel's posts", extra={"kv": {
                "channel": entry, "problem": problem.code, "detail": problem.detail[:200]}})
        self.channel_problems = problems
        if self.channels and not problems:
            log.info("the bot administers every channel source",
                     extra={"kv": {"channels": len(self.channels)}})
        return problems

    async def stop(self) -> None:
        if self.started or self.indexer.ledger is not None:
            self.started = False
            await self.indexer.stop()

    async def _polled(self, result: PollResult) -> None:
        """Every read of a source, for the metrics (bot/metrics.py)."""
        if self.services is not None:
            report = result.report
            articles = report.added + report.updated if report is not None else 0
            self.services.metrics.polled(result.name, ok=result.ok, at=result.at,
                                         articles=articles)

    async def _changed(self, result: PollResult) -> None:
        if self.services is not None:
            await self.services.after_reindex()

    # -- channel posts ----------------------------------------------------------------------

    def channel_source(self, chat: Chat) -> str | None:
        """The configured entry ``chat`` is (by -100… id or @username), else None."""
        username = (chat.username or "").lower()
        for entry in self.channels:
            if entry == str(chat.id) or (username and entry.lower() == "@" + username):
                return entry
        return None

    async def on_channel_post(self, update: Update) -> None:
        message = update.channel_post or update.edited_channel_post
        if message is None:
            return
        source = self.channel_source(message.chat)
        if source is None:
            log.debug("post of a channel that is not a source", extra={"kv": {
                "chat": message.chat.id}})
            return
        self.channel_problems.pop(source, None)  # a post came: the bot is an admin now
        article = channel_post_article(
            chat_id=message.chat.id, username=message.chat.username, title=message.chat.title,
            message_id=message.message_id, date=message.date,
            text=message.text or message.caption or "", edited=message.edit_date,
        )
        if article is None:
            return  # a photo or a sticker without text
        await self.indexer.submit(source, source, [article])
        log.info("channel post queued", extra={"kv": {
            "source": source, "message": message.message_id,
            "edited": update.edited_channel_post is not None}})

    # -- admins -----------------------------------------------------------------------------

    async def _alert(self, kind: str, health: SourceHealth) -> None:
        bot = self.bot
        if bot is None:
            raise RuntimeError("the bot is not started")
        if kind == "failing":
            log.error("source keeps failing; telling the admins", extra={"kv": {
                "source": health.name, "failures": health.failures,
                "reason": health.last_error}})
        now = time.time()
        sent = 0
        errors: list[str] = []
        for admin in self.settings.admin_ids:
            lang = await self._admin_lang(admin)
            if kind == "failing":
                text = texts.t("src_alert", lang, name=health.name, failures=health.failures,
                               reason=(health.last_error or "?")[:MAX_REASON],
                               wait=span((health.next_attempt or now) - now, lang))
            else:
                text = texts.t("src_recovered", lang, name=health.name, added=health.added_last)
            try:
                await bot.send_message(admin, text)
                sent += 1
            except TelegramError as exc:
                errors.append(str(exc))
                log.warning("could not tell an admin about a source", extra={"kv": {
                    "admin": admin, "source": health.name, "error": str(exc)}})
        if self.settings.admin_ids and not sent:
            raise RuntimeError("no admin could be told: " + "; ".join(errors))

    async def _admin_lang(self, admin: int) -> str:
        """The language of the admin's last question, English when unknown."""
        services = self.services
        if services is None:
            return "en"
        try:
            lang = await services.state.last_question_lang(admin)
        except Exception:  # noqa: BLE001 - a guess at a language is not worth a failure
            return "en"
        return texts.user_lang(lang) if lang else "en"

    # -- reading ----------------------------------------------------------------------------

    async def rows(self) -> list[tuple[str, str, float | None, SourceHealth | None]]:
        """(name, kind, every, health) of every configured source, in configuration order."""
        known = {h.name: h for h in await self.indexer.health()} if self.indexer.ledger else {}
        out: list[tuple[str, str, float | None, SourceHealth | None]] = []
        for name, spec in self.indexer.specs.items():
            h = known.get(name)
            out.append((name, h.kind if h else source_kind(spec.path), spec.every, h))
        for entry in self.channels:
            out.append((entry, "channel", None, known.get(entry)))
        return out

    def _failing(self, rows: list[tuple[str, str, float | None, SourceHealth | None]]) -> int:
        return sum(1 for name, kind, _, h in rows
                   if (h is not None and h.failures > 0)
                   or (kind == "channel" and name in self.channel_problems))

    def flagged(self, health: SourceHealth | None) -> bool:
        return health is not None and health.failures >= self.settings.source_alert_failures

    async def sources_html(self, lang: str, now: float | None = None) -> str:
        now = time.time() if now is None else now
        rows = await self.rows()
        if not rows:
            return texts.t("src_none", lang)
        failing = self._failing(rows)
        head = texts.t("src_title", lang, n=len(rows), failing=failing)
        blocks: list[str] = []
        used = len(head)
        for i, (name, kind, every, h) in enumerate(rows):
            block = self._block(name, kind, every, h, lang, now)
            if used + len(block) + 2 > MAX_MESSAGE:
                blocks.append(texts.t("src_more", lang, n=len(rows) - i))
                break
            blocks.append(block)
            used += len(block) + 2
        return "\n\n".join([head, *blocks])

    def _block(self, name: str, kind: str, every: float | None, h: SourceHealth | None,
               lang: str, now: float) -> str:
        problem = self.channel_problems.get(name) if kind == "channel" else None
        if problem is not None:
            icon = "🔴"
        elif h is None:
            icon = "⏳"
        elif self.flagged(h):
            icon = "🔴"
        elif h.failures:
            icon = "⚠️"
        elif kind != "channel" and not every:
            icon = "⏸"
        else:
            icon = "✅"
        if kind == "channel":
            schedule = texts.t("src_live", lang)
        elif every:
            schedule = texts.t("src_every", lang, span=span(every, lang))
        else:
            schedule = texts.t("src_manual", lang)
        where = _where(h.target if h else "", kind)
        head = f"{icon} <b>{texts.esc(name)}</b> · {texts.t('src_kind_' + kind, lang)}"
        if where:
            head += f" <code>{texts.esc(where)}</code>"
        head += f" · {schedule}"
        if self.flagged(h):
            head += f" · {texts.t('src_flagged', lang)}"
        lines = [head]
        if problem is not None:
            lines.append(_problem_line(problem, lang))
        # Attempted and not finished: a read going on, or a process killed during one.
        if h is not None and h.last_attempt and h.last_attempt > max(
            h.last_success or 0, h.last_error_at or 0
        ):
            lines.append(texts.t("src_unfinished", lang, when=self._when(h.last_attempt, lang),
                                 ago=span(now - h.last_attempt, lang)))
        if h is None or (h.last_success is None and h.last_error is None):
            if problem is None and len(lines) == 1:
                lines.append(texts.t("src_no_posts" if kind == "channel" else "src_never", lang))
            return "\n".join(lines)
        if h.last_success is not None:
            lines.append(texts.t("src_ok_line", lang, when=self._when(h.last_success, lang),
                                 ago=span(now - h.last_success, lang)))
        if h.last_added is not None:
            added = texts.t("src_added", lang, total=h.added_total,
                                 ago=span(now - h.last_added, lang))
        else:
            added = texts.t("src_added_none", lang)
        lag = h.lag(now)
        if lag is not None:
            added = texts.Html(f"{added} · {texts.t('src_newest', lang, lag=span(lag, lang))}")
        lines.append(added)
        if h.not_modified:
            lines.append(texts.t("src_not_modified", lang, n=h.not_modified, polls=h.polls))
        if h.failures and h.last_error:
            when = self._when(h.last_error_at or now, lang)
            lines.append(texts.t("src_error_line", lang, when=when,
                                 reason=h.last_error[:MAX_REASON]))
            if h.next_attempt:
                lines.append(texts.t("src_failing_line", lang, failures=h.failures,
                                     wait=span(h.next_attempt - now, lang)))
        elif h.next_attempt and every:
            lines.append(texts.t("src_due", lang, wait=span(h.next_attempt - now, lang)))
        return "\n".join(lines)

    def _when(self, ts: float, lang: str) -> str:
        moment = datetime.fromtimestamp(ts, UTC).astimezone(self.tz)
        today = datetime.now(self.tz).date()
        clock = moment.strftime("%H:%M")
        return clock if moment.date() == today else f"{format_date(moment.date(), lang)} {clock}"

    async def stats_line(self, lang: str) -> texts.Html | None:
        """One line for /stats: how many sources, how many failing, the last new article."""
        rows = await self.rows()
        if not rows:
            return None
        failing = self._failing(rows)
        added = [h.last_added for *_, h in rows if h is not None and h.last_added is not None]
        when = self._when(max(added), lang) if added else texts.t("src_never_short", lang)
        return texts.t("src_stats_line", lang, n=len(rows), failing=failing, when=when)


def _problem_line(problem: ChannelProblem, lang: str) -> texts.Html:
    detail = problem.detail[:MAX_REASON]
    if problem.code == "not_admin":
        return texts.t("src_ch_not_admin", lang, status=detail)
    if problem.code == "not_found":
        return texts.t("src_ch_not_found", lang, reason=detail)
    return texts.t("src_ch_unchecked", lang, reason=detail)


def _where(target: str, kind: str) -> str:
    """What /sources shows of a target: a feed's host (its URL may hold a key), a path's end."""
    if not target or kind == "channel":
        return ""
    if kind == "feed":
        return urlsplit(target).hostname or ""
    return target if len(target) <= 60 else "…" + target[-59:]
