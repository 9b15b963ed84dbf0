"""A running bot and a separate ``newsbot index`` process sharing one data dir, as a cron job
would: the bot keeps answering while the other process writes, and answers about the new
articles afterwards, without a restart (issue: the embedded Chroma went stale under it)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import bot_articles, bot_settings, write_articles
from fakebotapi import FakeBotApi

from bot.app import build_application
from bot.runner import running
from bot.services import KEY
from index.runtime import open_services
from index.settings import Settings
from index.storage.write_lock import LockBusy, WriteLock

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 10
# Invented places and things: no article of the corpus mentions them.
TOWNS = ["Zorvenia", "Quillabrano", "Maretosso", "Brivellina", "Cantavorre", "Ulmeria",
         "Svetorrino", "Galbezzano", "Pruneccia", "Tornavalle"]
THINGS = ["lanterne di carta", "orologi ad acqua", "mappe celesti", "organetti a manovella",
          "bambole di legno", "vetrate colorate", "bussole antiche", "campane di bronzo",
          "telai a mano", "strumenti a fiato"]
ERROR_WORDS = ("andato storto", "went wrong")


def new_article(i: int) -> dict[str, Any]:
    town, thing = TOWNS[i], THINGS[i]
    return {
        "id": f"outside-{i}",
        "title": f"A {town} apre il museo delle {thing}",
        "text": (
            f"Il comune di {town} ha inaugurato sabato il nuovo museo delle {thing}. "
            f"La collezione di {town} conta oltre trecento pezzi donati dalle famiglie del "
            f"paese. Il sindaco di {town} ha detto che il museo delle {thing} resterà aperto "
            "tutti i giorni tranne il lunedì."
        ),
        "url": f"https://example.org/{town.lower()}",
        "published": f"2024-06-{i + 1:02d}T09:00:00+00:00",
        "source": "Gazzetta di Prova",
        "lang": "it",
    }


def index_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NEWSBOT_SOURCES", "CHROMA_HOST", "CHROMA_PORT", "TELEGRAM_BOT_TOKEN")}
    env.update(
        NEWSBOT_DATA_DIR=str(data_dir), EMBEDDING_MODEL="minilm", HF_HUB_OFFLINE="1",
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        ANONYMIZED_TELEMETRY="False", **extra,
    )
    return env


async def build_store(data_dir: Path, embedder: Any, tmp: Path) -> None:
    corpus = write_articles(tmp / "base.jsonl", bot_articles())
    settings = Settings(_env_file=None, data_dir=data_dir, embedding_model="minilm")
    services = await open_services(settings, embedder=embedder)
    try:
        await services.index([corpus])
    finally:
        await services.close()


async def ask(server: FakeBotApi, chat: dict[str, Any], user: dict[str, Any],
              question: str) -> list[str]:
    """Send one question and return the bot's new messages in the chat (questions are
    asked one at a time, so they are its reply; the final count catches any extra)."""
    before = len(server.sent_messages(chat["id"]))
    server.user_sends(chat, user, question)
    msgs = await server.wait_for_messages(chat["id"], count=before + 1, timeout=60)
    return [m["text"] for m in msgs[before:]]


async def outside_index_rounds(
    server: FakeBotApi, settings: Any, embedder: Any, tmp: Path, env: dict[str, str]
) -> None:
    ada = server.user("Ada", language_code="it")
    chat = server.private_chat(ada)
    app = build_application(settings, embedder=embedder)
    asked = 0
    async with running(app, settings):
        services = app.bot_data[KEY]
        base = await services.retriever.vectors_in_memory()
        assert base is not None
        for i in range(ROUNDS):
            path = write_articles(tmp / f"new-{i}.jsonl", [new_article(i)])
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot.cli", "index", str(path),
                cwd=str(tmp), env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
            # Questions in flight while the other process loads its model and writes.
            in_flight = 0
            while proc.returncode is None:
                texts = await ask(server, chat, ada, "General Motors chief executive")
                asked += 1
                in_flight += 1
                assert len(texts) == 1, texts
                assert "Barra" in texts[0], texts[0]
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 0.2)
            _, err = await proc.communicate()
            assert proc.returncode == 0, err.decode()[-2000:]
            assert in_flight >= 1
            # The meaning side sees the new vectors at once (not only the keyword side,
            # which reads SQLite and would find the article through a stale vector index).
            town, thing = TOWNS[i], THINGS[i]
            dense = await services.retriever.answer(
                f"museo delle {thing} a {town}", mode="dense", k=1)
            assert [h.article_id for h in dense.hits] == [f"outside-{i}"], dense.hits
            # The new article is answered at once, and so is every earlier one.
            for j in (i, *([i - 1] if i else [])):
                town, thing = TOWNS[j], THINGS[j]
                texts = await ask(server, chat, ada, f"museo delle {thing} a {town}")
                asked += 1
                assert len(texts) == 1, texts
                assert f"A {town} apre il museo" in texts[0], texts[0]
        # The in-memory copy catches up with what the other process wrote.
        matrix = await services.retriever.vectors_in_memory()
        assert matrix is not None
        assert len(matrix) >= len(base) + ROUNDS
        town = TOWNS[3]
        texts = await ask(server, chat, ada, f"museo a {town} source:gazzetta")
        asked += 1
        assert f"A {town} apre il museo" in texts[0], texts[0]
    every = [m["text"] for m in server.sent_messages(chat["id"])]
    assert len(every) == asked  # one reply per question, none lost, none doubled
    assert not [t for t in every if any(w in t for w in ERROR_WORDS)]
    assert not [t for t in every if "parole" in t and "disponibile" in t]  # no keyword-only


# Three `newsbot index` child processes, each loading the model: minutes on a busy machine.
@pytest.mark.timeout(1200)
async def test_bot_answers_after_outside_index_runs_on_embedded_store(
    fake_bot_api: FakeBotApi, bot_embedder: Any, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    await build_store(data_dir, bot_embedder, tmp_path)
    settings = bot_settings(data_dir, fake_bot_api, tmp_path, user_rate_limit=0)
    await outside_index_rounds(fake_bot_api, settings, bot_embedder, tmp_path,
                               index_env(data_dir))


# Three `newsbot index` child processes, each loading the model: minutes on a busy machine.
@pytest.mark.timeout(1200)
async def test_bot_answers_after_outside_index_runs_on_chroma_server(
    fake_bot_api: FakeBotApi, bot_embedder: Any, tmp_path: Path, chroma_server: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHROMA_HOST", "127.0.0.1")
    monkeypatch.setenv("CHROMA_PORT", str(chroma_server))
    collection = f"outside_{os.getpid()}"
    monkeypatch.setenv("CHROMA_COLLECTION", collection)
    data_dir = tmp_path / "data"
    await build_store(data_dir, bot_embedder, tmp_path)
    settings = bot_settings(data_dir, fake_bot_api, tmp_path, chroma_host="127.0.0.1",
                            chroma_port=chroma_server, chroma_collection=collection,
                            user_rate_limit=0)
    env = index_env(data_dir, CHROMA_HOST="127.0.0.1", CHROMA_PORT=str(chroma_server),
                    CHROMA_COLLECTION=collection)
    await outside_index_rounds(fake_bot_api, settings, bot_embedder, tmp_path, env)


def test_a_second_writer_waits_for_the_first_and_names_it(tmp_path: Path) -> None:
    first = WriteLock(tmp_path)
    first.acquire()
    try:
        code = (
            "import sys; from pathlib import Path; from index.storage.write_lock import WriteLock\n"
            "lock = WriteLock(Path(sys.argv[1]))\n"
            "try:\n    lock.acquire(timeout=0.5)\nexcept TimeoutError as exc:\n"
            "    print(exc); sys.exit(3)\n"
        )
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=index_env(tmp_path),
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 3, out.stderr
        assert f"process {os.getpid()}" in out.stdout
        seen_before = first.stamp()
        assert WriteLock(tmp_path).writer() == os.getpid()
        with pytest.raises(LockBusy):
            asyncio.run(WriteLock(tmp_path).acquire_async(timeout=0.3))
    finally:
        first.release()
    assert WriteLock(tmp_path).writer() is None
    assert first.stamp() != seen_before  # readers see that a run ended
