"""Live sources (index/ingest/live.py): feeds served over real HTTP from 127.0.0.1, folders on
disk, the real pipeline, SQLite and Chroma, the packaged MiniLM.

What is checked: a 304 costs nothing (no parse, no embedding, no write run), entries already
stored are not read again, only new or changed files of a folder are read, and failing
sources (a 500, a hang, an oversize body) are reported, backed off and retried while another
source still updates; an admin alert goes out once per failure streak.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from index.ingest.fetch import Fetcher, FetchError, Validators
from index.ingest.live import BACKOFF_MAX_S, LiveIndexer
from index.ingest.live_writers import services_writer
from index.ingest.polls import PollResult
from index.runtime import open_services
from index.settings import Settings, SourceSpec
from index.storage.sources import SourceHealth
from tests.support.feedserver import TOWNS, FeedServer, Route, http_date, rss, story

pytestmark = pytest.mark.slow

class CountingEmbedder:
    """The real embedder, counting the passages it is asked to embed."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.passages = 0
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
            self.passages += len(texts)
        return self._inner.embed_passages(texts)  # type: ignore[no-any-return]


@pytest.fixture
def feeds() -> Iterator[FeedServer]:
    server = FeedServer().start()
    try:
        yield server
    finally:
        server.stop()


def settings_for(tmp: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"data_dir": tmp / "data", "embedding_model": "minilm",
                              "fetch_timeout": 2.0}
    values.update(overrides)
    return Settings(_env_file=None, **values)


async def run_count(settings: Settings) -> int:
    import sqlite3

    with sqlite3.connect(settings.sqlite_path) as db:
        return int(db.execute("SELECT count(*) FROM runs").fetchone()[0])


@pytest.fixture
async def live_for(bot_embedder: Any) -> AsyncIterator[Any]:
    made: list[LiveIndexer] = []

    async def make(settings: Settings, specs: dict[str, SourceSpec], **kw: Any) -> LiveIndexer:
        embedder = kw.pop("embedder", bot_embedder)
        live = LiveIndexer(settings, services_writer(settings, embedder), specs=specs, **kw)
        made.append(live)
        return live

    yield make
    for live in made:
        await live.stop()


async def test_a_feed_is_read_conditionally_and_only_new_entries_are_embedded(
    feeds: FeedServer, bot_embedder: Any, tmp_path: Path, live_for: Any
) -> None:
    counting = CountingEmbedder(bot_embedder)
    feeds.routes["/wire.xml"] = Route(rss("Gazzetta di Prova", [story(0), story(1)]),
                                      etag='"v1"')
    url = feeds.url("/wire.xml")
    settings = settings_for(tmp_path)
    live = await live_for(settings, {"wire": SourceSpec(url, 0)}, embedder=counting)
    await live.open()

    first = await live.poll("wire")
    assert first.ok and first.report is not None and first.report.added == 2, first
    embedded = counting.passages
    assert embedded > 0
    runs = await run_count(settings)

    # Unchanged: a conditional GET answered 304 — nothing parsed, embedded or written.
    second = await live.poll("wire")
    assert second.ok and second.not_modified and second.report is None
    assert feeds.hits("/wire.xml")[-1].headers.get("if-none-match") == '"v1"'
    assert feeds.hits("/wire.xml")[-1].status == 304
    assert counting.passages == embedded and await run_count(settings) == runs

    # A new entry: only it is read and embedded; the two stored ones are skipped by id.
    feeds.routes["/wire.xml"] = Route(rss("Gazzetta di Prova", [story(2), story(0), story(1)]),
                                      etag='"v2"')
    third = await live.poll("wire")
    assert third.ok and third.read == 1 and third.skipped == 2, third
    assert third.report is not None and third.report.added == 1
    assert third.report.unchanged == 0  # the known entries never reached the pipeline
    new_passages = counting.passages - embedded
    assert 0 < new_passages <= 3

    # A server without validators: 200 each time, but known entries cost no write run.
    feeds.routes["/plain.xml"] = Route(rss("Plain", [story(3)]))
    live.specs["plain"] = SourceSpec(feeds.url("/plain.xml"), 0)
    assert (await live.poll("plain")).report.added == 1  # type: ignore[union-attr]
    runs = await run_count(settings)
    again = await live.poll("plain")
    assert again.ok and not again.not_modified and again.read == 0 and again.skipped == 1
    assert await run_count(settings) == runs

    # Last-Modified alone is honoured too.
    stamp = http_date(1_717_232_400)
    feeds.routes["/dated.xml"] = Route(rss("Dated", [story(4)]), last_modified=stamp)
    live.specs["dated"] = SourceSpec(feeds.url("/dated.xml"), 0)
    await live.poll("dated")
    assert (await live.poll("dated")).not_modified
    assert feeds.hits("/dated.xml")[-1].headers.get("if-modified-since") == stamp

    health = {h.name: h for h in await live.health()}
    wire = health["wire"]
    assert wire.added_total == 3 and wire.failures == 0 and wire.not_modified == 1
    assert wire.etag == '"v2"' and wire.newest is not None
    # Every request named the bot.
    assert all("newsbot" in r.headers.get("user-agent", "") for r in feeds.requests)


