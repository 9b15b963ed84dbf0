"""Channel history import and the foreground scheduler, as an operator runs them:
``newsbot index result.json`` (a Telegram Desktop export), ``newsbot index --watch`` and
``newsbot status`` in processes of their own over one data dir, a feed served from 127.0.0.1;
a ``--watch`` killed with SIGKILL in the middle of a scheduled run, and the next one finishing it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from index.embed import make_embedder
from index.ingest.loaders import iter_articles
from index.models import Article, LoadError
from index.sample import HERE as SAMPLE_DIR
from index.settings import Settings
from index.storage.store import Store
from index.storage.vectors import VectorStore
from tests.support.feedserver import FeedServer, Route, http_date, rss, story

ROOT = Path(__file__).resolve().parents[2]


def export(kind: str = "public_channel") -> dict[str, Any]:
    """A Telegram Desktop export (result.json) as it writes them: service messages, texts as
    strings or lists of entities, media without caption, local dates and unix times."""
    return {
        "name": "Gazzetta Live",
        "type": kind,
        "id": 1234567890,
        "messages": [
            {"id": 1, "type": "service", "date": "2024-06-01T08:00:00",
             "date_unixtime": "1717228800", "actor": "Gazzetta Live",
             "action": "create_channel", "text": ""},
            {"id": 2, "type": "message", "date": "2024-06-01T10:00:00",
             "date_unixtime": "1717236000", "from": "Gazzetta Live",
             "text": story(0)["text"]},
            {"id": 3, "type": "message", "date": "2024-06-02T11:30:00",
             "date_unixtime": "1717320600", "edited": "2024-06-02T12:00:00",
             "edited_unixtime": "1717322400",
             "text": [{"type": "bold", "text": "Quillabrano"}, ": ",
                      story(1)["text"].split(": ", 1)[-1], " ",
                      {"type": "link", "text": "https://wire.example/q"}]},
            {"id": 4, "type": "message", "date": "2024-06-03T09:00:00",
             "photo": "photos/photo_1.jpg", "text": ""},
            {"id": 5, "type": "message", "date": "2024-06-04T09:00:00",
             "text": story(2)["text"]},
        ],
    }


def test_a_channel_export_is_read_as_its_posts(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    path.write_text(json.dumps(export(), ensure_ascii=False), encoding="utf-8")
    items = list(iter_articles([path]))
    assert all(isinstance(i, Article) for i in items), items
    posts = [i for i in items if isinstance(i, Article)]
    assert [p.id for p in posts] == ["tg:1234567890:2", "tg:1234567890:3", "tg:1234567890:5"]
    first, second, third = posts
    assert first.url == "https://t.me/c/1234567890/2" and first.source == "Gazzetta Live"
    assert first.published is not None and first.published.isoformat() == "2024-06-01T10:00:00+00:00"
    assert second.text.startswith("Quillabrano: ") and second.text.endswith("https://wire.example/q")
    assert second.extra["edited"] == "2024-06-02T10:00:00+00:00"
    # Without date_unixtime the local date is read as UTC.
    assert third.published is not None and third.published.isoformat() == "2024-06-04T09:00:00+00:00"
    assert first.origin == f"{path}#2"

    group = tmp_path / "group.json"
    group.write_text(json.dumps(export("private_group")), encoding="utf-8")
    (error,) = list(iter_articles([group]))
    assert isinstance(error, LoadError) and "only channel exports" in error.reason


def index_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NEWSBOT_SOURCES", "CHROMA_HOST", "CHROMA_PORT", "TELEGRAM_BOT_TOKEN",
                        "INGEST_EVERY", "TELEGRAM_CHANNEL_SOURCES")}
    env.update(
        NEWSBOT_DATA_DIR=str(data_dir), EMBEDDING_MODEL="minilm", HF_HUB_OFFLINE="1",
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        ANONYMIZED_TELEMETRY="False", **extra,
    )
    return env


@pytest.fixture
def feeds() -> Iterator[FeedServer]:
    server = FeedServer().start()
    try:
        yield server
    finally:
        server.stop()


async def newsbot(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *args, cwd=str(cwd), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.slow
async def test_import_watch_and_status_from_the_command_line(
    feeds: FeedServer, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    result = tmp_path / "result.json"
    result.write_text(json.dumps(export()), encoding="utf-8")
    code, out, err = await newsbot("index", str(result), "--json", env=index_env(data),
                                   cwd=tmp_path)
    assert code == 0, err[-2000:]
    report = json.loads(out)
    assert report["added"] == 3 and report["failed"] == []

    feeds.routes["/wire.xml"] = Route(rss("Gazzetta di Prova", [story(3)]), etag='"w1"')
    sources = json.dumps({"wire": {"path": feeds.url("/wire.xml"), "every": "1s"},
                          "history": {"path": str(result), "every": "0"}})
    env = index_env(data, NEWSBOT_SOURCES=sources)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "index", "--watch", cwd=str(tmp_path), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        async with asyncio.timeout(120):
            while not any("wire: +1" in line for line in seen):
                line = (await proc.stdout.readline()).decode()
                assert line, "newsbot index --watch ended early"
                seen.append(line)
            # The feed changes; the next poll (a second later) brings the new entry only.
            feeds.routes["/wire.xml"] = Route(rss("Gazzetta di Prova", [story(4), story(3)]),
                                              etag='"w2"')
            while not any("wire: +1 ~0, 1 read, 1" in line for line in seen):
                line = (await proc.stdout.readline()).decode()
                assert line, "newsbot index --watch ended early"
                seen.append(line)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        rest, err_bytes = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err_bytes.decode()[-2000:]
    assert "watching wire" in "".join(seen) and "stopped" in rest.decode()
    assert any("wire: not modified" in line for line in seen) or len(feeds.hits("/wire.xml")) >= 2

    code, out, err = await newsbot("status", "--json", env=env, cwd=tmp_path)
    assert code == 0, err[-2000:]
    info = json.loads(out)
    assert info["articles"] == 5
    health = {h["name"]: h for h in info["live_sources"]}
    assert health["wire"]["kind"] == "feed" and health["wire"]["articles_added"] == 2
    assert health["wire"]["consecutive_failures"] == 0 and health["wire"]["lag_seconds"] > 0
    assert health["history"]["every_seconds"] == 0 and health["history"]["last_success"] is None
    assert health["wire"]["last_attempt"] is not None and health["history"]["last_attempt"] is None
    code, out, _ = await newsbot("status", env=env, cwd=tmp_path)
    assert code == 0 and "wire" in out and "manual" in out and "last attempt" in out


def wikinews_feed(n: int) -> bytes:
    """An RSS feed of ``n`` real articles (the sample's Wikinews), long enough that indexing
    it takes several embedding batches."""
    rows = [json.loads(line) for line in (SAMPLE_DIR / "wikinews-gum.jsonl").open()][:n]
    items = []
    for r in rows:
        published = datetime.fromisoformat(str(r["published"])[:10]).timestamp()
        items.append({"link": r["url"], "title": r["title"], "published": http_date(published),
                      "text": r["text"][:1500].rsplit(".", 1)[0] + "."})
    return rss("Wikinews", items)


def stored_articles(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=1) as con:
            return int(con.execute("SELECT count(*) FROM articles").fetchone()[0])
    except sqlite3.Error:  # not created yet, or locked by the writer a moment
        return 0


async def read_until(proc: Any, seen: list[str], wanted: str) -> None:
    assert proc.stdout is not None
    while not any(wanted in line for line in seen):
        line = (await proc.stdout.readline()).decode()
        assert line, f"newsbot index --watch ended early: {seen}"
        seen.append(line)


@pytest.mark.slow
async def test_kill9_during_a_scheduled_run_leaves_a_consistent_store_and_the_next_run_completes_it(
    feeds: FeedServer, tmp_path: Path
) -> None:
    n = 40
    feeds.routes["/big.xml"] = Route(wikinews_feed(n), etag='"big1"')
    data = tmp_path / "data"
    db = data / "newsbot.sqlite3"
    sources = json.dumps({"big": {"path": feeds.url("/big.xml"), "every": "1s"}})
    env = index_env(data, NEWSBOT_SOURCES=sources, EMBED_BATCH_SIZE="8")
    watch = ("-m", "bot.cli", "index", "--watch")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *watch, cwd=str(tmp_path), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    written = 0
    try:
        async with asyncio.timeout(180):
            # Another process's database has no event to wait on: read it until the scheduled
            # run has written a few articles, and no longer.
            while proc.returncode is None and written < 3:
                await asyncio.sleep(0.2)
                written = stored_articles(db)
        assert proc.returncode is None, "the scheduled run ended before it could be killed"
    finally:
        if proc.returncode is None:
            os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    written = stored_articles(db)
    assert 0 < written < n, written

    # Killed mid-run: SQLite is whole, and the feed's validators were not kept (the next read
    # downloads the feed again instead of taking a 304 for "all indexed").
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        etag = con.execute("SELECT etag FROM source_state WHERE name='big'").fetchone()
    assert etag is None or etag[0] is None
    hits = len(feeds.hits("/big.xml"))
    code, out, err = await newsbot("status", "--json", env=env, cwd=tmp_path)
    assert code == 0, err[-2000:]
    (big,) = json.loads(out)["live_sources"]
    assert big["last_attempt"] is not None and big["last_success"] is None  # seen as unfinished

    proc = await asyncio.create_subprocess_exec(
        sys.executable, *watch, cwd=str(tmp_path), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    seen: list[str] = []
    try:
        async with asyncio.timeout(240):
            await read_until(proc, seen, f"big: +{n - written} ")
            await read_until(proc, seen, "big: not modified")
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-2000:]
    completed = next(line for line in seen if "big: +" in line)
    assert f"{written} unchanged/known skipped" in completed, completed  # not read again
    again = feeds.hits("/big.xml")[hits]
    assert again.status == 200 and "if-none-match" not in again.headers

    settings = Settings(_env_file=None, data_dir=data, embedding_model="minilm")
    store = await Store.open(settings.sqlite_path)
    try:
        assert (await store.counts())["articles"] == n
        sql_ids = set(await store.chunk_ids_with_articles())
    finally:
        await store.close()
    with sqlite3.connect(db) as con:
        statuses = [r[0] for r in con.execute("SELECT status FROM runs ORDER BY id")]
    # The killed run is marked interrupted by the next one, which repaired and completed it.
    assert statuses[0] == "interrupted" and statuses[-1] == "done", statuses
    assert "running" not in statuses
    embedder = make_embedder(settings)
    vectors = VectorStore.open(settings, embedder.model_id, embedder.dim)
    assert sql_ids and set(vectors.all_ids()) == sql_ids  # no orphan, none missing
