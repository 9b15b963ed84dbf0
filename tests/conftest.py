"""Shared pytest fixtures. Each block belongs to one component; keep them delimited."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

# ---------------------------------------------------------------------------------------------
# BEGIN fake Telegram Bot API (tests/fakebotapi) -- fixture: fake_bot_api
# ---------------------------------------------------------------------------------------------
from fakebotapi import TEST_TOKEN, FakeBotApi


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


# ---------------------------------------------------------------------------------------------
# END fake Telegram Bot API
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# BEGIN newsbot Telegram bot (tests/test_bot*.py) -- fixtures: bot_embedder, bot_corpus,
# bot_store; helpers: bot_articles, write_articles, bot_settings
# ---------------------------------------------------------------------------------------------
import asyncio as _bot_asyncio  # noqa: E402
import json as _bot_json  # noqa: E402
from pathlib import Path as _BotPath  # noqa: E402
from typing import Any as _BotAny  # noqa: E402

# The built-in sample (licences in index/sample/NOTICE) doubles as the tests' corpus.
from index.sample import HERE as SAMPLE_DIR  # noqa: E402

BOT_ADMIN_ID = 424242
# An article written to break renderers: markup, entities, a stray ampersand, an unmatched
# tag and a javascript: link in the metadata, a ~20 kB text.
HOSTILE_TEXT = (
    "The <script>alert('zebra')</script> festival of zebra crossings opened in Brescia & "
    "Bergamo with <b>bold claims about striped road markings. Organisers said &amp; repeated "
    "that &nbsp; zebra crossings save lives </i> every year. "
)


def bot_articles(max_chars: int = 1500) -> list[dict[str, _BotAny]]:
    """A handful of real articles (EN and IT, GM and Wikinews) plus one hostile one."""

    def cut(text: str) -> str:
        if len(text) <= max_chars:
            return text
        return text[:max_chars].rsplit(".", 1)[0] + "."

    keep = ("id", "title", "url", "published", "source", "lang")
    out: list[dict[str, _BotAny]] = []
    meantime = SAMPLE_DIR / "meantime-gm-stock-en-it.jsonl"
    wanted = {"meantime-1007169", "meantime-118147", "meantime-120554", "meantime-118175"}
    for line in meantime.open(encoding="utf-8"):
        row = _bot_json.loads(line)
        if row["parallel_id"] in wanted:
            out.append({k: row[k] for k in keep} | {"text": cut(row["text"])})
    wikinews = SAMPLE_DIR / "wikinews-gum.jsonl"
    for i, line in enumerate(wikinews.open(encoding="utf-8")):
        if i >= 6:
            break
        row = _bot_json.loads(line)
        out.append({k: row[k] for k in keep} | {"text": cut(row["text"])})
    out.append({
        "id": "hostile-zebra",
        "title": "<b>Zebra & crossings <script>x</script> festival",
        "url": "javascript:alert(1)",
        "published": "2024-05-04T10:00:00+00:00",
        "source": "The <Daily> & Co",
        "lang": "en",
        "text": (HOSTILE_TEXT * 200)[:20_000],
    })
    return out


def write_articles(path: _BotPath, rows: list[dict[str, _BotAny]]) -> _BotPath:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(_bot_json.dumps(row, ensure_ascii=False) + "\n")
    return path


@pytest.fixture(scope="session")
def bot_embedder() -> _BotAny:
    """The packaged MiniLM, loaded once for every bot test."""
    from index.embed import make_embedder
    from index.settings import Settings

    return make_embedder(Settings(_env_file=None, embedding_model="minilm"))


@pytest.fixture(scope="module")
def bot_store(tmp_path_factory: pytest.TempPathFactory, bot_embedder: _BotAny) -> _BotPath:
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

    _bot_asyncio.run(build())
    return root / "data"


def bot_settings(data_dir: _BotPath, server: FakeBotApi, state_dir: _BotPath,
                 **overrides: _BotAny) -> _BotAny:
    """BotSettings pointing at ``server`` with its test token, nothing read from ``.env``."""
    from bot.settings import BotSettings

    values: dict[str, _BotAny] = {
        "data_dir": data_dir,
        "embedding_model": "minilm",
        "telegram_bot_token": server.token,
        "telegram_api_url": server.base_url,
        "bot_state_file": state_dir / "bot-state.sqlite3",
        "admin_ids": [BOT_ADMIN_ID],
        "poll_timeout": 1,
        "timezone": "Europe/Rome",
        "user_rate_limit": 100,
        "sources": {},
    }
    values.update(overrides)
    return BotSettings(_env_file=None, **values)


# ---------------------------------------------------------------------------------------------
# END newsbot Telegram bot
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# BEGIN digests (tests/test_digest*.py) -- fixtures: digest_store, digest_services;
# helpers: digest_articles, DigestClock, digest_settings
# ---------------------------------------------------------------------------------------------
from datetime import UTC as _DG_UTC  # noqa: E402
from datetime import datetime as _DgDatetime  # noqa: E402
from datetime import timedelta as _DgTimedelta  # noqa: E402

DIGEST_DAYS = ("2025-12-01", "2025-12-02", "2025-12-03")
DIGEST_ADMIN_ID = 515151
# The Pokrovsk report copied word for word by another outlet, and the MH370 report (long
# enough for MinHash) lightly rewritten by another: the indexer links them as exact and near
# duplicates.
DIGEST_EXACT_OF = "ce-2025-12-01-01585"
DIGEST_NEAR_OF = "ce-2025-12-03-01633"


def digest_articles() -> list[dict[str, _BotAny]]:
    """Three days of labelled current-events items, with times of day, two copies and a
    hostile article (markup and entities in every field)."""
    path = SAMPLE_DIR / "current-events-2025q4.jsonl"
    keep = ("id", "title", "text", "url", "source", "lang", "story")
    rows: list[dict[str, _BotAny]] = []
    per_day: dict[str, int] = {}
    for line in path.open(encoding="utf-8"):
        row = _bot_json.loads(line)
        day = row["published"]
        if day not in DIGEST_DAYS:
            continue
        k = per_day.get(day, 0)
        per_day[day] = k + 1
        when = _DgDatetime.fromisoformat(day).replace(tzinfo=_DG_UTC) + _DgTimedelta(
            hours=6, minutes=20 * k
        )
        rows.append({key: row.get(key) for key in keep} | {"published": when.isoformat()})
    by_id = {r["id"]: r for r in rows}
    exact = dict(by_id[DIGEST_EXACT_OF])
    exact.update(id="copy-exact-pokrovsk", source="Kyiv Independent",
                 url="https://kyivindependent.com/pokrovsk-captured")
    near = dict(by_id[DIGEST_NEAR_OF])
    near.update(
        id="copy-near-mh370", source="The Star", url="https://www.thestar.com.my/news/mh370",
        text=near["text"].replace("with the government", "with the Malaysian government"),
    )
    hostile = {
        "id": "hostile-digest", "title": "<b>Zebra</b> & <script>alert(1)</script> crossings",
        "text": ("Officials said <i>zebra</i> crossings & 'striped' roads < > save lives in "
                 "Brescia & Bergamo, a claim disputed by <b>motorists</b>. " * 3).strip(),
        "url": "javascript:alert(1)", "source": "The <Daily> & Co", "lang": "en",
        "published": "2025-12-02T09:00:00+00:00", "story": None,
    }
    return [*rows, exact, near, hostile]


class DigestClock:
    """A clock tests move by hand. ``sleep`` advances it at once (``auto=True``) or waits
    until the test advances it past the wake-up time (``auto=False``); every sleep is
    recorded."""

    def __init__(self, now: _DgDatetime, *, auto: bool = True) -> None:
        self._now = now
        self.auto = auto
        self.slept: list[float] = []
        self._moved = _bot_asyncio.Event()

    def now(self) -> _DgDatetime:
        return self._now

    def set(self, when: _DgDatetime) -> None:
        self._now = when
        self._moved.set()
        self._moved = _bot_asyncio.Event()

    def advance(self, **delta: float) -> None:
        self.set(self._now + _DgTimedelta(**delta))

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        wake = self._now + _DgTimedelta(seconds=seconds)
        if self.auto:
            self._now = max(self._now, wake)
            await _bot_asyncio.sleep(0)
            return
        while self._now < wake:
            await self._moved.wait()


def digest_settings(data_dir: _BotPath, state_file: _BotPath, **overrides: _BotAny) -> _BotAny:
    from bot.settings import BotSettings

    values: dict[str, _BotAny] = {
        "data_dir": data_dir, "embedding_model": "minilm", "bot_state_file": state_file,
        "admin_ids": [DIGEST_ADMIN_ID], "timezone": "Europe/Rome", "sources": {},
        "digest_max_stories": 8, "digest_default_time": "08:00",
    }
    values.update(overrides)
    return BotSettings(_env_file=None, **values)


@pytest.fixture(scope="session")
def digest_store(tmp_path_factory: pytest.TempPathFactory, bot_embedder: _BotAny) -> _BotPath:
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

    _bot_asyncio.run(build())
    return root / "data"


@pytest.fixture
async def digest_services(digest_store: _BotPath, bot_embedder: _BotAny) -> AsyncIterator[_BotAny]:
    """(services, retriever) over :func:`digest_store`, opened in this test's loop."""
    from index.runtime import open_services
    from index.settings import Settings

    settings = Settings(_env_file=None, data_dir=digest_store, embedding_model="minilm")
    services = await open_services(settings, embedder=bot_embedder)
    try:
        yield services, await services.retriever()
    finally:
        await services.close()