async def test_a_folder_rescan_reads_only_new_or_changed_files(
    bot_embedder: Any, tmp_path: Path, live_for: Any
) -> None:
    folder = tmp_path / "archive"
    folder.mkdir()
    rows = [{"id": f"f{i}", "title": f"A {TOWNS[i]} apre il museo", "text": story(i)["text"],
             "published": f"2024-06-0{i + 1}T09:00:00+00:00"} for i in range(3)]
    for i, row in enumerate(rows):
        (folder / f"{i}.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    settings = settings_for(tmp_path)
    live = await live_for(settings, {"archive": SourceSpec(str(folder), 0)})
    await live.open()

    first = await live.poll("archive")
    assert first.ok and first.read == 3 and first.report and first.report.added == 3
    runs = await run_count(settings)
    quiet = await live.poll("archive")
    assert quiet.ok and quiet.read == 0 and quiet.skipped == 3 and quiet.report is None
    assert await run_count(settings) == runs  # not even a run: no file was opened

    (folder / "1.jsonl").write_text(
        json.dumps(rows[1] | {"text": rows[1]["text"] + " Ingresso gratuito."}) + "\n",
        encoding="utf-8")
    (folder / "3.jsonl").write_text(json.dumps(
        {"id": "f3", "title": "Ulmeria", "text": story(5)["text"]}) + "\n", encoding="utf-8")
    (folder / "0.jsonl").unlink()
    changed = await live.poll("archive")
    assert changed.ok and changed.read == 2 and changed.skipped == 1, changed
    assert changed.report and changed.report.added == 1 and changed.report.updated == 1
    assert changed.report.removed == 0  # background reads never prune

    missing = SourceSpec(str(tmp_path / "nowhere"), 0)
    live.specs["gone"] = missing
    failed = await live.poll("gone")
    assert not failed.ok and failed.error == "no such file or folder"


async def test_failing_sources_are_backed_off_and_reported_once_while_another_updates(
    feeds: FeedServer, tmp_path: Path, live_for: Any
) -> None:
    feeds.routes["/good.xml"] = Route(rss("Good", [story(0)]), etag='"g1"')
    feeds.routes["/broken.xml"] = Route(status=500)
    feeds.routes["/slow.xml"] = Route(hang=True)
    feeds.routes["/huge.xml"] = Route(oversize=30_000_000)  # 30 MB, stopped at the 50 kB cap
    every = 0.4
    settings = settings_for(tmp_path, fetch_timeout=1.0, max_file_mb=0.05,
                            source_alert_failures=3)
    specs = {name: SourceSpec(feeds.url(f"/{name}.xml"), every)
             for name in ("good", "broken", "slow", "huge")}
    alerts: list[tuple[str, SourceHealth]] = []

    async def on_alert(kind: str, health: SourceHealth) -> None:
        alerts.append((kind, health))

    live = await live_for(settings, specs, on_alert=on_alert, rng=lambda: 1.0)
    await live.start()

    def polls(history: list[PollResult], name: str) -> list[PollResult]:
        return [r for r in history if r.name == name]

    # The good feed is read, then keeps being polled (304s) while the others fail.
    await live.wait_for(lambda h: len(polls(h, "good")) >= 2, timeout=20)
    feeds.routes["/good.xml"] = Route(rss("Good", [story(1), story(0)]), etag='"g2"')
    await live.wait_for(
        lambda h: any(r.report and r.report.added for r in polls(h, "good")[1:])
        and len(polls(h, "broken")) >= 4 and len(polls(h, "huge")) >= 3
        and len(polls(h, "slow")) >= 2,
        timeout=40,
    )
    history = list(live.history)
    good_added = sum(r.report.added for r in polls(history, "good") if r.report)
    assert good_added == 2

    broken = polls(history, "broken")
    assert all(not r.ok and r.error == "HTTP error 500 Internal Server Error" for r in broken)
    # Exponential back-off from max(every, 1 s): 1, 2, 4 s between attempts (jitter pinned at
    # its top), while the good feed is polled every 0.4 s.
    times = [r.at for r in broken[:4]]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    # (Lower bounds only: on a loaded machine an attempt can start late, never early.)
    assert gaps[0] >= 0.95 and gaps[1] >= 1.9 and gaps[2] >= 3.8, gaps

    huge = polls(history, "huge")
    assert all(not r.ok and "over the limit of 50,000 bytes" in (r.error or "") for r in huge)
    slow = polls(history, "slow")
    assert all(not r.ok and r.error == "no answer within 1 s" for r in slow)

    # Reported once per streak, even after more failures.
    failing = [h.name for kind, h in alerts if kind == "failing"]
    assert sorted(failing) == ["broken", "huge"] or sorted(failing) == ["broken", "huge", "slow"]
    assert failing.count("broken") == 1
    health = {h.name: h for h in await live.health()}
    assert health["broken"].failures >= 4 and health["broken"].alerted
    assert health["broken"].last_error == "HTTP error 500 Internal Server Error"
    assert health["good"].failures == 0 and health["good"].added_total == 2

    # The broken feed is fixed: it recovers on its next (backed-off) attempt, once.
    feeds.routes["/broken.xml"] = Route(rss("Fixed", [story(2)]))
    await live.wait_for(lambda h: any(r.ok for r in polls(h, "broken")), timeout=30)
    assert [h.name for kind, h in alerts if kind == "recovered"] == ["broken"]
    fixed = await live.ledger.get("broken")  # type: ignore[union-attr]
    assert fixed is not None and fixed.failures == 0 and not fixed.alerted
    assert fixed.added_total == 1


async def test_fetcher_limits_and_reasons(feeds: FeedServer) -> None:
    feeds.routes["/big.xml"] = Route(b"x" * 5000, etag='"b"')
    feeds.routes["/busy.xml"] = Route(status=503)
    async with Fetcher(timeout=2.0, max_bytes=1000) as fetcher:
        with pytest.raises(FetchError, match=r"response \(5,000 bytes\) is over the limit"):
            await fetcher.get(feeds.url("/big.xml"))  # refused on Content-Length
        with pytest.raises(FetchError) as busy:
            await fetcher.get(feeds.url("/busy.xml"))
        assert busy.value.status == 503 and busy.value.retry_after == 1.0
        with pytest.raises(FetchError, match="only http"):
            await fetcher.get("ftp://example.org/feed.xml")
    # 30 MB streamed without a Content-Length, against the product's default cap.
    feeds.routes["/30mb.xml"] = Route(oversize=30_000_000)
    cap = int(Settings(_env_file=None).max_file_mb * 1_000_000)
    async with Fetcher(timeout=120.0, max_bytes=cap) as fetcher:
        with pytest.raises(FetchError, match=f"over the limit of {cap:,} bytes"):
            await fetcher.get(feeds.url("/30mb.xml"))
    async with Fetcher(timeout=2.0, max_bytes=10_000) as fetcher:
        got = await fetcher.get(feeds.url("/big.xml"))
        assert got.status == 200 and got.validators == Validators('"b"', None)
        again = await fetcher.get(feeds.url("/big.xml"), got.validators)
        assert again.not_modified and again.body == b"" and again.validators.etag == '"b"'


async def test_pushed_posts_survive_a_restart_in_the_inbox(
    bot_embedder: Any, tmp_path: Path
) -> None:
    """Posts queued but not yet indexed when the process stops are indexed at the next start."""
    from index.ingest.telegram import channel_post_article

    settings = settings_for(tmp_path)
    writer = services_writer(settings, bot_embedder)
    live = LiveIndexer(settings, writer, specs={}, push_delay=3600)  # never gets to index
    await live.start()
    post = channel_post_article(chat_id=-1001234567890, username="gazzetta", title="Gazzetta",
                                message_id=7, date=None, text=story(0)["text"])
    assert post is not None
    await live.submit("@gazzetta", "@gazzetta", [post])
    await live.stop()

    again = LiveIndexer(settings, writer, specs={}, push_delay=0.05)
    await again.start()
    try:
        await again.wait_for(lambda h: any(r.name == "@gazzetta" and r.ok for r in h),
                             timeout=30)
        assert await again.ledger.inbox_size() == 0  # type: ignore[union-attr]
    finally:
        await again.stop()
    services = await open_services(settings, embedder=bot_embedder)
    try:
        stored = await services.store.article("tg:1234567890:7")
    finally:
        await services.close()
    assert stored is not None and stored.url == "https://t.me/gazzetta/7"
    assert stored.source == "Gazzetta"


def test_back_off_doubles_per_failure_with_jitter_up_to_a_cap_and_honours_retry_after(
    tmp_path: Path,
) -> None:
    draws = iter([0.0, 0.5, 1.0, 1.0, 0.0, 0.0])
    live = LiveIndexer(settings_for(tmp_path), services_writer(settings_for(tmp_path), None),  # type: ignore[arg-type]
                       specs={}, rng=lambda: next(draws))
    assert live.backoff(60.0, 1) == 30.0  # every × 2⁰ × (0.5 + 0.5 × 0.0)
    assert live.backoff(60.0, 2) == 90.0  # every × 2¹ × 0.75
    assert live.backoff(60.0, 3) == 240.0  # every × 2² × 1.0
    assert live.backoff(60.0, 40) == BACKOFF_MAX_S  # capped: still tried every 6 h
    assert live.backoff(None, 1) == 30.0  # a manual source retried from a minute
    assert live.backoff(0.2, 1, retry_after=120.0) == 120.0  # the server asked for 2 min


def test_sources_settings_parse_both_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSBOT_SOURCES", json.dumps(
        {"ansa": {"path": "https://x.example/rss.xml", "every": "10m"}, "archive": "/srv/news",
         "manual": {"path": "/srv/old", "every": "0"}}))
    monkeypatch.setenv("INGEST_EVERY", "1h30m")
    s = Settings(_env_file=None)
    assert s.sources == {"ansa": "https://x.example/rss.xml", "archive": "/srv/news",
                         "manual": "/srv/old"}
    assert [s.source_specs[n].every for n in ("ansa", "archive", "manual")] == [600, 5400, 0]
    monkeypatch.setenv("NEWSBOT_SOURCES", "a=feeds/a.xml,b=https://b.example/rss")
    monkeypatch.delenv("INGEST_EVERY")
    s = Settings(_env_file=None)
    assert s.sources == {"a": "feeds/a.xml", "b": "https://b.example/rss"}
    assert {spec.every for spec in s.source_specs.values()} == {900.0}
    monkeypatch.setenv("NEWSBOT_SOURCES", '{"bad": {"path": "x", "every": "soon"}}')
    with pytest.raises(ValueError, match="not a duration"):
        Settings(_env_file=None)


