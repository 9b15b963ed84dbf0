"""Alerts: match each ingested batch against the follows, plan the messages, send them once.

The service is the bot's ``BotServices.alerts`` (:mod:`bot.services`): opened in
``BotServices.open``, started in ``post_init``, stopped in ``post_stop``, closed in
``post_shutdown``. It is told of new articles by ``BotServices.after_reindex`` (every live
poll that changed the store, every batch of channel posts, every ``/reindex``), and a tick
catches what other processes indexed (``newsbot index --watch``) and retries.

New articles are the index's rows of runs after the watermark (the last run whose articles
were all matched) that were never looked at; older than ``max_age`` they are only marked
seen (an archive imported today is not news). Each batch is matched and planned in one
transaction (:meth:`bot.alerts.store.AlertStore.commit_batch`), then every pending message is
sent once (:func:`bot.telegram_send.send_html`) and marked. A crash before the commit
re-matches the batch; after it, the pending messages go out at start-up. A 403 removes the
chat's follows; 429 is waited out; the bot's flood control (bot/ratelimit.py) paces every
send per chat.

A chat gets at most ``ALERTS_PER_HOUR`` story alerts in any hour; beyond, and during
``ALERT_QUIET_HOURS``, stories wait in one summary message per chat, sent when the hour
frees up or the quiet hours end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from telegram.ext import Application, ContextTypes

from bot.alerts import texts
from bot.alerts.matching import Bars, Batch, FollowIndex, follow_terms, load_batch, story_scores
from bot.alerts.planning import Limits, plan_batch
from bot.alerts.quiet import HOUR, QuietHours, parse_quiet_hours
from bot.alerts.store import MEMORY_SIZE, MEMORY_TTL, AlertStore, Follow, Held, Planned
from bot.delivery_failures import DeliveryFailures, delivery_failures
from bot.digests.clock import Clock, SystemClock
from bot.locked_store import sleep_unless_stopping
from bot.metrics import count_delivery
from bot.settings import BotSettings
from bot.telegram_send import send_html
from index.digest.grouping import grouping_params_for
from index.search.retrieval import Retriever
from index.storage.store import Store

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
FAILURE_KIND = "alert"  # this module's deliveries in bot.delivery_failures
MAX_BATCH = 500  # new articles matched per transaction (a big import is sliced)
RetrieverProvider = Callable[[], Retriever]


@dataclass(frozen=True, slots=True)
class AlertOptions:
    """How the service runs; tests pass a clock they move, a fast tick."""

    clock: Clock | None = None
    tick_seconds: float = 60.0
    max_age: timedelta = timedelta(days=2)  # articles published earlier are not alerted
    bars: Bars | None = None  # None: the digests' bars for the index's model


async def new_article_ids(
    store: Store, after_run: int, not_before: int
) -> tuple[list[str], list[str], int]:
    """(fresh ids, too old ids, new watermark) of the articles of runs after ``after_run``.

    The watermark moves only past runs that have finished: a run still writing may add more
    articles under its id (the seen table keeps them from being matched twice meanwhile). An
    index rebuilt from scratch numbers its runs from 1 again: then every article is looked at
    (the seen table and the age limit keep the archive from being alerted again).
    """
    if await store.latest_run_id() < after_run:
        after_run = 0
    rows = await store.articles_after_run(after_run)
    mark = await store.settled_run_id()
    fresh = [a for a, ts in rows if ts >= not_before]
    old = [a for a, ts in rows if ts < not_before]
    return fresh, old, max(after_run, mark)


class AlertService:
    def __init__(
        self,
        application: Application,
        settings: BotSettings,
        *,
        retriever: RetrieverProvider,
        options: AlertOptions | None = None,
    ) -> None:
        options = options or AlertOptions()
        self.application = application
        self.settings = settings
        self._retriever = retriever
        self.clock: Clock = options.clock or SystemClock()
        self.tick_seconds = options.tick_seconds
        self.max_age = options.max_age
        self._bars = options.bars
        self.tz = ZoneInfo(settings.timezone)
        self.quiet: QuietHours | None = (
            parse_quiet_hours(settings.alert_quiet_hours) if settings.alert_quiet_hours else None
        )
        self.store: AlertStore | None = None
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._match_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._job: Any = None
        self._index: FollowIndex | None = None
        # The remembered articles' lead vectors and names, between batches (story_scores),
        # and the follows' memory as committed (read from the state once, then kept in step).
        self._remembered: dict[str, tuple[np.ndarray, list[str]]] = {}
        self._memory: dict[int, list[tuple[datetime, str]]] | None = None
        self.batches = 0  # match-and-send passes run
        self._in_pass = False
        self._batch_done = asyncio.Condition()
        self.failures: DeliveryFailures = delivery_failures(application, settings)

    # -- lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the tables; a first start begins after the archive as it is now."""
        if self.store is None:
            store = await AlertStore.open(self.settings.bot_state_path)
            try:
                await self.failures.acquire()
            except BaseException:
                await store.close()
                raise
            try:
                if await store.watermark() is None:
                    await store.set_watermark(await self.retriever.store.latest_run_id())
            except BaseException:
                await self.failures.release()
                await store.close()
                raise
            self.store = store

    async def start(self) -> None:
        await self.open()
        self._stopping.clear()
        jq = self.application.job_queue
        if jq is not None:
            self._job = jq.run_repeating(
                self._tick_job, interval=self.tick_seconds, first=self.tick_seconds,
                name="newsbot-alerts", job_kwargs={"coalesce": True, "misfire_grace_time": None},
            )
        self._loop = asyncio.create_task(self._run(), name="alerts")
        self._wake.set()  # start-up: match what arrived while down, send what was planned

    async def stop(self) -> None:
        self._stopping.set()
        if self._job is not None:
            with contextlib.suppress(Exception):
                self._job.schedule_removal()
            self._job = None
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None
        tasks = list(self.tasks.values())
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        try:
            await self.stop()
        finally:
            if self.store is not None:
                await self.store.close()
                self.store = None
                await self.failures.release()

    def db(self) -> AlertStore:
        if self.store is None:
            raise RuntimeError("the alert state is not open")
        return self.store

    @property
    def retriever(self) -> Retriever:
        return self._retriever()

    def notify(self) -> None:
        """New articles may be in the index: match them soon (never blocks the caller)."""
        self._wake.set()

    async def _tick_job(self, context: ContextTypes.DEFAULT_TYPE) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            await self._wake.wait()
            self._wake.clear()
            self._in_pass = True
            try:
                await self.match_new()
            except Exception:
                log.exception("alert matching failed; retried at the next batch or tick")
            try:
                await self.deliver_due()
            finally:
                self._in_pass = False
                await self._settle()

    async def _settle(self) -> None:
        async with self._batch_done:
            self.batches += 1
            self._batch_done.notify_all()

    async def settled(self, article_ids: list[str], timeout: float = 60.0) -> None:  # noqa: ASYNC109
        """Until ``article_ids`` were matched and every message that made was handled
        (tests and benchmarks: an event to wait on, not a sleep)."""
        async with asyncio.timeout(timeout), self._batch_done:
            while True:
                done = (self.store is not None and not self._in_pass and not self.tasks
                        and not self._wake.is_set())
                if done and await self.db().seen(article_ids) == set(article_ids):
                    return
                await self._batch_done.wait()

    # -- follows ----------------------------------------------------------------------------

    async def encode(self, words: str) -> tuple[np.ndarray, list[list[str]], list[float]]:
        r = self.retriever
        vector = await r.encoder.encode(words)
        terms, weights = await follow_terms(r.store, words)
        return np.asarray(vector, dtype=np.float32), terms, weights

    async def add(self, follow: Follow) -> int:
        follow_id = await self.db().add_follow(follow)
        self._index = self._memory = None
        return follow_id

    async def remove(self, follow_ids: list[int]) -> int:
        wanted = set(follow_ids)
        chats = {f.chat_id for f in await self.db().follows() if f.id in wanted}
        removed = await self.db().remove_follows(follow_ids)
        self._index = self._memory = None
        for chat_id in chats:
            if not await self.db().follows(chat_id):  # nothing left to fail there
                await self.failures.forget(FAILURE_KIND, chat_id)
        return removed

    async def forget_user(self, user_id: int) -> int:
        removed = await self.db().forget_user(user_id)
        self._index = self._memory = None
        await self.failures.forget(FAILURE_KIND, user_id)
        return removed

    async def remove_chat(self, chat_id: int) -> int:
        removed = await self.db().remove_chat(chat_id)
        self._index = self._memory = None
        await self.failures.forget(FAILURE_KIND, chat_id)
        return removed

    async def follow_index(self) -> FollowIndex:
        """Every follow's vector and keywords in one structure, rebuilt when they change;
        follows encoded by another model (the index was rebuilt) are encoded again."""
        if self._index is None:
            model = self.retriever.embedder.model_id
            follows = await self.db().follows()
            for f in follows:
                if f.model_id != model:
                    f.vector, f.terms, f.weights = await self.encode(f.words)
                    f.model_id = model
                    await self.db().update_encoding(f.id, model, f.vector, f.weights)
            self._index = FollowIndex.build(follows)
        return self._index

    # -- matching ---------------------------------------------------------------------------

    def bars(self) -> Bars:
        return self._bars or Bars.for_model(self.retriever.embedder.model_id)

    async def match_new(self) -> int:
        """Match the articles indexed since the last batch; returns how many messages were
        planned or grown."""
        async with self._match_lock:
            db = self.db()
            r = self.retriever
            now = self.clock.now()
            after = await db.watermark() or 0
            fresh, old, mark = await new_article_ids(
                r.store, after, int((now - self.max_age).timestamp())
            )
            seen = await db.seen(fresh + old)
            fresh = [a for a in fresh if a not in seen]
            if len(fresh) > MAX_BATCH:
                # A large import: matched in slices, the watermark moving after the last.
                fresh, mark, old = fresh[:MAX_BATCH], after, []
                self._wake.set()
            if not fresh:
                if mark != after or old:
                    await db.commit_batch([], [], old, mark, now, texts.summary_html)
                return 0
            index = await self.follow_index()
            planned: list[Planned] = []
            held: list[Held] = []
            learned: list[tuple[int, str]] = []
            if index.follows:
                batch = await load_batch(r.store, r.vectors, fresh)
                params = grouping_params_for(r.embedder.model_id)
                bars = self.bars()
                story = (await self.story_scores(index, batch, now)
                         if bars.story or bars.unlike else None)
                matches, gate = await asyncio.to_thread(index.decide, batch, bars, story)
                learned = [(index.follows[f].id, batch.articles[a].id)
                           for f, rows in matches.items() for a in rows if gate[f, a]]
                planned, held = await plan_batch(
                    r.store, r.vectors, db, index, batch, matches, params,
                    Limits(self.settings.alerts_per_hour, self.quiet, self.tz), now,
                )
            touched = await db.commit_batch(planned, held, fresh + old, mark, now,
                                            texts.summary_html, learned)
            self._learned(learned, now)
            log.info("alerts matched", extra={"kv": {
                "articles": len(fresh), "follows": len(index.follows), "alerts": len(planned),
                "held": len(held)}})
            return len(touched)

    async def story_scores(self, index: FollowIndex, batch: Batch, now: datetime) -> np.ndarray:
        """follows × articles: similarity to the stories each follow alerted lately."""
        r = self.retriever
        if self._memory is None:
            self._memory = await self.db().memory_rows(now - MEMORY_TTL)
        since = now - MEMORY_TTL
        memory = {f: [a for ts, a in rows if ts >= since] for f, rows in self._memory.items()}
        return await story_scores(r.store, r.vectors, index, batch, memory,
                                  grouping_params_for(r.embedder.model_id), self._remembered)

    def _learned(self, learned: list[tuple[int, str]], now: datetime) -> None:
        """The committed memory, mirrored (as AlertStore.commit_batch keeps it)."""
        if self._memory is None or not learned:
            return
        for follow_id, article_id in learned:
            rows = [(ts, a) for ts, a in self._memory.get(follow_id, []) if a != article_id]
            self._memory[follow_id] = [(now, article_id), *rows]
        for follow_id in {f for f, _ in learned}:
            rows = self._memory[follow_id]
            rows.sort(key=lambda r: (-r[0].timestamp(), r[1]))
            del rows[MEMORY_SIZE:]

    # -- sending ----------------------------------------------------------------------------

    async def deliver_due(self) -> list[int]:
        """Start sending for every chat with a message due; returns the chats."""
        if self._stopping.is_set() or self.store is None:
            return []
        started = []
        for chat_id in await self.db().pending_chats(self.clock.now()):
            if chat_id in self.tasks:
                continue
            task = asyncio.create_task(self._deliver(chat_id), name=f"alerts:{chat_id}")
            self.tasks[chat_id] = task
            started.append(chat_id)
        return started

    async def wait_idle(self) -> None:
        while self.tasks:
            await asyncio.gather(*list(self.tasks.values()), return_exceptions=True)

    async def _sleep(self, seconds: float) -> bool:
        return await sleep_unless_stopping(self.clock, self._stopping, seconds)

    async def _deliver(self, chat_id: int) -> None:
        try:
            async with self._locks.setdefault(chat_id, asyncio.Lock()):
                await self._send_due(chat_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("alert delivery failed", extra={"kv": {"chat": chat_id}})
        finally:
            if self.tasks.get(chat_id) is asyncio.current_task():
                del self.tasks[chat_id]
        await self._settle()

    async def _failed(self, chat_id: int, error: BaseException | str, now: datetime) -> None:
        """Count a failed send for the admins (told once per streak, listed by /stats), as
        digests do."""

        async def describe() -> tuple[str, dict[str, str]] | None:
            follows = await self.db().follows(chat_id)
            if not follows:
                return None
            topics = ", ".join(f"«{f.words}»" for f in follows[:5])
            if len(follows) > 5:
                topics += " …"
            return follows[0].title or str(chat_id), {
                lang: texts.t("failure_what", lang, topics=topics) for lang in texts.LANGS}

        await self.failures.record(FAILURE_KIND, chat_id, describe, error=error, now=now)

    async def _send_due(self, chat_id: int) -> None:
        db = self.db()
        bot = self.application.bot
        for msg in await db.due_messages(chat_id, self.clock.now()):
            while True:
                if self._stopping.is_set():
                    return
                sent = await send_html(bot, chat_id, msg.html, sleep=self._sleep)
                now = self.clock.now()
                if sent.outcome == "migrated" and sent.new_chat_id is not None:
                    await db.migrate(chat_id, sent.new_chat_id)
                    await self.failures.migrate(chat_id, sent.new_chat_id)
                    chat_id = sent.new_chat_id
                    continue
                break
            if sent.outcome == "stopped":
                return
            count_delivery(self.application, "alert", ok=sent.outcome == "sent")
            if sent.outcome == "sent":
                await db.mark(msg.id, "sent", sent.message_id, now)
                await self.failures.clear(FAILURE_KIND, chat_id)
            elif sent.outcome == "uncertain":
                await db.mark(msg.id, "uncertain", None, now)
                log.warning("alert timed out; not repeated", extra={"kv": {
                    "chat": chat_id, "alert": msg.id, "error": str(sent.error)}})
            elif sent.outcome == "forbidden":
                removed = await self.remove_chat(chat_id)
                log.warning("bot removed from chat: its follows stopped", extra={"kv": {
                    "chat": chat_id, "follows": removed, "error": str(sent.error)}})
                return
            else:
                attempts = msg.attempts + 1
                await self._failed(chat_id, sent.error or sent.outcome, now)
                if attempts >= MAX_ATTEMPTS:
                    await db.mark(msg.id, "failed", None, now)
                    log.error("alert given up", extra={"kv": {
                        "chat": chat_id, "alert": msg.id, "error": str(sent.error)}})
                    continue
                delay = min(HOUR, timedelta(minutes=2 ** attempts))
                await db.postpone(msg.id, attempts, now + delay)
                log.error("alert not delivered; will retry", extra={"kv": {
                    "chat": chat_id, "alert": msg.id, "attempt": attempts,
                    "retry_in_s": int(delay.total_seconds()), "error": str(sent.error)}})
                return
