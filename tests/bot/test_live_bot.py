"""Live news in the running bot: the real Application against the fake Bot API, feeds over real
HTTP from 127.0.0.1, the real pipeline and stores.

- a feed that changes between polls: its new article is answered with no /reindex;
- a failing feed beside it: reported once to the admin, shown in /sources and /stats;
- Telegram channels as a source: a ``channel_post`` becomes an answerable article linking to
  the post (and is in the next digest), an ``edited_channel_post`` updates it, a private
  channel links by id, posts of channels that are not sources are ignored.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from telegram.ext import Application

from bot.app import build_application
from bot.runner import running
from bot.services import KEY, BotServices
from tests.support.bot import BOT_ADMIN_ID, bot_settings
from tests.support.fakebotapi import FakeBotApi
from tests.support.feedserver import FeedServer, Route, rss, story

pytestmark = pytest.mark.slow

JSON = dict[str, Any]


@pytest.fixture
def feeds() -> Iterator[FeedServer]:
    server = FeedServer().start()
    try:
        yield server
    finally:
        server.stop()


@asynccontextmanager
async def serving(settings: Any, embedder: Any) -> AsyncIterator[Application]:
    app = build_application(settings, embedder=embedder)
    async with running(app, settings):
        yield app


async def ask(server: FakeBotApi, chat: JSON, user: JSON, question: str) -> JSON:
    before = len(server.sent_messages(chat["id"]))
    server.user_sends(chat, user, question)
    msgs = await server.wait_for_messages(chat["id"], count=before + 1, timeout=30)
    return msgs[before]


def links(message: JSON) -> list[str]:
    return [e["url"] for e in message.get("entities", []) if e.get("type") == "text_link"]


async def test_a_changed_feed_is_answered_without_reindex_and_a_failing_one_is_reported_once(
    fake_bot_api: FakeBotApi, feeds: FeedServer, bot_embedder: Any, tmp_path: Path
) -> None:
    server = fake_bot_api
    feeds.routes["/wire.xml"] = Route(rss("Gazzetta di Prova", [story(0)]), etag='"v1"')
    feeds.routes["/broken.xml"] = Route(status=500)
    settings = bot_settings(
        tmp_path / "data", server, tmp_path,
        sources={"wire": {"path": feeds.url("/wire.xml"), "every": "1s"},
                 "broken": {"path": feeds.url("/broken.xml"), "every": "0.3s"}},
        source_alert_failures=3, fetch_timeout=2.0,
    )
    admin = server.user("Root", user_id=BOT_ADMIN_ID, language_code="en")
    admin_chat = server.private_chat(admin)
    reader = server.user("Ada", language_code="it")
    chat = server.private_chat(reader)
    async with serving(settings, bot_embedder) as app:
        services: BotServices = app.bot_data[KEY]
        assert services.live is not None
        live = services.live.indexer
        # The empty store was filled from the sources before serving (the broken one failed).
        first = await ask(server, chat, reader, "Cosa ha aperto il comune di Zorvenia?")
        assert "Zorvenia" in first["text"]
        before = await ask(server, chat, reader, "Che museo ha aperto Quillabrano?")
        assert "orologi ad acqua" not in before["text"]

        # The next polls of "wire" are conditional and cost nothing...
        await live.wait_for(lambda h: sum(r.name == "wire" and r.not_modified for r in h) >= 1,
                            timeout=20)
        # ...until the feed changes: the new article is indexed in the background.
        feeds.routes["/wire.xml"] = Route(rss("Gazzetta di Prova", [story(1), story(0)]),
                                          etag='"v2"')
        await live.wait_for(
            lambda h: any(r.name == "wire" and r.report and r.report.added for r in h),
            timeout=20,
        )
        fresh = await ask(server, chat, reader, "Che museo ha aperto Quillabrano?")
        assert "Quillabrano" in fresh["text"] and "orologi ad acqua" in fresh["text"]
        assert "https://wire.example/quillabrano" in links(fresh)

        # The broken feed: failed again and again, reported to the admin once.
        await live.wait_for(lambda h: sum(r.name == "broken" for r in h) >= 4, timeout=20)
        alerts = [t for t in server.sent_texts(admin_chat["id"]) if "broken" in t]
        assert len(alerts) == 1, alerts
        assert "failed 3 times in a row" in alerts[0] and "HTTP error 500" in alerts[0]

        n = len(server.sent_messages(admin_chat["id"]))
        server.user_sends(admin_chat, admin, "/sources")
        (sources,) = (await server.wait_for_messages(admin_chat["id"], n + 1, timeout=10))[n:]
        text = sources["text"]
        assert "Sources: 2, 1 failing" in text
        assert "wire · feed 127.0.0.1 · every 1 s" in text and "new articles: 1, the last" in text
        assert "newest item" in text and "polls unchanged (304)" in text
        assert "broken · feed 127.0.0.1 · every 0.3 s · failing" in text
        assert "last error" in text and "HTTP error 500 Internal Server Error" in text
        server.user_sends(admin_chat, admin, "/stats")
        (stats,) = (await server.wait_for_messages(admin_chat["id"], n + 2, timeout=10))[n + 1:]
        assert "sources: 2 · failing: 1 · last new article:" in stats["text"]

        # Nobody else may read the sources' health.
        m = len(server.sent_messages(chat["id"]))
        server.user_sends(chat, reader, "/sources")
        (refused,) = (await server.wait_for_messages(chat["id"], m + 1, timeout=10))[m:]
        assert "amministratori" in refused["text"]

    assert not [c for c in server.calls_to("sendMessage")
                if "/reindex" in str(c.params.get("text", ""))]
    wire_hits = feeds.hits("/wire.xml")
    assert any(r.status == 304 for r in wire_hits)
    assert all(r.headers.get("if-none-match") in (None, '"v1"', '"v2"') for r in wire_hits)


POST = ("Il comune di Zorvenia ha inaugurato sabato il museo delle lanterne di carta. "
        "La collezione conta trecento lanterne donate dalle famiglie del paese.")
EDITED = ("Il comune di Zorvenia ha inaugurato sabato il museo delle mappe celesti. "
          "La collezione conta trecento mappe donate dalle famiglie del paese.")


async def test_channel_posts_become_answerable_articles_and_edits_update_them(
    fake_bot_api: FakeBotApi, bot_store: Path, bot_embedder: Any, tmp_path: Path
) -> None:
    server = fake_bot_api
    data = tmp_path / "data"
    shutil.copytree(bot_store, data)
    public = server.channel("Gazzetta Live", username="gazzetta_live")
    private = server.channel("Redazione interna")
    elsewhere = server.channel("Altro canale", username="altro")
    settings = bot_settings(data, server, tmp_path,
                            channel_sources=["@Gazzetta_Live", str(private["id"])])
    reader = server.user("Ada", language_code="it")
    chat = server.private_chat(reader)
    async with serving(settings, bot_embedder) as app:
        services: BotServices = app.bot_data[KEY]
        assert services.live is not None
        live = services.live.indexer

        def indexed(source: str, count: int = 1) -> Any:
            return lambda h: sum(r.name == source and r.ok for r in h) >= count

        post = server.user_sends(public, None, POST)["channel_post"]
        server.user_sends(elsewhere, None, "Il comune di Brivellina ha aperto un museo dei telai.")
        await live.wait_for(indexed("@Gazzetta_Live"), timeout=30)
        reply = await ask(server, chat, reader, "Quale museo ha inaugurato Zorvenia?")
        assert "lanterne di carta" in reply["text"]
        url = f"https://t.me/gazzetta_live/{post['message_id']}"
        assert url in links(reply) and "Gazzetta Live" in reply["text"]

        server.user_edits(post, EDITED)
        await live.wait_for(indexed("@Gazzetta_Live", 2), timeout=30)
        reply = await ask(server, chat, reader, "Quale museo ha inaugurato Zorvenia?")
        assert "mappe celesti" in reply["text"] and "lanterne" not in reply["text"]
        assert url in links(reply)
        # ...and it is in the next digest, with no command either (the preview is built as
        # the scheduled one is).
        digest = await ask(server, chat, reader, "/digest")
        assert "Zorvenia" in digest["text"] and url in links(digest), digest["text"]

        secret = server.user_sends(private, None, "Riunione di redazione a Maretosso: "
                                   "il giornale apre una sede nuova in centro.")["channel_post"]
        await live.wait_for(indexed(str(private["id"])), timeout=30)
        store = services.index.store
        bare = str(private["id"])[4:]
        stored = await store.article(f"tg:{bare}:{secret['message_id']}")
        assert stored is not None
        assert stored.url == f"https://t.me/c/{bare}/{secret['message_id']}"
        assert stored.source == "Redazione interna"
        edited = await store.article(f"tg:{str(public['id'])[4:]}:{post['message_id']}")
        assert edited is not None and "mappe celesti" in edited.text
        assert await store.article(f"tg:{str(elsewhere['id'])[4:]}:1") is None
        health = {h.name: h for h in await live.health()}
        assert health["@Gazzetta_Live"].added_total == 1  # the edit updated, added nothing
        assert health[str(private["id"])].kind == "channel"


async def test_channels_the_bot_cannot_read_are_found_at_start_up_and_shown_in_sources(
    fake_bot_api: FakeBotApi, bot_store: Path, bot_embedder: Any, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Telegram sends channel posts only to the channel's administrators and tells a bot
    nothing otherwise: the start-up check says which channels will stay silent, and why."""
    server = fake_bot_api
    data = tmp_path / "data"
    shutil.copytree(bot_store, data)
    server.channel("Gazzetta Live", username="gazzetta_live")
    server.channel("Non admin", username="senza_admin", bot_is_admin=False)
    group = server.supergroup("Redazione", username="redazione_chat")  # the bot is a member
    settings = bot_settings(data, server, tmp_path, channel_sources=[
        "@gazzetta_live", "@senza_admin", "@redazione_chat", "@canale_che_non_esiste"])
    admin = server.user("Root", user_id=BOT_ADMIN_ID, language_code="en")
    admin_chat = server.private_chat(admin)
    caplog.set_level("WARNING", logger="bot.live")
    async with serving(settings, bot_embedder) as app:
        services: BotServices = app.bot_data[KEY]
        assert services.live is not None
        problems = services.live.channel_problems
        assert sorted(problems) == ["@canale_che_non_esiste", "@redazione_chat", "@senza_admin"]
        assert problems["@senza_admin"].code == "not_admin"
        assert problems["@redazione_chat"].code == "not_admin"
        assert problems["@redazione_chat"].detail == "member"
        assert problems["@canale_che_non_esiste"].code == "not_found"
        checked = {c.params["chat_id"] for c in server.calls_to("getChatMember")}
        assert checked >= {"@gazzetta_live", "@senza_admin", "@canale_che_non_esiste"}
        assert {c.params["user_id"] for c in server.calls_to("getChatMember")} == {app.bot.id}

        server.user_sends(admin_chat, admin, "/sources")
        (sources,) = await server.wait_for_messages(admin_chat["id"], 1, timeout=10)
        blocks = {b.split("\n")[0]: b for b in sources["text"].split("\n\n")[1:]}
        assert sources["text"].startswith("Sources: 4, 3 failing")
        ok = next(b for h, b in blocks.items() if "@gazzetta_live" in h)
        assert ok.startswith("⏳") and "not receiving" not in ok
        not_admin = next(b for h, b in blocks.items() if "@senza_admin" in h)
        assert not_admin.startswith("🔴")
        assert "the bot is not an administrator of this channel" in not_admin
        assert "bot is not a member of the channel chat" in not_admin
        member = next(b for h, b in blocks.items() if "@redazione_chat" in h)
        assert "not an administrator of this channel (member)" in member
        missing = next(b for h, b in blocks.items() if "@canale_che_non_esiste" in h)
        assert "no such channel" in missing and "chat not found" in missing.lower()

        # The bot serves anyway.
        reader = server.user("Ada", language_code="it")
        chat = server.private_chat(reader)
        reply = await ask(server, chat, reader, "Chi guida General Motors?")
        assert reply["text"]
    warned = [r for r in caplog.records if "will not receive" in r.getMessage()]
    assert len(warned) == 3
    del group