@pytest.fixture(autouse=True)
async def _no_leaked_tasks() -> AsyncIterator[None]:
    yield
    # every LiveIndexer above was stopped: none of its tasks is left in this loop
    left = [t for t in asyncio.all_tasks() if t.get_name().startswith("source-") and not t.done()]
    assert not left


async def test_a_failed_batch_of_posts_stays_queued_and_is_retried(
    bot_embedder: Any, tmp_path: Path
) -> None:
    from contextlib import asynccontextmanager

    from index.ingest.telegram import channel_post_article

    settings = settings_for(tmp_path)
    real = services_writer(settings, bot_embedder)
    attempts = [0]

    @asynccontextmanager
    async def flaky() -> AsyncIterator[Any]:
        attempts[0] += 1
        if attempts[0] == 1:
            raise OSError("disk full")
        async with real() as services:
            yield services

    live = LiveIndexer(settings, flaky, specs={}, push_delay=0.05, rng=lambda: 0.0)
    live.backoff = lambda every, failures, retry_after=None: 0.2  # type: ignore[method-assign]
    await live.start()
    try:
        post = channel_post_article(chat_id=-1009, username=None, title="Interna",
                                    message_id=3, date=None, text=story(1)["text"])
        assert post is not None
        await live.submit("-1009", "-1009", [post])
        await live.wait_for(lambda h: any(r.name == "-1009" and r.ok for r in h), timeout=30)
        failed = [r for r in live.history if r.name == "-1009" and not r.ok]
        assert [r.error for r in failed] == ["OSError: disk full"]
        health = await live.ledger.get("-1009")  # type: ignore[union-attr]
        assert health is not None and health.failures == 0 and health.added_total == 1
        assert await live.ledger.inbox_size() == 0  # type: ignore[union-attr]
    finally:
        await live.stop()


