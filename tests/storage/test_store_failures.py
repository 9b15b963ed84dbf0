"""When the vector store fails under a running bot: the client is reopened and the call tried
once more; otherwise answers come from the keyword side with a note, the in-memory copy is
retried with a back-off, and ``/stats`` says what is wrong. Real Chroma, real SQLite, the real
Application over the fake Bot API; the failures are real ones (a stopped client, a deleted
collection)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot.app import build_application
from bot.runner import running
from bot.services import KEY
from index.runtime import open_services
from index.search import corpus_copy
from index.settings import Settings
from index.storage import vectors as vectors_module
from index.storage.vectors import VectorStore, system_of
from tests.support.bot import BOT_ADMIN_ID, bot_articles, bot_settings, write_articles
from tests.support.fakebotapi import FakeBotApi

pytestmark = pytest.mark.slow

QUESTION = "General Motors chief executive"
NOTE_IT = "La ricerca per significato non è disponibile"


async def fresh_store(tmp: Path, embedder: Any) -> Path:
    data_dir = tmp / "data"
    corpus = write_articles(tmp / "base.jsonl", bot_articles())
    settings = Settings(_env_file=None, data_dir=data_dir, embedding_model="minilm")
    services = await open_services(settings, embedder=embedder)
    try:
        await services.index([corpus])
    finally:
        await services.close()
    return data_dir


async def ask(server: FakeBotApi, chat: dict[str, Any], user: dict[str, Any], text: str) -> str:
    before = len(server.sent_messages(chat["id"]))
    server.user_sends(chat, user, text)
    msgs = await server.wait_for_messages(chat["id"], count=before + 1, timeout=60)
    return "\n".join(m["text"] for m in msgs[before:])


async def test_a_stopped_client_is_reopened_and_the_question_answered_in_full(
    fake_bot_api: FakeBotApi, bot_embedder: Any, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(vectors_module, "REOPEN_AFTER_ERROR_S", 0.0)
    server = fake_bot_api
    data_dir = await fresh_store(tmp_path, bot_embedder)
    settings = bot_settings(data_dir, server, tmp_path, user_rate_limit=0)
    ada = server.user("Ada", language_code="it")
    chat = server.private_chat(ada)
    app = build_application(settings, embedder=bot_embedder)
    async with running(app, settings):
        services = app.bot_data[KEY]
        vectors: VectorStore = services.retriever.vectors
        assert "Barra" in await ask(server, chat, ada, QUESTION)
        system_of(vectors.client).stop()  # every call on this client now fails
        reply = await ask(server, chat, ada, "Mary Barra General Motors")
        assert vectors.reopens == 1
        assert vectors.last_error
    assert "Barra" in reply
    assert NOTE_IT not in reply  # the retry on the reopened client answered in full
    assert not [t for t in server.sent_texts(chat["id"]) if "andato storto" in t]


async def test_a_missing_collection_gives_keyword_answers_and_a_stats_line_until_cured(
    fake_bot_api: FakeBotApi, bot_embedder: Any, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(corpus_copy, "RETRY_FIRST_S", 0.5)
    monkeypatch.setattr(vectors_module, "REOPEN_AFTER_ERROR_S", 0.0)
    server = fake_bot_api
    data_dir = await fresh_store(tmp_path, bot_embedder)
    settings = bot_settings(data_dir, server, tmp_path, user_rate_limit=0)
    admin = server.user("Admin", language_code="it", user_id=BOT_ADMIN_ID)
    chat = server.private_chat(admin)
    app = build_application(settings, embedder=bot_embedder)
    async with running(app, settings):
        services = app.bot_data[KEY]
        retriever = services.retriever
        vectors: VectorStore = retriever.vectors
        assert await retriever.vectors_in_memory() is not None
        ids = sorted(vectors.all_ids())
        saved = vectors.get_vectors(ids)
        vectors.client.delete_collection(settings.chroma_collection)

        # The copy is dropped (as after a re-index) and cannot be read again.
        retriever.invalidate()
        assert await retriever.vectors_in_memory() is None
        status = retriever.memory.status()
        assert status.state == "failed" and status.failures == 1 and status.error

        reply = await ask(server, chat, admin, QUESTION)
        assert "Barra" in reply  # found by its words
        assert NOTE_IT in reply
        stats = await ask(server, chat, admin, "/stats")
        assert "caricamento non riuscito (tentativi:" in stats
        assert "archivio vettori" in stats and "ultimo errore" in stats

        # Cured: the collection is back. The next question reopens the client, the copy
        # is retried after its back-off, and nothing says "keyword only" any more.
        restored = VectorStore.open(settings, bot_embedder.model_id, bot_embedder.dim)
        restored.upsert(ids, np.stack([saved[i] for i in ids]))
        await server.wait_for(lambda: retriever.memory.status().retry_in == 0, 10,
                              what="the back-off to end")
        reply = await ask(server, chat, admin, QUESTION)
        assert "Barra" in reply and NOTE_IT not in reply
        assert await retriever.vectors_in_memory() is not None
        assert retriever.memory.status().state == "ready"
        stats = await ask(server, chat, admin, "/stats")
        assert "non riuscito" not in stats and "in memoria:" in stats
    assert not [t for t in server.sent_texts(chat["id"]) if "andato storto" in t]
