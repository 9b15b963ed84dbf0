"""Alerts end to end: the real bot (``build_application``, JobQueue, long polling) against the
fake Bot API, a feed served over real HTTP from 127.0.0.1 that changes between polls, the real
pipeline, stores and MiniLM.

- a follow, then a matching feed item: one alert (headline, quote, outlet, link), and a
  non-matching item: none;
- /unfollow stops the alerts of that follow;
- a restart between planning and sending still gives exactly one alert (and 429 is waited
  out);
- in a group only administrators may /follow; a bot admin sets one up for a channel from a
  private chat; /help and the menu list the commands.

Waiting is on events: the live indexer's poll history, the alert service's "these articles
were matched and their messages handled", the fake server's call log. Never a sleep.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from telegram.ext import Application

from bot.alerts.delivery import AlertOptions, AlertService
from bot.app import build_application
from bot.runner import running
from bot.services import KEY, BotServices
from index.ingest.live import LiveIndexer
from tests.support.bot import BOT_ADMIN_ID, bot_settings
from tests.support.fakebotapi import FakeBotApi
from tests.support.feedserver import FeedServer, Route, http_date, rss

pytestmark = pytest.mark.slow

JSON = dict[str, Any]
FEED = "/wire.xml"


def item(slug: str, title: str, text: str) -> dict[str, str]:
    return {"link": f"https://wire.example/{slug}", "title": title, "text": text,
            "published": http_date(time.time())}


CRICKET = item(
    "cricket", "England beat Australia at Lord's",
    "England beat Australia by five wickets at Lord's on Saturday, with the captain scoring "
    "an unbeaten century in the final session of the third Test.",
)
QUILLABRANO = item(
    "quillabrano", "A Quillabrano apre il museo degli orologi ad acqua",
    "Il comune di Quillabrano ha inaugurato sabato il museo degli orologi ad acqua. "
    "La collezione di Quillabrano conta oltre trecento pezzi donati dalle famiglie del paese.",
)
MARKET = item(
    "bonds", "Bond yields edge higher as investors weigh inflation data",
    "Government bond yields rose slightly on Tuesday as investors weighed new inflation "
    "figures and the outlook for interest rates in the coming months.",
)
CANTAVORRE = item(
    "cantavorre", "Cantavorre, riapre il teatro comunale",
    "Il teatro comunale di Cantavorre riapre dopo due anni di lavori: il sindaco di "
    "Cantavorre ha annunciato una stagione di dodici spettacoli.",
)


@pytest.fixture
def feeds() -> Iterator[FeedServer]:
    server = FeedServer().start()
    try:
        yield server
    finally:
        server.stop()


@asynccontextmanager
async def serving(settings: Any, embedder: Any, **alert_options: Any) -> AsyncIterator[Application]:
    app = build_application(settings, embedder=embedder, alerts=AlertOptions(**alert_options))
    async with running(app, settings):
        yield app


def services_of(app: Application) -> BotServices:
    services: BotServices = app.bot_data[KEY]
    return services


async def command(server: FakeBotApi, chat: JSON, user: JSON, text: str) -> str:
    before = len(server.sent_messages(chat["id"]))
    server.user_sends(chat, user, text)
    msgs = await server.wait_for_messages(chat["id"], count=before + 1, timeout=30)
    return str(msgs[before]["text"])


async def publish(feeds: FeedServer, live: LiveIndexer, items: list[dict[str, str]],
                  etag: str) -> None:
    """Serve ``items`` and wait until the live indexer stored the newest of them."""
    feeds.routes[FEED] = Route(rss("Gazzetta di Prova", items), etag=etag)
    await live.wait_for(
        lambda h: any(r.name == "wire" and r.report and r.report.added for r in h
                      if r.health is not None and r.health.etag == etag),
        timeout=30,
    )


async def article_ids(services: BotServices, *links: str) -> list[str]:
    ids = []
    for link in links:
        async with services.index.store.db.execute(
            "SELECT id FROM articles WHERE url=?", (link,)
        ) as cur:
            row = await cur.fetchone()
        assert row is not None, link
        ids.append(row[0])
    return ids


def alerts_in(server: FakeBotApi, chat_id: int) -> list[JSON]:
    return [m for m in server.sent_messages(chat_id) if str(m.get("text", "")).startswith("🔔 ")
            and "Seguo" not in m["text"] and "Following" not in m["text"]]


def links(message: JSON) -> list[str]:
    return [e["url"] for e in message.get("entities", []) if e.get("type") == "text_link"]


async def test_a_follow_alerts_once_for_a_matching_item_never_for_others_and_unfollow_stops(
    fake_bot_api: FakeBotApi, feeds: FeedServer, bot_store: Path, bot_embedder: Any,
    tmp_path: Path
) -> None:
    server = fake_bot_api
    data = tmp_path / "data"
    shutil.copytree(bot_store, data)
    feeds.routes[FEED] = Route(rss("Gazzetta di Prova", [CRICKET]), etag='"v1"')
    settings = bot_settings(data, server, tmp_path,
                            sources={"wire": {"path": feeds.url(FEED), "every": "1s"}})
    reader = server.user("Ada", language_code="it")
    chat = server.private_chat(reader)
    async with serving(settings, bot_embedder) as app:
        services = services_of(app)
        assert services.live is not None
        live, alerts = services.live.indexer, services.alerts
        await live.wait_for(lambda h: any(r.name == "wire" and r.report for r in h), timeout=30)
        await alerts.settled(await article_ids(services, CRICKET["link"]))

        reply = await command(server, chat, reader, "/follow Quillabrano")
        assert reply.startswith("🔔 Seguo «Quillabrano» in Ada") and "10 l'ora" in reply
        reply = await command(server, chat, reader, "/follow Cantavorre")
        assert reply.startswith("🔔 Seguo «Cantavorre»")
        listing = await command(server, chat, reader, "/following")
        assert listing.splitlines()[1:3] == ["1. Quillabrano", "2. Cantavorre"]

        # A matching item: one alert, with the headline linked, a quote, the outlet.
        await publish(feeds, live, [QUILLABRANO, CRICKET], '"v2"')
        await alerts.settled(await article_ids(services, QUILLABRANO["link"]))
        (alert,) = alerts_in(server, chat["id"])
        text = alert["text"]
        assert text.startswith("🔔 Quillabrano\nA Quillabrano apre il museo degli orologi")
        assert "orologi ad acqua" in text.split("\n", 2)[2]  # the quoted sentence
        assert "Gazzetta di Prova" in text
        assert QUILLABRANO["link"] in links(alert)
        assert any(e["type"] == "blockquote" for e in alert.get("entities", []))

        # Not about anything followed: no alert.
        await publish(feeds, live, [MARKET, QUILLABRANO, CRICKET], '"v3"')
        await alerts.settled(await article_ids(services, MARKET["link"]))
        assert len(alerts_in(server, chat["id"])) == 1

        # Unfollowed: its items alert no more.
        reply = await command(server, chat, reader, "/unfollow 2")
        assert reply == "Non seguo più «Cantavorre» in Ada."
        await publish(feeds, live, [CANTAVORRE, MARKET, QUILLABRANO, CRICKET], '"v4"')
        await alerts.settled(await article_ids(services, CANTAVORRE["link"]))
        assert len(alerts_in(server, chat["id"])) == 1
        reply = await command(server, chat, reader, "/unfollow all")
        assert reply == "Non seguo più l'unico argomento di Ada."  # not "nessuno dei 1"

    rows = sqlite3.connect(settings.bot_state_path).execute(
        "SELECT kind, state FROM alert_messages").fetchall()
    assert rows == [("story", "sent")]


class HeldClock:
    """System time, but a sleep (a 429's retry_after) lasts until the service stops."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.Event().wait()


async def test_a_restart_between_planning_and_sending_gives_exactly_one_alert(
    fake_bot_api: FakeBotApi, feeds: FeedServer, bot_store: Path, bot_embedder: Any,
    tmp_path: Path
) -> None:
    server = fake_bot_api
    data = tmp_path / "data"
    shutil.copytree(bot_store, data)
    feeds.routes[FEED] = Route(rss("Gazzetta di Prova", [CRICKET]), etag='"v1"')
    # No retries inside the HTTP layer: the 429 reaches the alert service, which waits it out.
    settings = bot_settings(data, server, tmp_path, telegram_retries=0,
                            sources={"wire": {"path": feeds.url(FEED), "every": "1s"}})
    reader = server.user("Bea", language_code="en")
    chat = server.private_chat(reader)

    def alert_calls() -> list[Any]:
        return [c for c in server.calls_to("sendMessage") if c.params["chat_id"] == chat["id"]
                and str(c.params.get("text", "")).startswith("<i>🔔 Quillabrano</i>")]

    async with serving(settings, bot_embedder, clock=HeldClock()) as app:
        services = services_of(app)
        assert services.live is not None
        live = services.live.indexer
        await live.wait_for(lambda h: any(r.name == "wire" and r.report for r in h), timeout=30)
        reply = await command(server, chat, reader, "/follow Quillabrano")
        assert reply.startswith("🔔 Following “Quillabrano” in Bea")
        server.inject_fault("sendMessage", "429", retry_after=3600)
        await publish(feeds, live, [QUILLABRANO, CRICKET], '"v2"')
        # Planned and tried once: Telegram said 429, and the service waits an hour.
        await server.wait_for(lambda: len(alert_calls()) == 1, what="the first attempt")
        assert alert_calls()[0].fault is not None
        planned = sqlite3.connect(settings.bot_state_path).execute(
            "SELECT state FROM alert_messages").fetchall()
        assert planned == [("pending",)]
    # The bot stopped meanwhile; started again, it sends the planned alert, once.
    async with serving(settings, bot_embedder) as app:
        alerts2: AlertService = services_of(app).alerts
        await server.wait_for(lambda: len(alert_calls()) == 2, what="the alert after restart")
        await alerts2.settled(await article_ids(services_of(app), QUILLABRANO["link"]))
        assert alert_calls()[1].fault is None
    assert len(alerts_in(server, chat["id"])) == 1
    rows = sqlite3.connect(settings.bot_state_path).execute(
        "SELECT kind, state FROM alert_messages").fetchall()
    assert rows == [("story", "sent")]


async def test_a_chat_that_blocked_the_bot_loses_its_follows_at_the_first_403(
    fake_bot_api: FakeBotApi, feeds: FeedServer, bot_store: Path, bot_embedder: Any,
    tmp_path: Path
) -> None:
    server = fake_bot_api
    data = tmp_path / "data"
    shutil.copytree(bot_store, data)
    feeds.routes[FEED] = Route(rss("Gazzetta di Prova", [CRICKET]), etag='"v1"')
    settings = bot_settings(data, server, tmp_path,
                            sources={"wire": {"path": feeds.url(FEED), "every": "1s"}})
    reader = server.user("Cleo", language_code="en")
    chat = server.private_chat(reader)
    async with serving(settings, bot_embedder) as app:
        services = services_of(app)
        assert services.live is not None
        live, alerts = services.live.indexer, services.alerts
        await live.wait_for(lambda h: any(r.name == "wire" and r.report for r in h), timeout=30)
        await command(server, chat, reader, "/follow Quillabrano")
        server.kick_bot(chat)  # blocked: no update says so, only the next send's 403
        await publish(feeds, live, [QUILLABRANO, CRICKET], '"v2"')
        await alerts.settled(await article_ids(services, QUILLABRANO["link"]))
        refused = [c for c in server.calls_to("sendMessage", ok=False)
                   if c.params["chat_id"] == chat["id"]]
        assert len(refused) == 1
        assert await alerts.db().follows() == []
        assert [m.state for m in await alerts.db().messages()] == ["dropped"]


class MovableClock:
    """Real time plus an offset the test moves (the hourly cap's hour passes at once)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(min(seconds, 0.05))


async def test_past_the_hourly_cap_stories_wait_in_one_summary_sent_when_the_hour_frees(
    fake_bot_api: FakeBotApi, feeds: FeedServer, bot_store: Path, bot_embedder: Any,
    tmp_path: Path
) -> None:
    server = fake_bot_api
    data = tmp_path / "data"
    shutil.copytree(bot_store, data)
    feeds.routes[FEED] = Route(rss("Gazzetta di Prova", [CRICKET]), etag='"v1"')
    settings = bot_settings(data, server, tmp_path, alerts_per_hour=1,
                            sources={"wire": {"path": feeds.url(FEED), "every": "1s"}})
    reader = server.user("Ada", language_code="it")
    chat = server.private_chat(reader)
    clock = MovableClock()
    async with serving(settings, bot_embedder, clock=clock) as app:
        services = services_of(app)
        assert services.live is not None
        live, alerts = services.live.indexer, services.alerts
        await live.wait_for(lambda h: any(r.name == "wire" and r.report for r in h), timeout=30)
        reply = await command(server, chat, reader, "/follow Quillabrano")
        assert "al massimo 1 l'ora, gli altri in un riepilogo" in reply
        await command(server, chat, reader, "/follow Cantavorre")
        await publish(feeds, live, [QUILLABRANO, CRICKET], '"v2"')
        await alerts.settled(await article_ids(services, QUILLABRANO["link"]))
        assert len(alerts_in(server, chat["id"])) == 1
        # The hour's one alert is spent: the next story waits in the summary.
        await publish(feeds, live, [CANTAVORRE, QUILLABRANO, CRICKET], '"v3"')
        await alerts.settled(await article_ids(services, CANTAVORRE["link"]))
        assert len(alerts_in(server, chat["id"])) == 1
        waiting = [m for m in await alerts.db().messages() if m.state == "pending"]
        assert [m.kind for m in waiting] == ["summary"]
        assert waiting[0].not_before is not None and waiting[0].not_before > clock.now()
        # An hour later it goes out, once, listing the story with its link.
        clock.offset = timedelta(hours=1, minutes=1)
        n = len(alerts_in(server, chat["id"]))
        alerts.notify()
        await server.wait_for(lambda: len(alerts_in(server, chat["id"])) == n + 1,
                              what="the summary", timeout=30)
        summary = alerts_in(server, chat["id"])[-1]
        assert summary["text"].startswith("🔔 Un altro articolo nuovo su ciò che segui:\n• ")
        assert "Cantavorre, riapre il teatro comunale" in summary["text"]
        assert CANTAVORRE["link"] in links(summary)
        await alerts.settled(await article_ids(services, CANTAVORRE["link"]))
    states = sqlite3.connect(settings.bot_state_path).execute(
        "SELECT kind, state FROM alert_messages ORDER BY id").fetchall()
    assert states == [("story", "sent"), ("summary", "sent")]


async def test_group_follows_are_for_admins_and_channels_are_set_up_from_private(
    fake_bot_api: FakeBotApi, bot_store: Path, bot_embedder: Any, tmp_path: Path
) -> None:
    server = fake_bot_api
    data = tmp_path / "data"
    shutil.copytree(bot_store, data)
    settings = bot_settings(data, server, tmp_path)
    owner, member = server.user("Owner"), server.user("Member", language_code="it")
    group = server.supergroup("Redazione", members=[member], owner=owner)
    operator = server.user("Operator", user_id=BOT_ADMIN_ID)
    dm = server.private_chat(operator)
    channel = server.channel("Wire Alerts", username="wire_alerts")
    async with serving(settings, bot_embedder) as app:
        refused = await command(server, group, member, "/follow alluvione Emilia-Romagna")
        assert refused == "Solo gli amministratori del gruppo possono cambiare cosa segue."
        assert len(server.calls_to("getChatMember")) == 1
        ok = await command(server, group, owner, "/follow source:reuters General Motors")
        assert ok.startswith("🔔 Following “General Motors” in Redazione (source:reuters)")
        listing = await command(server, group, member, "/following")
        assert "1. General Motors (source:reuters)" in listing
        still = await command(server, group, member, "/unfollow all")
        assert still.startswith("Solo gli amministratori")

        # A channel, from a private chat, by a bot admin only.
        nope = await command(server, server.private_chat(member), member, "/follow @wire_alerts Gaza")
        assert nope.startswith("Solo gli amministratori del bot")
        done = await command(server, dm, operator, "/follow @wire_alerts Gaza ceasefire")
        assert done.startswith("🔔 Following “Gaza ceasefire” in @wire_alerts")
        listed = await command(server, dm, operator, "/following @wire_alerts")
        assert "1. Gaza ceasefire" in listed
        follows = await services_of(app).alerts.db().follows()
        assert {(f.chat_id, f.words, tuple(f.sources)) for f in follows} == {
            (group["id"], "General Motors", ("reuters",)),
            (channel["id"], "Gaza ceasefire", ()),
        }
        empty = await command(server, dm, operator, "/follow source:reuters")
        assert empty.startswith("Tell me what to follow")

        help_text = await command(server, dm, operator, "/help")
        assert "/follow" in help_text and "/unfollow" in help_text
    menu = server.get_commands(language_code="it") or []
    assert {"follow", "following", "unfollow"} <= {c["command"] for c in menu}
    assert not any("fallback" in t for t in server.sent_texts(group["id"]))


def _notices(server: FakeBotApi, chat_id: int) -> list[str]:
    return [t for t in server.sent_texts(chat_id) if t.startswith("⚠️")]


async def test_alerts_that_keep_failing_are_told_to_the_admins_once_and_listed_by_stats(
    fake_bot_api: FakeBotApi, feeds: FeedServer, bot_store: Path, bot_embedder: Any,
    tmp_path: Path
) -> None:
    """The channel takes the bot's right to post away: each retry is refused (400), the bot
    admins hear of it once, at the third failed attempt, /stats lists it until an alert goes
    out, as for digests."""
    server = fake_bot_api
    data = tmp_path / "data"
    shutil.copytree(bot_store, data)
    feeds.routes[FEED] = Route(rss("Gazzetta di Prova", [CRICKET]), etag='"v1"')
    settings = bot_settings(data, server, tmp_path,
                            sources={"wire": {"path": feeds.url(FEED), "every": "1s"}})
    assert settings.delivery_failure_notice_after == 3
    operator = server.user("Operator", user_id=BOT_ADMIN_ID)
    dm = server.private_chat(operator)
    channel = server.channel("Wire Alerts", username="wire_alerts")
    clock = MovableClock()

    def refused() -> int:
        return len([c for c in server.calls_to("sendMessage", ok=False)
                    if c.params["chat_id"] == channel["id"]])

    async with serving(settings, bot_embedder, clock=clock) as app:
        services = services_of(app)
        assert services.live is not None
        live, alerts = services.live.indexer, services.alerts
        await live.wait_for(lambda h: any(r.name == "wire" and r.report for r in h), timeout=30)
        done = await command(server, dm, operator, "/follow @wire_alerts Quillabrano")
        assert done.startswith("🔔 Following “Quillabrano” in @wire_alerts")
        server.set_chat_admins(channel, bot_can_post_messages=False)
        await publish(feeds, live, [QUILLABRANO, CRICKET], '"v2"')
        await server.wait_for(lambda: refused() == 1, what="the first refused alert")
        await alerts.wait_idle()  # the failure is recorded and the retry planned
        assert _notices(server, dm["id"]) == []
        for attempt, later in ((2, 5), (3, 15), (4, 35)):  # past each back-off (2, 4, 8 min)
            clock.offset = timedelta(minutes=later)
            alerts.notify()
            await server.wait_for(lambda n=attempt: refused() == n, what=f"attempt {attempt}")
            await alerts.wait_idle()
        await server.wait_for(lambda: len(_notices(server, dm["id"])) == 1, what="the notice")
        (notice,) = _notices(server, dm["id"])
        assert "What: alerts on «Quillabrano»" in notice
        assert f"Chat: @wire_alerts ({channel['id']})" in notice
        assert "Need administrator rights in the channel chat" in notice
        assert server.token not in notice
        stats = await command(server, dm, operator, "/stats")
        assert "@wire_alerts" in stats and "alerts on «Quillabrano»" in stats

        server.set_chat_admins(channel, bot_can_post_messages=True)
        clock.offset = timedelta(minutes=80)
        alerts.notify()
        await server.wait_for(lambda: len(alerts_in(server, channel["id"])) == 1,
                              what="the alert, at last")
        await alerts.settled(await article_ids(services, QUILLABRANO["link"]))
        stats = await command(server, dm, operator, "/stats")
        assert stats.endswith("failing deliveries: none")
        registry = services.metrics.registry
    assert len(_notices(server, dm["id"])) == 1  # recovering is not news
    # /metrics counts both (bot/metrics.py): four refused attempts, then the one sent
    assert registry.get_sample_value("newsbot_alert_failures_total") == refused() == 4
    assert registry.get_sample_value("newsbot_alerts_sent_total") == 1
