"""Everything the handlers use, opened once when the bot starts and closed when it stops.

Lives in ``application.bot_data["services"]`` (opened in ``post_init``, closed in
``post_shutdown``), so handlers stay thin and tests can reach the same objects.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any
from zoneinfo import ZoneInfo

from telegram.ext import Application, ContextTypes

from bot import retention
from bot.alerts.delivery import AlertOptions, AlertService
from bot.digests.delivery import DigestOptions, DigestService
from bot.live import LiveNews
from bot.metrics import BotMetrics
from bot.ratelimit import UserRateLimiter
from bot.reindex import Reindexer
from bot.settings import BotSettings
from bot.state import BotState, Page, QuestionLog, new_page_id
from index.embed import Embedder
from index.embed.process import ProcessEmbedder
from index.models import Answer
from index.render.telegram_html import render_telegram_html
from index.runtime import NO_SAMPLE, Services, build_retriever, open_services
from index.search.retrieval import Retriever

log = logging.getLogger(__name__)

KEY = "services"


@dataclass(slots=True)
class Reply:
    """A rendered answer: the messages to send and the page the buttons refer to."""

    answer: Answer
    messages: list[str]
    page: Page | None  # None when nothing was found (no buttons then)
    has_more: bool
    started: float


@dataclass
class BotServices:
    settings: BotSettings
    index: Services
    retriever: Retriever
    state: BotState
    limiter: UserRateLimiter
    inline_limiter: UserRateLimiter
    reindexer: Reindexer
    digests: DigestService
    alerts: AlertService
    tz: ZoneInfo
    encoder: ProcessEmbedder | None = None  # the child process this object started
    live: LiveNews | None = None  # sources read in the background, channel posts (bot/live.py)
    just_read: list[str] = field(default_factory=list)  # sources indexed at start-up
    metrics: BotMetrics = field(default_factory=BotMetrics)  # the Application's (bot/metrics.py)
    # /forgetme: each returns the rows it deleted of a user id (bot/alerts adds its own).
    forgetters: dict[str, Callable[[int], Awaitable[int]]] = field(default_factory=dict)
    _overview: tuple[float, dict[str, Any], dict[str, Any]] | None = field(default=None)

    @classmethod
    async def open(
        cls,
        settings: BotSettings,
        embedder: Embedder | None = None,
        *,
        application: Application,
        digest_options: DigestOptions | None = None,
        alert_options: AlertOptions | None = None,
        metrics: BotMetrics | None = None,
    ) -> BotServices:
        """Open everything; the digest state is opened too, its scheduler started by the
        caller (``post_init``, once the command menu is set)."""
        tz = ZoneInfo(settings.timezone)
        # Digests and alerts read whatever retriever the services hold when they need one;
        # the alerts' ``open`` already does, before the services exist: the first one then.
        opened: list[BotServices] = []

        def current_retriever() -> Retriever:
            return opened[0].retriever if opened else retriever

        digests = DigestService(application, settings, retriever=current_retriever,
                                options=digest_options)
        alerts = AlertService(application, settings, retriever=current_retriever,
                              options=alert_options)
        child: ProcessEmbedder | None = None
        if embedder is None and settings.encoder_process:
            child = ProcessEmbedder(settings)
            await asyncio.to_thread(child.start)  # the first question need not wait for it
            embedder = child
        index = await open_services(settings, embedder=embedder)
        just_read: list[str] = []
        try:
            dropped = await index.store.get_meta("corpus") == NO_SAMPLE
            if await index.is_empty() and (settings.sources or not dropped):
                log.info("the store is empty: indexing the built-in sample before serving")
                report = await index.index()
                # Sources read whole are next due one interval from now; one that failed
                # (a feed that did not answer) is tried again at once, in the background.
                unread = {e.origin for e in report.failed}
                just_read = [n for n, path in settings.sources.items() if path not in unread]
                log.info("sample indexed", extra={"kv": {"added": report.added,
                                                         "seconds": round(report.seconds, 1)}})
            vectors = await index.vectors()
            retriever = build_retriever(settings, index.store, index.embedder, vectors, tz=tz)
            state = await BotState.open(settings.bot_state_path, tz)
            try:
                await digests.open()
                await alerts.open()
            except BaseException:
                await digests.close()
                await state.close()
                raise
        except BaseException:
            await index.close()
            if child is not None:
                child.close()
            raise
        self = cls(
            settings=settings,
            index=index,
            retriever=retriever,
            state=state,
            limiter=UserRateLimiter(settings.user_rate_limit),
            # Inline queries arrive while the user types: a looser budget of their own.
            inline_limiter=UserRateLimiter(max(30, settings.user_rate_limit * 3)
                                           if settings.user_rate_limit > 0 else 0),
            reindexer=Reindexer(settings, index.embedder, vectors=vectors),
            digests=digests,
            alerts=alerts,
            tz=tz,
            encoder=child,
            live=LiveNews(settings, index.embedder, vectors, tz),
            just_read=just_read,
            metrics=metrics or BotMetrics(),
        )
        self.forgetters["digests"] = digests.forget_user
        self.forgetters["alerts"] = alerts.forget_user
        self.metrics.watch_memory_copy(lambda: self.retriever.memory.status())
        self.reindexer.on_done = self.after_reindex
        opened.append(self)
        retriever.keep_vectors_in_memory()  # in the background: answers go on meanwhile
        return self

    async def close(self) -> None:
        if self.live is not None:
            await self.live.stop()
        await self.digests.close()
        await self.alerts.close()
        await self.retriever.aclose()
        await self.reindexer.close()
        await self.state.close()
        await self.index.close()
        if self.encoder is not None:
            self.encoder.close()

    # -- answers ----------------------------------------------------------------------------

    async def reply(
        self,
        question: str,
        lang: str,
        *,
        offset: int = 0,
        chat_id: int | None = None,
        user_id: int | None = None,
        started: float | None = None,
    ) -> Reply:
        """Retrieve and render one page of passages; the page is saved so "More" can go on."""
        started = time.perf_counter() if started is None else started
        k = self.settings.answer_k
        # One passage beyond the page: "More" is offered only when a next passage has
        # earned its place (index/search/padding.py), not merely because this page is full.
        answer = await self.retriever.answer(question, k=k + 1, offset=offset)
        has_more = len(answer.hits) > k
        if has_more:
            answer = replace(answer, hits=answer.hits[:k])
        messages = render_telegram_html(answer, lang=lang, start_index=offset + 1, tz=self.tz)
        page = None
        if answer.hits:
            page = Page(new_page_id(), chat_id, user_id, lang, question, offset, k,
                        [h.chunk_id or h.article_id for h in answer.hits])
            await self.state.save_page(page)
        return Reply(answer, messages, page, has_more, started)

    async def inline(self, question: str, *, offset: int, limit: int) -> tuple[Answer, bool]:
        """Up to ``limit`` passages from ``offset``, and whether another one earned its place
        (so a next page is offered only when it will not be empty or padding)."""
        answer = await self.retriever.answer(question, k=limit + 1, offset=offset)
        if len(answer.hits) <= limit:
            return answer, False
        return replace(answer, hits=answer.hits[:limit]), True

    async def log_question(
        self, reply_or_answer: Reply | Answer, *, kind: str, lang: str, user_id: int | None,
        chat_id: int | None, chat_type: str | None, started: float,
    ) -> float:
        answer = reply_or_answer.answer if isinstance(reply_or_answer, Reply) else reply_or_answer
        latency = (time.perf_counter() - started) * 1000
        self.metrics.answered(kind, latency / 1000, len(answer.hits))
        await self.state.log_question(QuestionLog(
            user_id, chat_id, chat_type, kind, lang, answer.question, len(answer.hits), latency,
        ))
        log.info("answered", extra={"kv": {
            "kind": kind, "user": user_id, "chat": chat_id, "hits": len(answer.hits),
            "latency_ms": round(latency, 1),
        }})
        return latency

    async def record_feedback(self, page: Page, user_id: int, vote: int) -> None:
        await self.state.record_feedback(page, user_id, vote)
        self.metrics.voted(vote)

    # -- operations -------------------------------------------------------------------------

    async def start_retention(self, application: Application) -> dict[str, int]:
        """QUESTION_LOG_DAYS: purge now and daily (bot/retention.py)."""
        return await retention.start(application, self)

    async def forget_user(self, user_id: int) -> dict[str, int]:
        """/forgetme: every row keyed by ``user_id``, by kind (questions, feedback, pages,
        digests and whatever else registered in :attr:`forgetters`)."""
        deleted = await self.state.forget_user(user_id)
        for name, forget in self.forgetters.items():
            deleted[name] = await forget(user_id)
        log.info("user data deleted on request", extra={"kv": {"user": user_id, **deleted}})
        return deleted

    async def probe_store(self) -> None:
        """A read on the open connections (the health check; raises if it fails)."""
        await self.index.store.get_meta("schema_version")
        await self.state.probe()

    # -- corpus facts -----------------------------------------------------------------------

    async def overview(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Counts and overview for /start, cached a minute: they scan whole tables."""
        now = time.monotonic()
        if self._overview is None or now - self._overview[0] > 60:
            counts = await self.index.store.counts()
            overview = await self.index.store.corpus_overview()
            self._overview = (now, counts, overview)
        return self._overview[1], self._overview[2]

    async def after_reindex(self) -> None:
        """The archive changed (a live poll, channel posts, /reindex): answers read it at
        once, and its new articles are matched against the follows."""
        self.retriever.invalidate()
        self._overview = None
        self.alerts.notify()

    def is_admin(self, user_id: int | None) -> bool:
        return user_id is not None and user_id in self.settings.admin_ids


def services_of(context: ContextTypes.DEFAULT_TYPE) -> BotServices:
    return context.application.bot_data[KEY]  # type: ignore[no-any-return]
