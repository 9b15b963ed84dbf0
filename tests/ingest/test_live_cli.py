"""Channel history import and the foreground scheduler, as an operator runs them:
``newsbot index result.json`` (a Telegram Desktop export), ``newsbot index --watch`` and
``newsbot status`` in processes of their own over one data dir, a feed served from 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from index.ingest.loaders import iter_articles
from index.models import Article, LoadError
from tests.support.feedserver import FeedServer, Route, rss, story

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
    code, out, _ = await newsbot("status", env=env, cwd=tmp_path)
    assert code == 0 and "wire" in out and "manual" in out
