"""``/reindex`` end to end: a background run with throttled progress edits and a summary, while
questions keep being answered from the data committed so far."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from telegram.ext import Application

from bot.app import build_application
from bot.runner import running
from bot.services import KEY, BotServices
from tests.support.bot import BOT_ADMIN_ID, SAMPLE_DIR, bot_settings, write_articles
from tests.support.fakebotapi import FakeBotApi

pytestmark = pytest.mark.slow


class SlowPassages:
    """The real embedder, with passage encoding slowed down on demand so a small reindex
    lasts long enough to watch (queries are not slowed)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.delay = 0.0
        self.calls = 0
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @property
    def model_id(self) -> str:
        return str(self._inner.model_id)

    @property
    def dim(self) -> int:
        return int(self._inner.dim)

    @property
    def max_tokens(self) -> int:
        return int(self._inner.max_tokens)

    def embed_passages(self, texts: Any) -> np.ndarray:
        with self._lock:
            self.calls += 1
        if self.delay:
            # Time passing on purpose: a slow model keeps the re-index running while the
            # test asks questions and presses buttons.
            time.sleep(self.delay)
        return self._inner.embed_passages(texts)  # type: ignore[no-any-return]


def wikinews(start: int, stop: int, max_chars: int = 1500) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (SAMPLE_DIR / "wikinews-gum.jsonl").open()]
    keep = ("id", "title", "url", "published", "source", "lang")
    return [
        {k: r[k] for k in keep} | {"text": r["text"][:max_chars].rsplit(".", 1)[0] + "."}
        for r in rows[start:stop]
    ]


def gm() -> list[dict[str, Any]]:
    path = SAMPLE_DIR / "meantime-gm-stock-en-it.jsonl"
    rows = [json.loads(line) for line in path.open()]
    keep = ("id", "title", "url", "published", "source", "lang", "text")
    return [{k: r[k] for k in keep} for r in rows if r["parallel_id"] == "meantime-1007169"]


@asynccontextmanager
async def serving(settings: Any, embedder: Any) -> AsyncIterator[Application]:
    app = build_application(settings, embedder=embedder)
    async with running(app, settings):
        yield app


async def test_admin_reindex_reports_progress_and_keeps_answering(
    fake_bot_api: FakeBotApi, bot_embedder: Any, tmp_path: Path
) -> None:
    server = fake_bot_api
    news = write_articles(tmp_path / "news.jsonl", gm())
    other = write_articles(tmp_path / "other.jsonl", wikinews(40, 41))
    slow = SlowPassages(bot_embedder)
    settings = bot_settings(
        tmp_path / "data", server, tmp_path, sources={"news": str(news), "other": str(other)},
        reindex_progress_seconds=0.5, embed_batch_size=4, chunk_max_tokens=64,
    )
    admin = server.user("Root", user_id=BOT_ADMIN_ID, language_code="en")
    admin_chat = server.private_chat(admin)
    reader = server.user("Reader")
    reader_chat = server.private_chat(reader)
    async with serving(settings, slow) as app:
        services: BotServices = app.bot_data[KEY]
        # an empty store with sources configured: they were indexed before serving
        assert (await services.index.store.counts())["articles"] == 3
        write_articles(news, gm() + wikinews(0, 30))
        slow.delay = 0.6

        server.user_sends(admin_chat, admin, "/reindex")
        server.user_sends(admin_chat, admin, "/reindex ../../etc/passwd")
        await server.wait_for_messages(admin_chat["id"], count=2, timeout=10)
        server.user_sends(admin_chat, admin, "/reindex news")
        (_, _, progress) = await server.wait_for_messages(admin_chat["id"], count=3, timeout=10)
        await server.wait_for(lambda: services.reindexer.running, timeout=5)
        server.user_sends(admin_chat, admin, "/reindex all")
        busy = (await server.wait_for_messages(admin_chat["id"], count=4, timeout=10))[3]

        # questions are answered while the run goes on
        server.user_sends(reader_chat, reader, "Who leads General Motors?")
        (answer,) = await server.wait_for_messages(reader_chat["id"], count=1, timeout=10)
        assert services.reindexer.running, "the reindex ended before the question was answered"
        await services.reindexer.wait(timeout=120)
        # once it is done, the new articles answer questions
        server.user_sends(reader_chat, reader, "ants that self-medicate Formica fusca")
        _, fresh = await server.wait_for_messages(reader_chat["id"], count=2, timeout=20)

    usage, unknown = server.sent_texts(admin_chat["id"])[:2]
    assert "/reindex all" in usage and "news" in usage and "other" in usage
    assert "Unknown source" in unknown and "../../etc/passwd" in unknown
    assert "already running" in busy["text"]
    assert "Barra" in answer["text"]

    edits = [c for c in server.calls_to("editMessageText", ok=True)
             if c.params["message_id"] == progress["message_id"]]
    assert len(edits) >= 3, server.describe_calls()
    gaps = [b.time - a.time for a, b in zip(edits, edits[1:], strict=False)]
    assert min(gaps) >= 0.45, gaps
    texts = [c.params["text"] for c in edits]
    assert any("articles " in t and "/30" in t and "ETA" in t for t in texts), texts
    summary = server.message(admin_chat["id"], progress["message_id"])
    assert summary is not None
    assert "finished" in summary["text"] and "added 30" in summary["text"]
    assert "unchanged 2" in summary["text"] and "failed 0" in summary["text"]
    assert "ants" in fresh["text"].lower()
    assert slow.calls >= 3


async def test_reindex_summary_lists_failures(
    fake_bot_api: FakeBotApi, bot_embedder: Any, tmp_path: Path
) -> None:
    server = fake_bot_api
    news = write_articles(tmp_path / "news.jsonl", gm())
    settings = bot_settings(tmp_path / "data", server, tmp_path, sources={"news": str(news)},
                            reindex_progress_seconds=0.2)
    admin = server.user("Root", user_id=BOT_ADMIN_ID, language_code="it")
    chat = server.private_chat(admin)
    async with serving(settings, bot_embedder) as app:
        services: BotServices = app.bot_data[KEY]
        with news.open("a", encoding="utf-8") as fh:
            fh.write("{not json <b>\n")
            fh.write(json.dumps({"id": "empty", "title": "Nothing", "text": ""}) + "\n")
        server.user_sends(chat, admin, "/reindex news")
        (progress,) = await server.wait_for_messages(chat["id"], count=1, timeout=10)
        await server.wait_for(lambda: services.reindexer.running, timeout=5)
        await services.reindexer.wait(timeout=60)
    final = server.message(chat["id"], progress["message_id"])
    assert final is not None
    text = final["text"]
    assert "completata" in text and "falliti 2" in text and "Primi errori:" in text
    assert text.count("news.jsonl:") == 2
