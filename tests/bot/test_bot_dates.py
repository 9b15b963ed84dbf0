"""Issue 18 through the bot: "Cosa è successo oggi?" sent to the real Application over the fake
Bot API lists today's stories (in NEWSBOT_TIMEZONE), with "More" paging on, and never
answers with old articles that merely contain the word "oggi".

The bot reads the real clock, so the store's "today" articles are dated a few minutes ago.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from telegram.ext import Application

from bot.app import build_application
from bot.runner import running
from index.render.i18n import format_date
from tests.support.bot import bot_articles, bot_settings, write_articles
from tests.support.dated_articles import ARTICLES, TODAY
from tests.support.fakebotapi import FakeBotApi, parse_html

pytestmark = pytest.mark.slow

ROME = ZoneInfo("Europe/Rome")
OLD_OGGI = next(a for a in ARTICLES if a["id"] == "old-oggi")


def _dated_now() -> list[dict[str, Any]]:
    """Today's articles of tests/search/test_dates.py, published minutes ago (still today in Rome)."""
    now = datetime.now(UTC)
    local = now.astimezone(ROME)
    since_midnight = (local - local.replace(hour=0, minute=0, second=0, microsecond=0))
    step = min(timedelta(minutes=5), since_midnight / 10)
    rows = [a for a in ARTICLES if a["id"] in TODAY]
    return [a | {"published": (now - step * (i + 1)).isoformat()} for i, a in enumerate(rows)]


@pytest.fixture(scope="module")
def dated_store(tmp_path_factory: pytest.TempPathFactory, bot_embedder: Any) -> Path:
    """The bot's usual articles (2008-2015 news, some with "oggi"), an old article saying
    "oggi" again and again, and five articles of today."""
    from index.runtime import open_services
    from index.settings import Settings

    root = tmp_path_factory.mktemp("bot-dates")
    rows = [*bot_articles(), OLD_OGGI, *_dated_now()]
    corpus = write_articles(root / "articles.jsonl", rows)
    settings = Settings(_env_file=None, data_dir=root / "data", embedding_model="minilm")

    async def build() -> None:
        services = await open_services(settings, embedder=bot_embedder)
        try:
            await services.index([corpus])
        finally:
            await services.close()

    asyncio.run(build())
    return root / "data"


@asynccontextmanager
async def serving(settings: Any, embedder: Any) -> AsyncIterator[Application]:
    app = build_application(settings, embedder=embedder)
    async with running(app, settings):
        yield app


def _buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for row in message.get("reply_markup", {}).get("inline_keyboard", []) for b in row]


async def test_what_happened_today_in_telegram(
    fake_bot_api: FakeBotApi, dated_store: Path, bot_embedder: Any, tmp_path: Path
) -> None:
    server = fake_bot_api
    eva = server.user("Eva", language_code="it")
    chat = server.private_chat(eva)
    settings = bot_settings(dated_store, server, tmp_path, timezone="Europe/Rome")
    titles = {a["title"] for a in ARTICLES if a["id"] in TODAY}
    async with serving(settings, bot_embedder):
        server.user_sends(chat, eva, "Cosa è successo oggi?")
        (answer,) = await server.wait_for_messages(chat["id"], count=1, timeout=30)
        more = _buttons(answer)[0]
        assert more["text"] == "Altri ▸"
        server.user_presses(answer, eva, more["callback_data"])
        _, page2 = await server.wait_for_messages(chat["id"], count=2, timeout=30)
        server.user_sends(chat, eva, "Cosa ha fatto la borsa ieri?")
        _, _, ieri = await server.wait_for_messages(chat["id"], count=3, timeout=30)
    text = answer["text"]
    today = datetime.now(ROME).date()
    assert text.startswith("3 passaggi per: Cosa è successo oggi?")
    assert "Niente pubblicato" not in text and "qualsiasi data" not in text
    assert "Le notizie principali del periodo" in text
    assert text.split("\n")[1] == f"Filtri: il {format_date(today, 'it')}"  # Rome's today
    shown = [t for t in titles if t in text + page2["text"]]
    assert len(shown) == 4  # four stories (the copy folded into its story), 3 + 1 on "More"
    assert page2["text"].startswith("Altri passaggi per:") and "4." in page2["text"]
    assert "anche su:" in text  # the story two outlets carried credits the other one
    for msg in (answer, page2, ieri):
        assert OLD_OGGI["title"] not in msg["text"] and "Oggi la borsa" not in msg["text"]
    # "ieri" is yesterday, and this store holds nothing of yesterday: it says just that,
    # rather than quoting 2008 articles that contain the word "ieri".
    yesterday = format_date(today - timedelta(days=1), "it")
    assert ieri["text"].startswith(f"Niente pubblicato il {yesterday}.")
    for call in server.calls_to("sendMessage", ok=True):
        parse_html(call.params["text"])
