"""Digests end to end: a real PTB ``Application`` (JobQueue, long polling) talking HTTP to the
fake Bot API, a real MiniLM store, and a clock the test moves by hand.

The application here is minimal — the digest handlers and scheduler plus a catch-all in the
bot's usual handler group that must never see a digest command — so these tests pin the
digest side's contract with whatever ``build_application`` wires around it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from telegram import Update
from telegram.ext import Application, ContextTypes, MessageHandler, filters

from bot.digests import (
    DigestOptions,
    DigestService,
    Subscription,
    parse_subscribe,
    register_digest_handlers,
)
from bot.services import KEY, BotServices
from tests.support.digests import DIGEST_ADMIN_ID, DigestClock, digest_settings
from tests.support.fakebotapi import FakeBotApi

# 07:00 in Rome on 2 December 2025, an hour before the default 08:00 digest.
BEFORE = datetime(2025, 12, 2, 6, 0, tzinfo=UTC)
AT_8 = datetime(2025, 12, 2, 7, 0, 30, tzinfo=UTC)
TICK = 0.05
NUMBERED = re.compile(r"^(\d+)\. ", re.MULTILINE)


async def _fallback(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    msg = update.effective_message
    if msg is not None:
        await msg.reply_text("fallback saw a command")


@asynccontextmanager
async def digest_bot(
    server: FakeBotApi, settings: Any, retriever: Any, clock: DigestClock, *,
    provider: Callable[[], Any] | None = None, **kwargs: Any,
) -> AsyncIterator[tuple[Application, DigestService]]:
    """The digest side in a bare Application, with the bot's lifecycle (open and start,
    stop, close); ``provider`` (instead of ``retriever``) lets a test swap the retriever under
    a running bot, as a reopened archive would. ``kwargs`` are :class:`DigestOptions`."""
    app = server.application_builder().build()
    app.add_handler(MessageHandler(filters.COMMAND, _fallback))  # the bot's "unknown command"
    svc = DigestService(
        app, settings, retriever=provider or (lambda: retriever),
        options=DigestOptions(clock=clock, tick_seconds=TICK, **kwargs),
    )
    register_digest_handlers(app, lambda _context: svc)
    await app.initialize()
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(poll_interval=0.0, timeout=1)
    await svc.open()
    await svc.start()
    stopped = False
    try:
        yield app, svc
    except _Crashed:
        stopped = True
    finally:
        if not stopped:
            await app.updater.stop()
            await app.stop()
            await svc.stop()
        await app.shutdown()
        await svc.close()


class _Crashed(Exception):
    """Raised by :func:`crash` to leave :func:`digest_bot` without a graceful stop."""


async def crash(app: Application, svc: DigestService) -> None:
    """The process dies: running deliveries are cut at their current await, nothing is
    finished or flushed, the state DB is simply closed."""
    svc._stopping.set()  # no new ticks
    tasks = list(svc.tasks.values())
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert svc.store is not None
    await svc.store.close()
    svc.store = None
    await svc.failures.release()
    assert app.updater is not None
    await app.updater.stop()
    await app.stop()
    raise _Crashed


def services_of(app: Application) -> BotServices:
    services: BotServices = app.bot_data[KEY]
    return services


def db_rows(settings: Any, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(settings.bot_state_path) as con:
        return list(con.execute(sql, params))


def digest_texts(server: FakeBotApi, chat_id: int) -> list[str]:
    return [t for t in server.sent_texts(chat_id) if re.match(r"^(Daily|Weekly|No news)", t)
            or NUMBERED.match(t)]


class _Passes:
    """Every finished scheduler pass (DigestService.run_due), in order, by the service that made
    it; ``changed`` is set after each pass and whenever a delivery task ends. One per test: an
    asyncio.Event belongs to the loop that first waits on it."""

    def __init__(self) -> None:
        self.made: list[DigestService] = []
        self.changed = asyncio.Event()


PASSES = _Passes()


@pytest.fixture(autouse=True)
def count_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    global PASSES
    PASSES = _Passes()
    run_due = DigestService.run_due

    async def counted(self: DigestService) -> list[int]:
        try:
            return await run_due(self)
        finally:
            passes = PASSES
            passes.made.append(self)
            for task in self.tasks.values():
                task.add_done_callback(lambda _t: passes.changed.set())
            passes.changed.set()

    monkeypatch.setattr(DigestService, "run_due", counted)


async def settle(passes: int = 2) -> None:
    """Wait until the scheduler has made ``passes`` more passes over the clock (so at least one
    began after the test moved it) and every delivery they started has finished or waits for
    the test clock: whatever was due has been sent, and a test can assert nothing else was.
    The scheduler ticks every TICK, so the condition is looked at again at least that often."""

    def quiet() -> bool:
        if len(PASSES.made) < seen + passes:
            return False
        return all(
            sum(not t.done() for t in svc.tasks.values()) <= getattr(svc.clock, "parked", 0)
            for svc in set(PASSES.made[seen:])
        )

    seen = len(PASSES.made)
    async with asyncio.timeout(30):
        while True:
            PASSES.changed.clear()
            if quiet():
                return
            await PASSES.changed.wait()


@pytest.fixture
def settings(digest_store: Path, tmp_path: Path) -> Any:
    return digest_settings(digest_store, tmp_path / "state" / "bot.sqlite3")


# -- parsing and schedule -------------------------------------------------------------------------


def test_subscribe_arguments_and_slots() -> None:
    a = parse_subscribe(["@news", "7:05", "weekly", "fri", "America/New_York", "--empty",
                         "Gaza", "ceasefire", "talks"], "en")
    assert (a.target, a.at, a.frequency, a.weekday, a.tz, a.send_empty, a.topic) == (
        "@news", "07:05", "weekly", 4, "America/New_York", True, "Gaza ceasefire talks")
    assert parse_subscribe([], "en").at is None
    with pytest.raises(ValueError, match="not a time"):
        parse_subscribe(["25:00"], "en")
    with pytest.raises(ValueError, match="Fuso orario"):
        parse_subscribe(["Mars/Olympus"], "it")

    sub = Subscription(chat_id=-1, chat_type="group", title="g", at="08:00", frequency="daily",
                       weekday=0, tz="Europe/Rome", topic=None, lang="en", send_empty=False)
    # 08:00 in Rome is 07:00 UTC in winter and 06:00 UTC in summer (DST on 29 March 2026).
    assert sub.latest_slot(datetime(2025, 12, 2, 7, 0, tzinfo=UTC)) == datetime(
        2025, 12, 2, 7, 0, tzinfo=UTC)
    assert sub.latest_slot(datetime(2025, 12, 2, 6, 59, tzinfo=UTC)) == datetime(
        2025, 12, 1, 7, 0, tzinfo=UTC)
    assert sub.next_slot(datetime(2026, 3, 28, 12, tzinfo=UTC)) == datetime(
        2026, 3, 29, 6, 0, tzinfo=UTC)
    sub.last_slot = sub.latest_slot(datetime(2025, 12, 2, 9, tzinfo=UTC))
    assert sub.due_slot(datetime(2025, 12, 2, 23, tzinfo=UTC)) is None
    assert sub.due_slot(datetime(2025, 12, 5, 7, tzinfo=UTC)) == datetime(
        2025, 12, 5, 7, tzinfo=UTC)  # three missed days: one digest, at the latest slot
    weekly = Subscription(chat_id=-1, chat_type="group", title="g", at="18:30",
                          frequency="weekly", weekday=4, tz="UTC", topic=None, lang="en",
                          send_empty=False)
    assert weekly.latest_slot(datetime(2025, 12, 2, tzinfo=UTC)) == datetime(
        2025, 11, 28, 18, 30, tzinfo=UTC)  # the Friday before


def test_digest_texts_are_one_table_in_both_languages() -> None:
    """The command menu, weekday names and replies come from one table with one ``t()``."""
    from bot.digests import texts

    assert set(texts.STRINGS["it"]) == set(texts.STRINGS["en"])
    assert texts.command_menu("en") == [
        ("subscribe", "Periodic news digest here: [HH:MM] [daily|weekly] [topic]"),
        ("unsubscribe", "Stop this chat's digest"),
        ("digest", "Preview the digest that would be sent now"),
        ("subscriptions", "This chat's digest settings"),
    ]
    assert texts.command_menu("it-IT")[0] == (
        "subscribe", "Rassegna periodica qui: [HH:MM] [daily|weekly] [argomento]")
    weekly = Subscription(chat_id=-1, chat_type="group", title="", at="07:15",
                          frequency="weekly", weekday=6, tz="UTC", topic="Gaza", lang="it",
                          send_empty=False)
    assert texts.schedule_text(weekly, "it") + texts.topic_text(weekly, "it") == (
        "ogni domenica alle 07:15 (UTC), argomento «Gaza»")
    assert texts.schedule_text(weekly, "fr") == "every Sunday at 07:15 (UTC)"
    assert weekly.name == "-1"


# -- subscriptions ----------------------------------------------------------------------------


async def test_group_subscribe_unsubscribe_by_admins_only(
    fake_bot_api: FakeBotApi, settings: Any, digest_services: Any
) -> None:
    server = fake_bot_api
    _, retriever = digest_services
    owner, member = server.user("Owner"), server.user("Member", language_code="it")
    bot_admin = server.user("Operator", user_id=DIGEST_ADMIN_ID)
    group = server.supergroup("Notizie", members=[member, bot_admin], owner=owner)
    clock = DigestClock(BEFORE)
    async with digest_bot(server, settings, retriever, clock):
        server.user_sends(group, member, "/subscribe 09:30")
        (refused,) = await server.wait_for_messages(group["id"], 1)
        assert refused["text"].startswith("Solo gli amministratori del gruppo")
        assert db_rows(settings, "SELECT * FROM digest_subscriptions") == []

        server.user_sends(group, owner, "/subscribe@newsbot_test_bot 09:30 daily Gaza war")
        msgs = await server.wait_for_messages(group["id"], 2)
        assert msgs[1]["text"] == (
            "✅ Digest set up for Notizie: every day at 09:30 (Europe/Rome), topic “Gaza war”.\n"
            "Next one: 2 December 2025 09:30."
        )
        assert len(server.calls_to("getChatMember")) == 2  # the member, then the owner

        server.user_sends(group, bot_admin, "/subscribe 07:15 weekly mon --empty")
        msgs = await server.wait_for_messages(group["id"], 3)
        assert "every Monday at 07:15 (Europe/Rome)" in msgs[2]["text"]
        assert "no news" in msgs[2]["text"]
        ((at, freq, weekday, topic, empty),) = db_rows(
            settings, "SELECT at, frequency, weekday, topic, send_empty FROM digest_subscriptions")
        assert (at, freq, weekday, topic, empty) == ("07:15", "weekly", 0, None, 1)

        server.user_sends(group, member, "/subscriptions")
        msgs = await server.wait_for_messages(group["id"], 4)
        assert msgs[3]["text"].startswith("Rassegne:\n• Notizie: ogni lunedì alle 07:15")

        server.user_sends(group, member, "/unsubscribe")
        msgs = await server.wait_for_messages(group["id"], 5)
        assert msgs[4]["text"].startswith("Solo gli amministratori")
        server.user_sends(group, owner, "/unsubscribe")
        msgs = await server.wait_for_messages(group["id"], 6)
        assert msgs[5]["text"] == "Digest stopped for Notizie."
        assert db_rows(settings, "SELECT * FROM digest_subscriptions") == []
        server.user_sends(group, owner, "/unsubscribe")
        msgs = await server.wait_for_messages(group["id"], 7)
        assert msgs[6]["text"].startswith("Notizie has no digest")
    # The bot's own fallback for commands never answered a digest command.
    assert not any("fallback" in t for t in server.sent_texts(group["id"]))


async def test_channel_setup_refused_until_the_bot_may_post(
    fake_bot_api: FakeBotApi, settings: Any, digest_services: Any
) -> None:
    server = fake_bot_api
    _, retriever = digest_services
    admin = server.user("Operator", user_id=DIGEST_ADMIN_ID)
    stranger = server.user("Stranger")
    channel = server.channel("News feed", username="newsfeed", bot_is_admin=False)
    server.supergroup("A group", username="agroup")
    dm, stranger_dm = server.private_chat(admin), server.private_chat(stranger)
    clock = DigestClock(BEFORE)
    async with digest_bot(server, settings, retriever, clock):
        async def ask(text: str, n: int) -> str:
            server.user_sends(dm, admin, text)
            return str((await server.wait_for_messages(dm["id"], n))[-1]["text"])

        server.user_sends(stranger_dm, stranger, "/subscribe @newsfeed 08:00")
        (no,) = await server.wait_for_messages(stranger_dm["id"], 1)
        assert no["text"] == "Only the bot's administrators can set up digests for channels."

        assert (await ask("/subscribe @nosuchchannel", 1)).startswith("I cannot see @nosuchchannel")
        assert (await ask("/subscribe @agroup", 2)) == (
            "@agroup is a group: send /subscribe in the group itself.")
        text = await ask("/subscribe @newsfeed 08:00", 3)
        assert text.startswith("I am not an administrator of @newsfeed")
        assert "allow “Post messages”" in text

        server.set_chat_admins(channel, bot_is_admin=True, bot_can_post_messages=False)
        text = await ask("/subscribe @newsfeed 08:00", 4)
        assert text.startswith("I am an administrator of @newsfeed but may not post messages")
        assert db_rows(settings, "SELECT * FROM digest_subscriptions") == []

        server.set_chat_admins(channel, bot_can_post_messages=True)
        text = await ask("/subscribe @newsfeed 08:00 daily", 5)
        assert text.startswith("✅ Digest set up for @newsfeed: every day at 08:00 (Europe/Rome)")
        assert db_rows(settings, "SELECT chat_id, chat_type FROM digest_subscriptions") == [
            (channel["id"], "channel")]
        assert (await ask("/subscriptions", 6)).startswith("Digests:\n• @newsfeed")

        clock.set(AT_8)  # the channel gets its digest at 08:00
        (posted, *_) = await server.wait_for_messages(channel["id"], 1)
        assert posted["text"].startswith("Daily news digest — 2 December 2025")

        assert (await ask("/unsubscribe @newsfeed", 7)) == "Digest stopped for @newsfeed."
    assert server.calls_to("getChatMember")  # the bot checked its own rights


# -- scheduled delivery -----------------------------------------------------------------------


async def test_scheduled_digest_is_sent_once_and_preview_moves_nothing(
    fake_bot_api: FakeBotApi, settings: Any, digest_services: Any
) -> None:
    server = fake_bot_api
    _, retriever = digest_services
    owner = server.user("Owner")
    group = server.group("Redazione", owner=owner)
    clock = DigestClock(BEFORE)
    async with digest_bot(server, settings, retriever, clock):
        server.user_sends(group, owner, "/subscribe")
        await server.wait_for_messages(group["id"], 1)
        await settle()
        assert digest_texts(server, group["id"]) == []  # 07:00: nothing yet

        server.user_sends(group, owner, "/digest")
        preview = await server.wait_for_messages(group["id"], 2)
        assert preview[1]["text"].startswith("Preview: Daily news digest — 2 December 2025")
        assert db_rows(settings, "SELECT watermark, last_sent FROM digest_subscriptions") == [
            (None, None)]
        assert db_rows(settings, "SELECT count(*) FROM digest_plans") == [(0,)]

        clock.set(AT_8)
        await server.wait_for(lambda: db_rows(
            settings, "SELECT 1 FROM digest_plans WHERE status='done'"), what="digest sent")
        first = digest_texts(server, group["id"])
        assert len(first) == 1 and first[0].startswith("Daily news digest — 2 December 2025")
        assert "since 1 December 2025, 08:00" in first[0]
        ((watermark,),) = db_rows(settings, "SELECT watermark FROM digest_subscriptions")
        assert datetime.fromisoformat(watermark) == AT_8

        clock.advance(minutes=30)
        await settle()
        assert len(digest_texts(server, group["id"])) == 1  # no second digest the same day

        clock.set(AT_8 + timedelta(days=1))
        await server.wait_for(lambda: len(digest_texts(server, group["id"])) == 2,
                              what="second digest")
        second = digest_texts(server, group["id"])[1]
        assert second.startswith("Daily news digest — 3 December 2025")
        assert "since 2 December 2025, 08:00" in second
    # No article in two digests.
    plans = db_rows(settings, "SELECT plan_id, article_id FROM digest_sent_articles")
    assert len({a for _, a in plans}) == len(plans) and len({p for p, _ in plans}) == 2


async def test_exactly_once_across_a_crash_in_the_middle_of_a_digest(
    fake_bot_api: FakeBotApi, settings: Any, digest_services: Any
) -> None:
    server = fake_bot_api
    _, retriever = digest_services
    owner = server.user("Owner")
    group = server.supergroup("Breaking", owner=owner)
    clock = DigestClock(BEFORE, auto=False)  # a sleep waits until the test moves the clock
    # One message a minute: after the first message the sender waits on the clock, which
    # the test never moves -- and the process dies there.
    async with digest_bot(server, settings, retriever, clock, max_len=700, per_minute=1) as (
        app, svc,
    ):
        server.user_sends(group, owner, "/subscribe 08:00")
        await server.wait_for_messages(group["id"], 1)
        clock.set(AT_8)
        await server.wait_for(lambda: len(digest_texts(server, group["id"])) == 1)
        await server.wait_for(lambda: clock.slept, what="the sender to wait for its budget")
        planned = db_rows(settings, "SELECT seq, state, story_ids FROM digest_messages")
        assert len(planned) >= 3 and [s for _, s, _ in planned].count("sent") == 1
        await crash(app, svc)
    assert db_rows(settings, "SELECT watermark FROM digest_subscriptions") == [(None,)]
    assert len(digest_texts(server, group["id"])) == 1

    clock2 = DigestClock(AT_8 + timedelta(minutes=5))
    async with digest_bot(server, settings, retriever, clock2, max_len=700):
        await server.wait_for(lambda: db_rows(
            settings, "SELECT 1 FROM digest_plans WHERE status='done'"), what="resumed digest")
        await settle()
    texts = digest_texts(server, group["id"])
    assert len(texts) == len(planned)
    numbers = [int(n) for t in texts for n in NUMBERED.findall(t)]
    stories = sum(len(json.loads(ids)) for _, _, ids in planned)
    assert numbers == list(range(1, stories + 1))  # every story once, none skipped, in order
    for (_, _, ids), text in zip(planned, texts, strict=True):
        assert len(NUMBERED.findall(text)) == len(json.loads(ids))
    assert db_rows(settings, "SELECT count(*) FROM digest_plans") == [(1,)]
    ((watermark,),) = db_rows(settings, "SELECT watermark FROM digest_subscriptions")
    assert datetime.fromisoformat(watermark) == AT_8


async def test_missed_digest_is_sent_once_at_start_up(
    fake_bot_api: FakeBotApi, settings: Any, digest_services: Any
) -> None:
    server = fake_bot_api
    _, retriever = digest_services
    owner = server.user("Owner")
    group = server.group("Morning", owner=owner)
    async with digest_bot(server, settings, retriever, DigestClock(BEFORE)):
        server.user_sends(group, owner, "/subscribe 08:00")
        await server.wait_for_messages(group["id"], 1)
    # Down from 07:00 to 11:00: the 08:00 digest is owed.
    late = datetime(2025, 12, 2, 10, 0, tzinfo=UTC)
    async with digest_bot(server, settings, retriever, DigestClock(late)):
        await server.wait_for(lambda: len(digest_texts(server, group["id"])) == 1)
        await settle()
    async with digest_bot(server, settings, retriever,
                          DigestClock(late + timedelta(minutes=10))):
        await settle()
    assert len(digest_texts(server, group["id"])) == 1
    ((watermark,),) = db_rows(settings, "SELECT watermark FROM digest_subscriptions")
    assert datetime.fromisoformat(watermark) == late  # covers up to when it was sent


async def test_nothing_new_posts_nothing_or_one_line(
    fake_bot_api: FakeBotApi, settings: Any, digest_services: Any
) -> None:
    server = fake_bot_api
    _, retriever = digest_services
    owner = server.user("Owner")
    quiet, chatty = server.group("Quiet", owner=owner), server.group("Chatty", owner=owner)
    empty_day = datetime(2025, 12, 20, 6, 0, tzinfo=UTC)  # the store ends on 3 December
    clock = DigestClock(empty_day)
    async with digest_bot(server, settings, retriever, clock):
        server.user_sends(quiet, owner, "/subscribe 08:00")
        server.user_sends(chatty, owner, "/subscribe 08:00 --empty")
        await server.wait_for_messages(quiet["id"], 1)
        await server.wait_for_messages(chatty["id"], 1)
        clock.set(empty_day + timedelta(hours=1, seconds=30))
        (_, line) = await server.wait_for_messages(chatty["id"], 2)
        assert line["text"] == "No news since 19 December 2025, 08:00."
        await settle()
    assert len(server.sent_texts(quiet["id"])) == 1  # only the subscription reply
    assert {r[0] for r in db_rows(settings, "SELECT watermark FROM digest_subscriptions")} == {
        (empty_day + timedelta(hours=1, seconds=30)).isoformat()}


# -- flood control and removal ----------------------------------------------------------------


async def test_429_retry_after_is_honoured(
    fake_bot_api: FakeBotApi, settings: Any, digest_services: Any
) -> None:
    server = fake_bot_api
    _, retriever = digest_services
    owner = server.user("Owner")
    group = server.group("Flood", owner=owner)
    clock = DigestClock(BEFORE)
    async with digest_bot(server, settings, retriever, clock):
        server.user_sends(group, owner, "/subscribe 08:00")
        await server.wait_for_messages(group["id"], 1)
        server.inject_fault("sendMessage", "429", retry_after=7)
        clock.set(AT_8)
        await server.wait_for(lambda: len(digest_texts(server, group["id"])) == 1)
        await settle()
    digest_calls = [c for c in server.calls_to("sendMessage") if c.params["chat_id"] == group["id"]]
    assert [c.status for c in digest_calls[1:]] == [429, 200]
    assert 7 in clock.slept
    assert len(digest_texts(server, group["id"])) == 1


async def test_twenty_messages_per_minute_per_group(
    fake_bot_api: FakeBotApi, digest_store: Path, tmp_path: Path, digest_services: Any
) -> None:
    server = fake_bot_api
    _, retriever = digest_services
    settings = digest_settings(digest_store, tmp_path / "s.sqlite3", digest_max_stories=30)
    owner = server.user("Owner")
    group = server.group("Busy", owner=owner)
    clock = DigestClock(datetime(2025, 12, 1, 23, 0, tzinfo=UTC))
    async with digest_bot(server, settings, retriever, clock, max_len=400):
        server.user_sends(group, owner, "/subscribe 00:05")
        await server.wait_for_messages(group["id"], 1)
        clock.set(datetime(2025, 12, 2, 0, 0, tzinfo=UTC))  # the whole of 1 December
        await server.wait_for(lambda: db_rows(
            settings, "SELECT 1 FROM digest_plans WHERE status='done'"), timeout=20)
    sent = [datetime.fromisoformat(r[0]) for r in db_rows(
        settings, "SELECT sent_at FROM digest_messages ORDER BY seq")]
    assert len(sent) > 21
    for i in range(len(sent) - 20):
        assert sent[i + 20] - sent[i] >= timedelta(seconds=60)  # never 21 in a minute
    assert any(s > 50 for s in clock.slept)


async def test_a_chat_that_removed_the_bot_is_unsubscribed_and_logged(
    fake_bot_api: FakeBotApi, settings: Any, digest_services: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = fake_bot_api
    _, retriever = digest_services
    owner = server.user("Owner")
    gone, left = server.group("Gone", owner=owner), server.group("Left", owner=owner)
    clock = DigestClock(BEFORE)
    caplog.set_level(logging.WARNING, logger="bot.digests")
    async with digest_bot(server, settings, retriever, clock):
        server.user_sends(gone, owner, "/subscribe 08:00")
        server.user_sends(left, owner, "/subscribe 08:00")
        await server.wait_for_messages(gone["id"], 1)
        await server.wait_for_messages(left["id"], 1)
        server.kick_bot(gone)  # silently: only the next send finds out (403)
        server.kick_bot(left, by=owner)  # with the my_chat_member update
        await server.wait_for(lambda: db_rows(
            settings, "SELECT 1 FROM digest_subscriptions WHERE chat_id=?", left["id"]) == [],
            what="left chat unsubscribed")
        clock.set(AT_8)
        await server.wait_for(lambda: db_rows(settings, "SELECT * FROM digest_subscriptions") == [],
                              what="kicked chat unsubscribed")
        clock.set(AT_8 + timedelta(days=1))
        await settle()
    attempts = [c for c in server.calls_to("sendMessage") if c.params["chat_id"] == gone["id"]]
    assert [c.status for c in attempts] == [200, 403]  # the reply, then one refused digest
    to_left = [c for c in server.calls_to("sendMessage") if c.params["chat_id"] == left["id"]]
    assert len(to_left) == 1  # only the reply to /subscribe
    removed = [r for r in caplog.records if "unsubscribed" in r.getMessage()]
    assert {getattr(r, "kv", {}).get("chat") for r in removed} == {gone["id"], left["id"]}


async def test_a_chat_that_no_longer_exists_is_unsubscribed(
    fake_bot_api: FakeBotApi, settings: Any, digest_services: Any
) -> None:
    """400 "chat not found" is no reason to retry every hour for ever: the chat is gone."""
    server = fake_bot_api
    _, retriever = digest_services
    owner = server.user("Owner")
    group = server.group("Deleted", owner=owner)
    clock = DigestClock(BEFORE)
    async with digest_bot(server, settings, retriever, clock):
        server.user_sends(group, owner, "/subscribe 08:00")
        await server.wait_for_messages(group["id"], 1)
        server.delete_chat(group)
        clock.set(AT_8)
        await server.wait_for(lambda: db_rows(settings, "SELECT * FROM digest_subscriptions") == [],
                              what="gone chat unsubscribed")
        clock.set(AT_8 + timedelta(days=1))
        await settle()
    refused = [c for c in server.calls_to("sendMessage", ok=False)
               if c.params["chat_id"] == group["id"]]
    assert [(c.status, c.response["description"]) for c in refused] == [
        (400, "Bad Request: chat not found")]  # tried once, never again
    assert db_rows(settings, "SELECT * FROM delivery_failures") == []


# -- inside the bot's own Application ---------------------------------------------------------


@pytest.mark.slow
async def test_wired_into_the_bots_application(
    fake_bot_api: FakeBotApi, digest_store: Path, tmp_path: Path, bot_embedder: Any
) -> None:
    """``build_application`` with its services, flood control and HTML defaults: the digest
    commands answer once (no help fallback), and the scheduled digest goes out."""
    from bot.app import build_application
    from bot.runner import running
    from tests.support.bot import bot_settings

    server = fake_bot_api
    settings = bot_settings(digest_store, server, tmp_path, admin_ids=[DIGEST_ADMIN_ID])
    clock = DigestClock(BEFORE)
    app = build_application(settings, embedder=bot_embedder,
                            digests=DigestOptions(clock=clock, tick_seconds=TICK))
    owner = server.user("Owner")
    admin = server.user("Operator", user_id=DIGEST_ADMIN_ID)
    group = server.supergroup("Desk", owner=owner)
    dm = server.private_chat(admin)
    async with running(app, settings):
        assert services_of(app).digests.clock is clock  # the bot's services hold the service
        server.user_sends(group, owner, "/subscribe 08:00 daily")
        (reply,) = await server.wait_for_messages(group["id"], 1)
        assert reply["text"].startswith("✅ Digest set up for Desk: every day at 08:00")
        server.user_sends(dm, admin, "/subscriptions")
        (listing,) = await server.wait_for_messages(dm["id"], 1)
        assert listing["text"].startswith("Digests:\n• Desk")
        clock.set(AT_8)
        await server.wait_for(lambda: len(digest_texts(server, group["id"])) == 1)
        await settle()
        registry = services_of(app).metrics.registry
    assert len(server.sent_texts(dm["id"])) == 1  # the bot's help never answered too
    # /metrics counts it (bot/metrics.py)
    delivered = registry.get_sample_value("newsbot_digest_deliveries_total",
                                          {"outcome": "delivered"})
    assert delivered == 1
    assert len(digest_texts(server, group["id"])) == 1


# -- failures reach a person --------------------------------------------------------------------


def _notices(server: FakeBotApi, chat_id: int) -> list[str]:
    return [t for t in server.sent_texts(chat_id) if t.startswith("⚠️")]


def _failed_sends(server: FakeBotApi, chat_id: int) -> list[Any]:
    return [c for c in server.calls_to("sendMessage", ok=False) if c.params["chat_id"] == chat_id]


@pytest.mark.slow
async def test_a_digest_that_keeps_failing_is_told_once_and_listed_by_stats(
    fake_bot_api: FakeBotApi, digest_store: Path, tmp_path: Path, bot_embedder: Any
) -> None:
    """The channel takes the bot's right to post away: every retry is refused (400), the
    admin hears of it once, with the reason, and /stats lists it until a digest goes out."""
    from bot.app import build_application
    from bot.runner import running
    from tests.support.bot import bot_settings

    server = fake_bot_api
    settings = bot_settings(digest_store, server, tmp_path, admin_ids=[DIGEST_ADMIN_ID])
    assert settings.delivery_failure_notice_after == 3
    clock = DigestClock(BEFORE)
    app = build_application(settings, embedder=bot_embedder,
                            digests=DigestOptions(clock=clock, tick_seconds=TICK))
    admin = server.user("Operator", user_id=DIGEST_ADMIN_ID)
    dm = server.private_chat(admin)
    channel = server.channel("Wire", username="wirefeed")

    async def stats(n: int) -> str:
        server.user_sends(dm, admin, "/stats")
        return str((await server.wait_for_messages(dm["id"], n, timeout=20))[-1]["text"])

    async with running(app, settings):
        svc = services_of(app).digests
        server.user_sends(dm, admin, "/subscribe @wirefeed 08:00")
        (reply,) = await server.wait_for_messages(dm["id"], 1)
        assert reply["text"].startswith("✅ Digest set up for @wirefeed")
        assert (await stats(2)).endswith("\nfailing deliveries: none")
        server.set_chat_admins(channel, bot_can_post_messages=False)
        clock.set(AT_8)
        for attempt in range(1, 6):
            if attempt > 1:
                clock.advance(minutes=20)  # past the back-off (2, 4, 8, 16 min)
            await server.wait_for(lambda n=attempt: len(_failed_sends(server, channel["id"])) == n,
                                  what=f"failed attempt {attempt}")
            await svc.wait_idle()  # this attempt's bookkeeping (and notice) is done
        # The fifth attempt postponed the digest by 32 minutes: nothing runs meanwhile.

        (notice,) = _notices(server, dm["id"])  # one notice for five failed attempts
        english, italian = notice.split("\n\n")
        assert english.splitlines() == [
            "⚠️ A delivery keeps failing",
            "What: digest every day at 08:00 (Europe/Rome)",
            f"Chat: @wirefeed ({channel['id']})",
            "Failed attempts: 3, since 2 December 2025 08:00",
            "Last reason: BadRequest: Need administrator rights in the channel chat",
            "I keep retrying and will not write again about this failure; /stats lists the "
            "deliveries still failing.",
        ]
        assert italian.startswith("⚠️ Una consegna continua a fallire\nCosa: rassegna ogni "
                                  "giorno alle 08:00 (Europe/Rome)")
        assert server.token not in notice

        listed = await stats(4)
        assert listed.endswith(
            "Failing deliveries (1):\n"
            f"• @wirefeed ({channel['id']}): digest every day at 08:00 (Europe/Rome); failing "
            "since 2 December 2025 08:00, 5 attempts; last reason: BadRequest: Need "
            "administrator rights in the channel chat"
        )

        server.set_chat_admins(channel, bot_can_post_messages=True)
        clock.advance(minutes=40)
        await server.wait_for(lambda: db_rows(
            svc.settings, "SELECT 1 FROM digest_plans WHERE status='done'"), what="cured digest")
        await svc.wait_idle()
        assert (await stats(5)).endswith("\nfailing deliveries: none")
    assert len(digest_texts(server, channel["id"])) >= 1
    assert len(_notices(server, dm["id"])) == 1  # recovering is not news


async def test_a_failing_build_is_told_once_per_streak_across_a_restart(
    fake_bot_api: FakeBotApi, digest_store: Path, tmp_path: Path, digest_services: Any,
    bot_embedder: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    """The archive goes away under the bot (its store is closed): every tick's build fails.
    One notice per streak, kept across a restart; a blocked admin is tried once per streak
    and breaks nothing; a success ends the streak and the next failure is news again."""
    from index.runtime import open_services
    from index.settings import Settings

    server = fake_bot_api
    _, good = digest_services
    index_settings = Settings(_env_file=None, data_dir=digest_store, embedding_model="minilm")
    gone = await open_services(index_settings, embedder=bot_embedder)
    broken = await gone.retriever()
    await gone.close()
    current = {"retriever": broken}
    blocked_id = DIGEST_ADMIN_ID + 1
    settings = digest_settings(digest_store, tmp_path / "state.sqlite3",
                               admin_ids=[DIGEST_ADMIN_ID, blocked_id],
                               delivery_failure_notice_after=2)
    admin = server.user("Operator", user_id=DIGEST_ADMIN_ID)
    dm = server.private_chat(admin)
    blocked_dm = server.private_chat(server.user("Away", user_id=blocked_id))
    server.kick_bot(blocked_dm)
    owner = server.user("Owner")
    group = server.group("Desk", owner=owner)
    caplog.set_level(logging.WARNING, logger="bot.delivery_failures")

    def attempts() -> int:
        rows = db_rows(settings, "SELECT attempts FROM delivery_failures WHERE chat_id=?",
                       group["id"])
        return int(rows[0][0]) if rows else 0

    def provider() -> Any:
        return current["retriever"]

    first = DigestClock(BEFORE)
    async with digest_bot(server, settings, None, first, provider=provider) as (_, svc):
        server.user_sends(group, owner, "/subscribe 08:00")
        await server.wait_for_messages(group["id"], 1)
        first.set(AT_8)
        await server.wait_for(lambda: attempts() == 1, what="the first failed build")
        await settle(passes=5)
        assert attempts() == 1  # backed off: not rebuilt at every tick
        for n in (2, 3):
            first.advance(minutes=20)  # past the back-off (2, 4 min)
            await server.wait_for(lambda n=n: attempts() == n, what=f"failed build {n}")
        await svc.wait_idle()
    assert len(_notices(server, dm["id"])) == 1
    assert len(_failed_sends(server, blocked_dm["id"])) == 1  # 403, logged, not retried
    assert [r.kv["admin"] for r in caplog.records  # type: ignore[attr-defined]
            if r.getMessage() == "could not tell an admin about a failing delivery"] == [
        blocked_id]
    (notice,) = _notices(server, dm["id"])
    assert "Chat: Desk" in notice and "Failed attempts: 2" in notice
    assert "Last reason: ValueError: Connection closed" in notice

    tracebacks = [r for r in caplog.records if r.exc_info and r.name == "bot.digests.delivery"]
    assert len(tracebacks) == 1  # the streak's repeats are one line each

    before_restart = attempts()
    clock = DigestClock(AT_8 + timedelta(minutes=50))
    async with digest_bot(server, settings, None, clock, provider=provider) as (_, svc):
        # The back-off lives in memory: a restarted bot tries at once.
        await server.wait_for(lambda: attempts() == before_restart + 1,
                              what="a failure right after the restart")
        clock.advance(minutes=20)
        await server.wait_for(lambda: attempts() == before_restart + 2,
                              what="a failure after the back-off")
        await svc.wait_idle()
        assert len(_notices(server, dm["id"])) == 1  # the same streak: not told again

        current["retriever"] = good  # the archive is back
        clock.advance(minutes=20)
        await server.wait_for(lambda: len(digest_texts(server, group["id"])) == 1,
                              what="the digest, at last")
        await svc.wait_idle()
        assert db_rows(settings, "SELECT * FROM delivery_failures") == []

        current["retriever"] = broken  # and gone again, for the next day's digest
        clock.set(AT_8 + timedelta(days=1))
        await server.wait_for(lambda: attempts() == 1, what="the new streak's first failure")
        clock.advance(minutes=20)
        await server.wait_for(lambda: len(_notices(server, dm["id"])) == 2,
                              what="a new streak told")
        await svc.wait_idle()
        assert len(_failed_sends(server, blocked_dm["id"])) == 2  # once per streak

        server.user_sends(group, owner, "/unsubscribe")
        await server.wait_for_messages(group["id"], 3)
        await svc.wait_idle()
        assert db_rows(settings, "SELECT * FROM delivery_failures") == []  # nothing to list
    assert len(_notices(server, dm["id"])) == 2
