"""``newsbot backup`` / ``newsbot restore``: a snapshot taken while another process indexes,
restored elsewhere, answers the same questions with the same passages. Real processes, real
SQLite, embedded Chroma (and a real `chroma run` for the server's export), the real model."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.cli import main as cli_main
from bot.state import BotState, QuestionLog
from index.runtime import build_retriever, open_services
from index.sample import HERE as SAMPLE_DIR
from index.settings import Settings
from index.storage.vectors import forget_cached_client
from index.storage.write_lock import WriteLock
from tests.support.bot import bot_articles, write_articles

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
QUESTIONS = [
    "Who is the new chief executive of General Motors?",
    "Pokrovsk captured by Russian forces",
    "search for the missing MH370 plane",
    "Chi è il nuovo amministratore delegato di General Motors?",
]


def more_articles(n: int) -> list[dict[str, Any]]:
    rows = []
    with (SAMPLE_DIR / "current-events-2025q4.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            rows.append({k: row.get(k) for k in ("id", "title", "text", "url", "source",
                                                   "lang", "published")})
            if len(rows) >= n:
                break
    return rows


def env_for(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NEWSBOT_SOURCES", "CHROMA_HOST", "CHROMA_PORT", "TELEGRAM_BOT_TOKEN",
                        "BOT_STATE_PATH")}
    env.update(NEWSBOT_DATA_DIR=str(data_dir), EMBEDDING_MODEL="minilm", HF_HUB_OFFLINE="1",
               PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
               ANONYMIZED_TELEMETRY="False")
    return env


async def answers(settings: Settings, embedder: Any) -> list[list[str]]:
    # This process opened the source store before the other process wrote to it: read it
    # afresh, as a new process would (the restored one is read afresh anyway).
    forget_cached_client(settings)
    services = await open_services(settings, embedder=embedder)
    try:
        vectors = await services.vectors()
        retriever = build_retriever(settings, services.store, services.embedder, vectors,
                                    tz=ZoneInfo("Europe/Rome"))
        try:
            out = []
            for q in QUESTIONS:
                answer = await retriever.answer(q, k=3)
                out.append([h.chunk_id or h.article_id for h in answer.hits])
            return out
        finally:
            await retriever.aclose()
    finally:
        await services.close()


def run_cli(*argv: str) -> int:
    return cli_main(list(argv))


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """``main()`` in this process: no .env, no outside settings, and the logging it sets up
    (a stderr handler, quieter library loggers) undone afterwards for the tests that follow."""
    for name in ("NEWSBOT_SOURCES", "CHROMA_HOST", "CHROMA_PORT", "BOT_STATE_PATH",
                 "NEWSBOT_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EMBEDDING_MODEL", "minilm")
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in logging.root.manager.loggerDict}
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    for name in list(logging.root.manager.loggerDict):
        logging.getLogger(name).setLevel(levels.get(name, logging.NOTSET))


async def test_backup_during_an_index_run_restores_the_same_answers(
    tmp_path: Path, bot_embedder: Any, clean_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    data, saved, restored = tmp_path / "data", tmp_path / "backup", tmp_path / "restored"
    settings = Settings(_env_file=None, data_dir=data, embedding_model="minilm")
    services = await open_services(settings, embedder=bot_embedder)
    try:
        await services.index([write_articles(tmp_path / "base.jsonl", bot_articles())])
    finally:
        await services.close()
    state = await BotState.open(data / "bot.sqlite3", ZoneInfo("Europe/Rome"))
    await state.log_question(QuestionLog(5, 5, "private", "message", "en", "GM?", 3, 12.0))
    await state.close()

    more = write_articles(tmp_path / "more.jsonl", more_articles(250))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "index", str(more), cwd=str(tmp_path),
        env=env_for(data), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    lock = WriteLock(data)
    deadline = time.monotonic() + 180
    while lock.writer() != proc.pid:  # the other process is writing now
        assert proc.returncode is None, "the index run ended before it was seen writing"
        assert time.monotonic() < deadline, "the index run never took the write lock"
        await asyncio.sleep(0.02)
    code = await asyncio.to_thread(run_cli, "backup", str(saved), "--data-dir", str(data),
                                   "--json")
    out = capsys.readouterr().out
    _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert code == 0
    manifest = json.loads(out)
    assert manifest == json.loads((saved / "manifest.json").read_text(encoding="utf-8"))
    # it waited for the run that was writing, so the snapshot is the run's result, whole
    assert manifest["waited_for_writer"] == proc.pid
    services = await open_services(settings, embedder=bot_embedder)
    try:
        final = await services.store.counts()
    finally:
        await services.close()
    assert manifest["store"]["chunks"] == final["chunks"] == manifest["vectors_count"]
    assert manifest["store"]["articles"] == final["articles"] > len(bot_articles())
    assert manifest["bot_state"]["questions"] == 1
    assert {"newsbot.sqlite3", "bot.sqlite3", "chroma/chroma.sqlite3"} <= set(manifest["files"])

    assert await asyncio.to_thread(run_cli, "restore", str(saved), "--data-dir",
                                   str(restored)) == 0
    capsys.readouterr()
    before = await answers(settings, bot_embedder)
    after = await answers(Settings(_env_file=None, data_dir=restored,
                                   embedding_model="minilm"), bot_embedder)
    assert all(before) and after == before
    state = await BotState.open(restored / "bot.sqlite3", ZoneInfo("Europe/Rome"))
    try:
        assert (await state.stats())["questions_today"] == 1
    finally:
        await state.close()

    # a second restore into the now full data dir is refused, and changes nothing
    listing = sorted(p.name for p in restored.iterdir())
    assert await asyncio.to_thread(run_cli, "restore", str(saved), "--data-dir",
                                   str(restored)) == 2
    assert "is not empty" in capsys.readouterr().err
    assert sorted(p.name for p in restored.iterdir()) == listing


async def test_a_damaged_or_unfinished_backup_is_not_restored(
    tmp_path: Path, bot_embedder: Any, clean_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    data, saved = tmp_path / "data", tmp_path / "backup"
    settings = Settings(_env_file=None, data_dir=data, embedding_model="minilm")
    services = await open_services(settings, embedder=bot_embedder)
    try:
        await services.index([write_articles(tmp_path / "a.jsonl", bot_articles()[:4])])
    finally:
        await services.close()
    stamp = WriteLock(data).stamp()
    assert await asyncio.to_thread(run_cli, "backup", str(saved), "--data-dir", str(data)) == 0
    assert "backed up into" in capsys.readouterr().out
    # it kept writers out without looking like a write: a running bot does not reload
    assert WriteLock(data).stamp() == stamp is not None
    # into a folder that is not empty: refused
    assert await asyncio.to_thread(run_cli, "backup", str(saved), "--data-dir", str(data)) == 2
    assert "not empty" in capsys.readouterr().err

    damaged = tmp_path / "damaged"
    shutil.copytree(saved, damaged)
    blob = bytearray((damaged / "newsbot.sqlite3").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (damaged / "newsbot.sqlite3").write_bytes(bytes(blob))
    target = tmp_path / "target"
    assert await asyncio.to_thread(run_cli, "restore", str(damaged), "--data-dir",
                                   str(target)) == 2
    err = capsys.readouterr().err
    assert "newsbot.sqlite3" in err and "checksum" in err
    assert not target.exists() or not any(target.iterdir())

    (damaged / "manifest.json").unlink()  # an interrupted backup
    assert await asyncio.to_thread(run_cli, "restore", str(damaged), "--data-dir",
                                   str(target)) == 2
    assert "no manifest.json" in capsys.readouterr().err


async def test_vectors_of_a_chroma_server_are_exported_and_restored(
    tmp_path: Path, bot_embedder: Any, chroma_server: int, clean_env: None,
    capsys: pytest.CaptureFixture[str]
) -> None:
    collection = f"backup_{tmp_path.name[-12:]}".replace("-", "_")
    server = Settings(_env_file=None, data_dir=tmp_path / "data", embedding_model="minilm",
                      chroma_host="127.0.0.1", chroma_port=chroma_server,
                      chroma_collection=collection)
    services = await open_services(server, embedder=bot_embedder)
    try:
        await services.index([write_articles(tmp_path / "a.jsonl", bot_articles())])
    finally:
        await services.close()
    saved = tmp_path / "backup"
    os.environ.update(CHROMA_HOST="127.0.0.1", CHROMA_PORT=str(chroma_server),
                      CHROMA_COLLECTION=collection)
    try:
        assert await asyncio.to_thread(run_cli, "backup", str(saved), "--data-dir",
                                       str(server.data_dir), "--json") == 0
    finally:
        for name in ("CHROMA_HOST", "CHROMA_PORT", "CHROMA_COLLECTION"):
            os.environ.pop(name, None)
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["vectors"] == "server" and "vectors.npy" in manifest["files"]
    assert manifest["vectors_count"] == manifest["store"]["chunks"] > 0
    # back into an embedded store (a move off the server)
    embedded = Settings(_env_file=None, data_dir=tmp_path / "moved", embedding_model="minilm")
    assert await asyncio.to_thread(run_cli, "restore", str(saved), "--data-dir",
                                   str(embedded.data_dir)) == 0
    assert await answers(embedded, bot_embedder) == await answers(server, bot_embedder)


async def test_backup_while_the_bot_answers(
    fake_bot_api: Any, bot_store: Path, bot_embedder: Any, tmp_path: Path, clean_env: None,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bot keeps its SQLite files open (WAL) and writes its question log meanwhile: the
    snapshot has what was written before it, and the bot goes on answering after it."""
    from bot.app import build_application
    from bot.runner import running
    from tests.support.bot import bot_settings

    server = fake_bot_api
    settings = bot_settings(bot_store, server, tmp_path)
    ada = server.user("Ada", language_code="en")
    chat = server.private_chat(ada)
    saved, restored = tmp_path / "backup", tmp_path / "restored"
    app = build_application(settings, embedder=bot_embedder)
    async with running(app, settings):
        for i in range(3):
            server.user_sends(chat, ada, QUESTIONS[0])
            await server.wait_for_messages(chat["id"], count=i + 1, timeout=30)
        services = app.bot_data["services"]
        deadline = time.monotonic() + 30
        while services.metrics.registry.get_sample_value(  # logged after the answer is sent
                "newsbot_questions_total", {"kind": "message"}) != 3:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await services.state.flush()
        monkeypatch.setenv("BOT_STATE_PATH", str(settings.bot_state_path))
        code = await asyncio.to_thread(
            run_cli, "backup", str(saved), "--data-dir", str(bot_store), "--json")
        server.user_sends(chat, ada, QUESTIONS[0])
        await server.wait_for_messages(chat["id"], count=4, timeout=30)
    manifest = json.loads(capsys.readouterr().out)
    assert code == 0 and manifest["waited_for_writer"] is None
    assert manifest["bot_state"]["questions"] == 3
    monkeypatch.setenv("BOT_STATE_PATH", str(restored / "bot.sqlite3"))
    assert await asyncio.to_thread(run_cli, "restore", str(saved), "--data-dir",
                                   str(restored)) == 0
    with sqlite3.connect(restored / "bot.sqlite3") as con:
        assert con.execute("SELECT count(*) FROM questions").fetchone()[0] == 3
    restored_settings = Settings(_env_file=None, data_dir=restored, embedding_model="minilm")
    source_settings = Settings(_env_file=None, data_dir=bot_store, embedding_model="minilm")
    assert await answers(restored_settings, bot_embedder) == await answers(source_settings,
                                                                           bot_embedder)
