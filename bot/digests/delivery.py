"""Digest scheduling and exactly-once delivery to groups and channels.

The service is the bot's ``BotServices.digests`` (:mod:`bot.services`), with the bot's
lifecycle: :meth:`DigestService.open` and :meth:`~DigestService.start` in ``post_init``,
:meth:`~DigestService.stop` in ``post_stop`` (the bot can still send), and
:meth:`~DigestService.close` in ``post_shutdown``.

State lives in the bot's SQLite (``settings.bot_state_path``), in the ``digest_*`` tables of
:mod:`bot.digests.store`: subscriptions are the bot's state, not the index's, and must survive
a rebuilt index.

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
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from telegram.error import NetworkError, TelegramError, TimedOut
from telegram.ext import Application, ContextTypes

from bot.delivery_failures import DeliveryFailures, delivery_failures
from bot.digests import texts
from bot.digests.building import build_subscription_digest
from bot.digests.clock import Clock, SystemClock
from bot.digests.schedule import Subscription
from bot.digests.store import DigestStore, Plan, iso
from bot.locked_store import sleep_unless_stopping
from bot.metrics import count_delivery
from bot.settings import BotSettings
from bot.telegram_send import send_html
from index.digest.render import render_digest_html
from index.digest.stories import Digest, DigestMessage
from index.search.retrieval import Retriever

log = logging.getLogger(__name__)

TELEGRAM_GROUP_RATE = 20  # messages per minute to one group or channel
RETRY_BACKOFF_MAX = timedelta(hours=1)
FAILURE_KIND = "digest"  # this module's deliveries in bot.delivery_failures


RetrieverProvider = Callable[[], Retriever]


@dataclass(frozen=True, slots=True)
class DigestOptions:
    """How the scheduler runs. The defaults are the product's; tests pass a clock they move
    by hand, a fast tick, short messages or a tight per-chat budget."""

    clock: Clock | None = None  # the system clock
    tick_seconds: float = 30.0
    max_len: int | None = None  # a message's length limit; None: the renderer's (Telegram's)
    per_minute: int = TELEGRAM_GROUP_RATE  # messages per minute to one chat; 0: no limit


@dataclass
class _ChatPacer:
    sent: deque[datetime] = field(default_factory=deque)


@dataclass(frozen=True, slots=True)
class _BuildFailure:
    """A chat whose pass raised (a build before any plan could carry a ``retry_at``, or an
    error outside the Bot API): kept in memory, so a restart tries again at once."""

    attempts: int
    retry_at: datetime


def retry_delay(attempts: int) -> timedelta:
    """2, 4, 8 … minutes, at most an hour: a broken chat is tried again, but not every tick."""
    return min(RETRY_BACKOFF_MAX, timedelta(minutes=2 ** min(attempts, 6)))


class DigestService:
    """Plans and delivers digests: the bot's ``BotServices.digests``.

    ``retriever`` is asked for the bot's current retriever at every build, so a digest always
    reads the archive the bot answers from.
    """

    def __init__(
        self,
        application: Application,
        settings: BotSettings,
        *,
        retriever: RetrieverProvider,
        options: DigestOptions | None = None,
    ) -> None:
        options = options or DigestOptions()
        self.application = application
        self.settings = settings
        self._retriever = retriever
        self.clock: Clock = options.clock or SystemClock()
        self.tick_seconds = options.tick_seconds
        self.max_len = options.max_len
        self.per_minute = options.per_minute
        self.store: DigestStore | None = None
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._pacers: dict[int, _ChatPacer] = {}
        self._build_failures: dict[int, _BuildFailure] = {}
        self._stopping = asyncio.Event()
        self._job: Any = None
        self.failures: DeliveryFailures = delivery_failures(application, settings)

    # lifecycle

    async def open(self) -> None:
        """Open the digest tables and the failure log (the bot's ``post_init``)."""
        if self.store is None:
            store = await DigestStore.open(self.settings.bot_state_path)
            try:
                await self.failures.acquire()
            except BaseException:
                await store.close()
                raise
            self.store = store

    async def start(self) -> None:
        """Arm the tick and catch up: resume interrupted digests, send the missed ones."""
        await self.open()
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
        the state DB for the next start (the bot's ``post_stop``, while it can still send)."""
        self._stopping.set()
        if self._job is not None:
            # Usually gone already: Application.stop() shuts the JobQueue down first.
            with contextlib.suppress(Exception):
                self._job.schedule_removal()
            self._job = None
        tasks = list(self.tasks.values())
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        """Stop if still running, then close the state (the bot's ``post_shutdown``)."""
        try:
            await self.stop()
        finally:
            if self.store is not None:
                await self.store.close()
                self.store = None
                await self.failures.release()

    async def _tick_job(self, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self.run_due()

    def db(self) -> DigestStore:
        """The digest tables; RuntimeError before :meth:`open` and after :meth:`close`."""
        if self.store is None:
            raise RuntimeError("the digest state is not open")
        return self.store

    @property
    def retriever(self) -> Retriever:
        return self._retriever()

    # scheduling

    async def run_due(self) -> list[int]:
        """Start delivery for every chat with an open plan or a due slot; returns their ids.

        Each chat's delivery is its own task, so a chat waiting out a 429 or its per-minute
        budget never holds up the others, and a tick never waits for sending.
        """
        if self._stopping.is_set():
            return []
        db = self.db()
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
            failure = self._build_failures.get(chat_id)
            if failure is not None and failure.retry_at > now:
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
                db = self.db()
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
                self._note_build_failure(chat_id, exc)
                await self._failed(chat_id, exc)

    def _note_build_failure(self, chat_id: int, exc: Exception) -> None:
        """Back off a chat whose pass failed before any plan could hold the retry; the
        traceback is logged once per streak, the repeats as one line each."""
        previous = self._build_failures.get(chat_id)
        attempts = previous.attempts + 1 if previous else 1
        delay = retry_delay(attempts)
        self._build_failures[chat_id] = _BuildFailure(attempts, self.clock.now() + delay)
        kv = {"chat": chat_id, "attempt": attempts, "retry_in_s": int(delay.total_seconds()),
              "reason": f"{type(exc).__name__}: {exc}"}
        if previous is None:
            log.exception("digest delivery failed; will retry", extra={"kv": kv})
        else:
            log.error("digest delivery failed again; will retry", extra={"kv": kv})

    async def build(
        self, sub: Subscription, now: datetime, *, since: datetime | None = None
    ) -> Digest:
        exclude = await self.db().sent_article_ids(sub.chat_id)
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
        plan_id = await self.db().take_slot(
            sub, slot, digest.since, digest.until, messages, article_ids, now
        )
        log.info("digest planned", extra={"kv": {
            "chat": sub.chat_id, "slot": iso(slot), "stories": len(digest.stories),
            "messages": len(messages), "plan": plan_id,
        }})
        return await self.db().plan(plan_id) if plan_id is not None else None

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
        return await sleep_unless_stopping(self.clock, self._stopping, seconds)

    async def _send_plan(self, plan: Plan) -> None:
        db = self.db()
        chat_id = plan.chat_id
        for msg in await db.messages(plan.id):
            if msg.state != "pending":
                continue
            while True:
                if self._stopping.is_set() or not await self._pace(chat_id):
                    return
                # 429 waited out and transport failures retried there (bot/telegram_send.py).
                sent = await send_html(self.application.bot, chat_id, msg.html,
                                       sleep=self._sleep)
                if sent.outcome == "migrated" and sent.new_chat_id is not None:
                    log.info("group became a supergroup", extra={"kv": {
                        "chat": chat_id, "new_chat": sent.new_chat_id}})
                    await db.migrate(chat_id, sent.new_chat_id)
                    await self.failures.migrate(chat_id, sent.new_chat_id)
                    chat_id = sent.new_chat_id
                    continue
                break
            error = sent.error
            if sent.outcome == "stopped":
                return
            if sent.outcome == "forbidden":
                await self.remove(chat_id)
                log.warning("bot removed from chat: digest unsubscribed", extra={"kv": {
                    "chat": chat_id, "error": str(error)}})
                return
            if sent.outcome == "uncertain":
                # Telegram may have posted it: not sent again (see the module docstring).
                await db.mark(plan.id, msg.seq, "uncertain", None, self.clock.now())
                log.warning("digest message timed out; not repeated", extra={"kv": {
                    "chat": chat_id, "plan": plan.id, "seq": msg.seq,
                    "stories": ",".join(msg.story_ids), "error": str(error)}})
                continue
            if sent.outcome != "sent" or error is not None:
                assert error is not None
                kind = {"rejected": "rejected", "failed": "error"}.get(sent.outcome, "error")
                if isinstance(error, NetworkError) and not isinstance(error, TimedOut):
                    kind = "network"
                await self._postpone(plan, chat_id, f"{kind}: {error}", error)
                return
            now = self.clock.now()
            self._pacers.setdefault(chat_id, _ChatPacer()).sent.append(now)
            await db.mark(plan.id, msg.seq, "sent", sent.message_id, now)
        refreshed = await db.plan(plan.id)
        if refreshed is not None and refreshed.status == "sending":
            await db.finish(refreshed, self.clock.now())
            log.info("digest delivered", extra={"kv": {"chat": chat_id, "plan": plan.id}})
            count_delivery(self.application, "digest", ok=True)
            await self._succeeded(chat_id)

    async def _postpone(
        self, plan: Plan, chat_id: int, reason: str, error: TelegramError
    ) -> None:
        """Leave the plan open and try again later, backing off up to an hour."""
        attempts = plan.attempts + 1
        delay = retry_delay(attempts)
        await self.db().postpone(plan.id, attempts, self.clock.now() + delay)
        log.error("digest not delivered; will retry", extra={"kv": {
            "chat": chat_id, "plan": plan.id, "attempt": attempts,
            "retry_in_s": int(delay.total_seconds()), "reason": reason}})
        await self._failed(chat_id, error)

    # failures and removal

    async def _failed(self, chat_id: int, error: BaseException) -> None:
        """Count a failed pass for the admins (told once per streak, listed by /stats)."""
        count_delivery(self.application, "digest", ok=False)

        async def describe() -> tuple[str, dict[str, str]] | None:
            sub = await self.db().subscription(chat_id)
            if sub is None:
                return None
            return sub.name, {lang: texts.t(
                "failure_what", lang, schedule=texts.schedule_text(sub, lang),
                topic=texts.topic_text(sub, lang)) for lang in texts.LANGS}

        await self.failures.record(FAILURE_KIND, chat_id, describe, error=error,
                                   now=self.clock.now())

    async def _succeeded(self, chat_id: int) -> None:
        self._build_failures.pop(chat_id, None)
        await self.failures.clear(FAILURE_KIND, chat_id)

    async def forget_user(self, user_id: int) -> int:
        """/forgetme: the user's private digest and its history (none sent meanwhile)."""
        async with self._locks.setdefault(user_id, asyncio.Lock()):
            removed = await self.db().forget_user(user_id)
            await self.failures.forget(FAILURE_KIND, user_id)
        return removed

    async def remove(self, chat_id: int) -> bool:
        """Unsubscribe ``chat_id``; a failure its digest had is no longer anyone's concern."""
        removed = await self.db().remove(chat_id)
        await self.failures.forget(FAILURE_KIND, chat_id)
        return removed
