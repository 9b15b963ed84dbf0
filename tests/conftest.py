"""Shared pytest fixtures, and nothing else: helpers tests import live in ``tests/support``."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.bot import bot_articles, write_articles
from tests.support.digests import digest_articles
from tests.support.fakebotapi import TEST_TOKEN, FakeBotApi
from tests.support.net import free_port

# -- fake Telegram Bot API (tests/support/fakebotapi) ------------------------------------------


@pytest.fixture
async def fake_bot_api() -> AsyncIterator[FakeBotApi]:
    """A fake Bot API on 127.0.0.1 for this test, accepting ``TEST_TOKEN``.

    The test fails at teardown if the bot made calls Telegram would reject (violations), so
    API misuse cannot hide behind a bot that swallows errors. A test that provokes them on
    purpose takes them with ``server.pop_violations()`` (or sets ``fail_on_violations=False``).
    """
    server = FakeBotApi(TEST_TOKEN)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
    if server.fail_on_violations and server.violations:
        pytest.fail(
            "Bot API violations (calls Telegram would reject):\n"
            + "\n".join(f"  - {v}" for v in server.violations),
            pytrace=False,
        )


# -- the bot's store (tests/bot/, tests/storage/) ----------------------------------------------


@pytest.fixture(scope="session")
def bot_embedder() -> Any:
    """The packaged MiniLM, loaded once for every bot test."""
    from index.embed import make_embedder
    from index.settings import Settings

    return make_embedder(Settings(_env_file=None, embedding_model="minilm"))


@pytest.fixture(scope="module")
def bot_store(tmp_path_factory: pytest.TempPathFactory, bot_embedder: Any) -> Path:
    """A data dir with :func:`bot_articles` indexed (built once per test module)."""
    from index.runtime import open_services
    from index.settings import Settings

    root = tmp_path_factory.mktemp("bot-store")
    corpus = write_articles(root / "articles.jsonl", bot_articles())
    settings = Settings(_env_file=None, data_dir=root / "data", embedding_model="minilm")

    async def build() -> None:
        services = await open_services(settings, embedder=bot_embedder)
        try:
            report = await services.index([corpus])
            assert report.added == len(bot_articles()) - report.duplicates, report.as_dict()
        finally:
            await services.close()

    asyncio.run(build())
    return root / "data"


# -- digests (tests/digest/, tests/bot/test_digest_bot.py) ------------------------------------


@pytest.fixture(scope="session")
def digest_store(tmp_path_factory: pytest.TempPathFactory, bot_embedder: Any) -> Path:
    """A data dir with :func:`digest_articles` indexed with MiniLM, once: digests only read
    the index (each test has its own bot state)."""
    from index.runtime import open_services
    from index.settings import Settings

    root = tmp_path_factory.mktemp("digest-store")
    corpus = write_articles(root / "articles.jsonl", digest_articles())
    settings = Settings(_env_file=None, data_dir=root / "data", embedding_model="minilm")

    async def build() -> None:
        services = await open_services(settings, embedder=bot_embedder)
        try:
            await services.index([corpus])
        finally:
            await services.close()

    asyncio.run(build())
    return root / "data"


@pytest.fixture
async def digest_services(digest_store: Path, bot_embedder: Any) -> AsyncIterator[Any]:
    """(services, retriever) over :func:`digest_store`, opened in this test's loop."""
    from index.runtime import open_services
    from index.settings import Settings

    settings = Settings(_env_file=None, data_dir=digest_store, embedding_model="minilm")
    services = await open_services(settings, embedder=bot_embedder)
    try:
        yield services, await services.retriever()
    finally:
        await services.close()


# -- a real `chroma run` server (tests/storage/) -----------------------------------------------


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A `chroma run` on 127.0.0.1 for the session; tests use their own collections."""
    port = free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    exe = Path(sys.executable).with_name("chroma")
    env = dict(os.environ, ANONYMIZED_TELEMETRY="False")
    proc = subprocess.Popen(
        [str(exe), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            url = f"http://127.0.0.1:{port}/api/v2/heartbeat"
            with urllib.request.urlopen(url, timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("chroma run did not start")
            time.sleep(0.3)
    yield port
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