async def test_sources_message_stays_under_telegram_limits_and_escapes_everything(
    tmp_path: Path
) -> None:
    from zoneinfo import ZoneInfo

    from bot.live import LiveNews
    from bot.settings import BotSettings
    from tests.support.fakebotapi import parse_html

    hostile = "<script>alert(1)</script> & <b>"
    specs = {f"feed-{i}-{hostile}": {"path": f"https://host{i}.example/rss?key=SECRET",
                                     "every": "5m"} for i in range(120)}
    settings = BotSettings(_env_file=None, data_dir=tmp_path / "data", sources=specs,
                           channel_sources=["@canale"])
    live = LiveNews(settings, None, None, ZoneInfo("Europe/Rome"))  # type: ignore[arg-type]
    await live.indexer.open()
    try:
        ledger = live.indexer.ledger
        assert ledger is not None
        now = 1_717_232_400.0
        for i, name in enumerate(specs):
            if i % 2:
                await ledger.failed(name, now, f"HTTP error 500 {hostile} " * 20,
                                    next_attempt=now + 600)
            else:
                await ledger.succeeded(name, now, next_attempt=now + 300, added=3,
                                       newest=now - 7200)
        for lang in ("it", "en"):
            text = await live.sources_html(lang, now=now + 60)
            parsed = parse_html(text)  # valid Telegram HTML, or this raises
            assert parsed.length < 4096
            assert "<script>" not in text and "SECRET" not in text
            assert hostile in parsed.text  # shown as typed, not as markup
            assert ("… e altre" if lang == "it" else "… and") in parsed.text
        line = await live.stats_line("it")
        assert line is not None and "fonti: 121 · in errore: 60" in line

        # A read attempted and not finished (going on, or its process killed) says so.
        first = next(iter(specs))
        await ledger.attempted(first, now + 30)
        block = (await live.sources_html("en", now=now + 90)).split("\n\n")[1]
        assert "last attempt" in block and "(60 s ago), not finished yet" in block
        assert "last success" in block  # the previous read's outcome is still shown
        assert "not finished" not in (await live.sources_html("en", now=now + 90)).split(
            "\n\n")[2]
    finally:
        await live.stop()
    # Telling the admins is optional: without it a flagged source is logged and shown only.
    assert live.indexer.on_alert is not None
    muted = settings.model_copy(update={"source_alert_admins": False})
    quiet = LiveNews(muted, None, None, ZoneInfo("Europe/Rome"))  # type: ignore[arg-type]
    assert quiet.indexer.on_alert is None
    with pytest.raises(ValueError, match="source_alert_failures"):
        BotSettings(_env_file=None, source_alert_failures=0)