# ---------------------------------------------------------------------------------------------
# END digests
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# BEGIN a real `chroma run` server (tests/test_chroma_server.py, tests/test_outside_writes.py)
# -- fixture: chroma_server (its port)
# ---------------------------------------------------------------------------------------------
import os as _cs_os  # noqa: E402
import socket as _cs_socket  # noqa: E402
import subprocess as _cs_subprocess  # noqa: E402
import sys as _cs_sys  # noqa: E402
import time as _cs_time  # noqa: E402
import urllib.request as _cs_urllib_request  # noqa: E402


def _cs_free_port() -> int:
    with _cs_socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> _BotAny:
    """A `chroma run` on 127.0.0.1 for the session; tests use their own collections."""
    port = _cs_free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    exe = _BotPath(_cs_sys.executable).with_name("chroma")
    env = dict(_cs_os.environ, ANONYMIZED_TELEMETRY="False")
    proc = _cs_subprocess.Popen(
        [str(exe), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=_cs_subprocess.DEVNULL, stderr=_cs_subprocess.DEVNULL, env=env,
    )
    deadline = _cs_time.monotonic() + 60
    while True:
        try:
            url = f"http://127.0.0.1:{port}/api/v2/heartbeat"
            with _cs_urllib_request.urlopen(url, timeout=1):
                break
        except OSError:
            if proc.poll() is not None or _cs_time.monotonic() > deadline:
                proc.kill()
                pytest.fail("chroma run did not start")
            _cs_time.sleep(0.3)
    yield port
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except _cs_subprocess.TimeoutExpired:
        proc.kill()


# ---------------------------------------------------------------------------------------------
# END chroma server
# ---------------------------------------------------------------------------------------------
