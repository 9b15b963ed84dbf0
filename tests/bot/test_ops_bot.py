"""Operations of the running bot: /healthz and /metrics scraped over HTTP while questions are
answered through the fake Bot API, in polling and in webhook mode; QUESTION_LOG_DAYS and
/forgetme. The real Application, store and model, as in tests/bot/test_bot.py."""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from telegram.ext import Application

from bot.app import HEALTH_KEY, build_application
from bot.retention import JOB_NAME
from bot.runner import running
from bot.services import KEY, BotServices
from bot.state import BotState, QuestionLog
from tests.support.bot import bot_settings
from tests.support.fakebotapi import FakeBotApi

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
GM_EN = "Who is the new chief executive of General Motors?"
NOT_FOUND = "General Motors chief executive before:1990-01-01"
JSON = dict[str, Any]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def serving(settings: Any, embedder: Any) -> AsyncIterator[Application]:
    app = build_application(settings, embedder=embedder)
    async with running(app, settings):
        yield app


def services_of(app: Application) -> BotServices:
    return app.bot_data[KEY]  # type: ignore[no-any-return]


def sample(text: str, name: str, labels: dict[str, str] | None = None) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and (labels is None or all(s.labels.get(k) == v
                                                          for k, v in labels.items())):
                return float(s.value)
    return None


async def eventually(check: Callable[[], Any], timeout: float = 30.0) -> Any:  # noqa: ASYNC109
    """Poll an async ``check`` until it returns something truthy (generous deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {value!r})")
        await asyncio.sleep(0.1)


async def logged(app: Application, n: int) -> None:
    """Wait until ``n`` questions are logged: that happens just after the answer is sent."""
    registry = services_of(app).metrics.registry

    async def done() -> bool:
        return registry.get_sample_value("newsbot_questions_total", {"kind": "message"}) == n

    await eventually(done)


def buttons(message: JSON) -> list[JSON]:
    return [b for row in message.get("reply_markup", {}).get("inline_keyboard", []) for b in row]


@pytest.fixture
def settings_for(bot_store: Path, fake_bot_api: FakeBotApi, tmp_path: Path) -> Any:
    def make(**overrides: Any) -> Any:
        return bot_settings(bot_store, fake_bot_api, tmp_path, **overrides)

    return make


# -- metrics and health, polling ------------------------------------------------------------


async def test_metrics_count_questions_votes_errors_while_answering(
    fake_bot_api: FakeBotApi, settings_for: Any, bot_embedder: Any
) -> None:
    server = fake_bot_api
    port = free_port()
    ada = server.user("Ada", language_code="en")
    chat = server.private_chat(ada)
    async with serving(settings_for(metrics_port=port), bot_embedder) as app, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        assert (await http.get("/nowhere")).status_code == 404
        server.inject_fault("sendMessage", "429", retry_after=1)
        server.user_sends(chat, ada, GM_EN)
        scrapes = []
        while not server.sent_messages(chat["id"]):  # scraped while the question is answered
            scrapes += [await http.get("/metrics"), await http.get("/healthz")]
            await asyncio.sleep(0.05)
        assert scrapes and all(r.status_code == 200 for r in scrapes)
        (answer,) = await server.wait_for_messages(chat["id"], count=1, timeout=30)
        server.user_sends(chat, ada, NOT_FOUND)
        await server.wait_for_messages(chat["id"], count=2, timeout=30)
        up = next(b for b in buttons(answer) if b["text"] == "👍")
        server.user_presses(answer, ada, up["callback_data"])
        await server.wait_for_calls("answerCallbackQuery", 1)

        async def scraped() -> str | None:
            text = (await http.get("/metrics")).text
            done = sample(text, "newsbot_questions_total", {"kind": "message"}) == 2
            voted = sample(text, "newsbot_feedback_total", {"vote": "up"}) == 1
            copied = (sample(text, "newsbot_memory_copy_bytes") or 0) > 0
            return text if done and voted and copied else None

        text = await eventually(scraped, timeout=60)
        response = await http.get("/metrics")
        health = await http.get("/healthz")
        memory = services_of(app).retriever.memory.status()
    assert response.headers["content-type"].startswith("text/plain")
    assert sample(text, "newsbot_answer_seconds_count", {"kind": "message"}) == 2
    assert (sample(text, "newsbot_answer_seconds_sum", {"kind": "message"}) or 0) > 0
    assert sample(text, "newsbot_not_found_answers_total", {"kind": "message"}) == 1
    assert sample(text, "newsbot_feedback_total", {"vote": "down"}) == 0
    # the 429 was retried by PTB's rate limiter, and still counted
    assert sample(text, "newsbot_bot_api_errors_total",
                  {"method": "sendMessage", "code": "429"}) == 1
    assert (sample(text, "newsbot_last_get_updates_timestamp_seconds") or 0) > time.time() - 600
    assert sample(text, "newsbot_memory_copy_chunks") == memory.chunks > 0
    for family in ("newsbot_digest_deliveries", "newsbot_alerts_sent", "newsbot_source_failures"):
        assert f"# TYPE {family}_total counter" in text
    assert health.status_code == 200 and health.text == "ok\n"


def _load_healthcheck() -> Any:
    spec = importlib.util.spec_from_file_location("hc", ROOT / "deploy" / "healthcheck.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_healthz_fails_while_the_store_is_unreadable(
    fake_bot_api: FakeBotApi, settings_for: Any, bot_embedder: Any
) -> None:
    port = free_port()
    settings = settings_for(metrics_port=port)
    store = settings.sqlite_path
    moved = store.with_name(store.name + ".moved")
    hc = _load_healthcheck()
    async with serving(settings, bot_embedder), \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        assert (await http.get("/healthz")).status_code == 200
        assert await asyncio.to_thread(hc.check, port, timeout=5) == 0  # the image's check
        store.rename(moved)  # an unmounted volume, a deleted file
        try:
            bad = await http.get("/healthz")
            image_check = await asyncio.to_thread(hc.check, port, timeout=5)
        finally:
            moved.rename(store)
        good = await http.get("/healthz")
    assert bad.status_code == 503
    assert bad.text.startswith("unhealthy: store unreadable") and store.name in bad.text
    assert image_check == 1
    assert good.status_code == 200


async def test_healthz_fails_when_updates_stop_and_recovers(
    fake_bot_api: FakeBotApi, settings_for: Any, bot_embedder: Any
) -> None:
    server = fake_bot_api
    port = free_port()
    settings = settings_for(metrics_port=port, health_max_update_age=3, poll_timeout=1)
    async with serving(settings, bot_embedder), \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:

        async def status(code: int) -> httpx.Response | None:
            r = await http.get("/healthz")
            return r if r.status_code == code else None

        await eventually(lambda: status(200))
        server.inject_fault("getUpdates", "5xx", times=1000, status=502)
        stale = await eventually(lambda: status(503), timeout=60)
        server.clear_faults()
        await eventually(lambda: status(200), timeout=90)
        text = (await http.get("/metrics")).text
    assert "no successful getUpdates for" in stale.text
    assert (sample(text, "newsbot_bot_api_errors_total",
                   {"method": "getUpdates", "code": "502"}) or 0) >= 1


async def test_healthz_says_so_when_the_event_loop_is_blocked(
    fake_bot_api: FakeBotApi, settings_for: Any, bot_embedder: Any
) -> None:
    import threading

    port = free_port()
    async with serving(settings_for(metrics_port=port), bot_embedder) as app:
        app.bot_data[HEALTH_KEY].probe_timeout = 1.0
        release = threading.Event()

        def ask() -> httpx.Response:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
            finally:
                release.set()

        asyncio.get_running_loop().call_soon(release.wait, 20)  # the loop is stuck in there
        blocked = await asyncio.to_thread(ask)
        after = await asyncio.to_thread(httpx.get, f"http://127.0.0.1:{port}/healthz")
    assert blocked.status_code == 503 and "event loop did not answer" in blocked.text
    assert after.status_code == 200


async def test_no_server_without_metrics_port(
    fake_bot_api: FakeBotApi, settings_for: Any, bot_embedder: Any
) -> None:
    async with serving(settings_for(), bot_embedder) as app:
        assert HEALTH_KEY not in app.bot_data
        assert services_of(app).metrics.registry is not None  # counted all the same


# -- webhook mode ---------------------------------------------------------------------------


async def test_webhook_mode_health_and_metrics(
    fake_bot_api: FakeBotApi, settings_for: Any, bot_embedder: Any
) -> None:
    server = fake_bot_api
    port, hook_port = free_port(), free_port()
    url = f"http://127.0.0.1:{hook_port}/newsbot-hook"
    settings = settings_for(metrics_port=port, webhook_url=url, webhook_listen="127.0.0.1",
                            webhook_port=hook_port, health_max_update_age=1)
    ada = server.user("Ada", language_code="en")
    chat = server.private_chat(ada)
    async with serving(settings, bot_embedder) as app, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        app.bot_data[HEALTH_KEY].check.info_every = 0  # ask Telegram at every check
        server.user_sends(chat, ada, GM_EN)
        scrapes = []
        while not server.sent_messages(chat["id"]):  # scraped while the question is answered
            scrapes.append(await http.get("/metrics"))
            await asyncio.sleep(0.05)
        assert scrapes and all(r.status_code == 200 for r in scrapes)
        await server.wait_for_messages(chat["id"], count=1, timeout=30)

        async def counted() -> str | None:
            text = (await http.get("/metrics")).text
            return text if sample(text, "newsbot_questions_total", {"kind": "message"}) else None

        text = await counted() or await eventually(counted)
        # A quiet webhook bot is healthy: nothing pending at Telegram, no delivery error.
        async def age_passed() -> bool:
            metrics = services_of(app).metrics
            assert metrics.webhook_update_at is not None
            return time.monotonic() - metrics.webhook_update_at > 1.5

        await eventually(age_passed)
        quiet = await http.get("/healthz")
        # Telegram can no longer reach the bot: updates pile up, deliveries fail.
        await app.bot.set_webhook(url=f"http://127.0.0.1:{free_port()}/gone")
        server.user_sends(chat, ada, GM_EN)

        async def unhealthy() -> httpx.Response | None:
            r = await http.get("/healthz")
            return r if r.status_code == 503 else None

        broken = await eventually(unhealthy)
    assert (sample(text, "newsbot_webhook_updates_total") or 0) >= 1
    assert (sample(text, "newsbot_last_webhook_update_timestamp_seconds") or 0) > 0
    assert quiet.status_code == 200
    assert "no webhook delivery for" in broken.text and "pending at Telegram" in broken.text


# -- retention and /forgetme ----------------------------------------------------------------


async def test_old_questions_and_votes_are_purged_at_start_and_daily(
    fake_bot_api: FakeBotApi, settings_for: Any, bot_embedder: Any
) -> None:
    settings = settings_for(question_log_days=90)
    tz = ZoneInfo("Europe/Rome")
    state = await BotState.open(settings.bot_state_path, tz)
    now = time.time()
    for age_days, question in ((120, "old"), (91, "older than 90"), (10, "recent")):
        await state.log_question(QuestionLog(7, 7, "private", "message", "en", question, 1, 5.0))
        await state.flush()
        await state.db.execute("UPDATE questions SET ts=? WHERE question=?",
                               (now - age_days * 86400, question))
        await state.db.execute(
            "INSERT INTO feedback(page_id, user_id, vote, question, hit_ids, ts)"
            " VALUES(?,?,?,?,?,?)", (f"p{age_days}", 7, 1, question, "[]",
                                     now - age_days * 86400))
    await state.close()

    def rows() -> tuple[list[str], list[str]]:
        with sqlite3.connect(settings.bot_state_path) as con:
            return ([r[0] for r in con.execute("SELECT question FROM questions")],
                    [r[0] for r in con.execute("SELECT question FROM feedback")])

    async with serving(settings, bot_embedder) as app:
        at_start = rows()
        assert app.job_queue is not None
        (job,) = app.job_queue.get_jobs_by_name(JOB_NAME)
        interval = job.trigger.interval.total_seconds()
        # Days later the recent question is past 90 days too: the daily run deletes it.
        state = services_of(app).state
        await state.db.execute("UPDATE questions SET ts=?", (now - 91 * 86400,))
        await job.run(app)
        after_daily = rows()
    assert at_start == (["recent"], ["recent"])
    assert interval == 86400
    assert after_daily == ([], ["recent"])


async def test_purge_keeps_everything_at_zero_days(tmp_path: Path) -> None:
    state = await BotState.open(tmp_path / "s.sqlite3", ZoneInfo("UTC"))
    try:
        await state.log_question(QuestionLog(1, 1, "private", "message", "en", "q", 0, 1.0))
        far_future = time.time() + 10_000 * 86400
        assert (await state.purge(0, now=far_future))["questions"] == 0
        assert (await state.purge(30, now=far_future))["questions"] == 1
    finally:
        await state.close()


async def test_forgetme_deletes_the_users_rows_and_says_how_many(
    fake_bot_api: FakeBotApi, settings_for: Any, bot_embedder: Any
) -> None:
    server = fake_bot_api
    ada = server.user("Ada", language_code="en")
    eva = server.user("Eva", language_code="it")
    ada_chat, eva_chat = server.private_chat(ada), server.private_chat(eva)
    settings = settings_for()
    async with serving(settings, bot_embedder) as app:
        server.user_sends(ada_chat, ada, GM_EN)
        (answer,) = await server.wait_for_messages(ada_chat["id"], count=1, timeout=30)
        server.user_sends(ada_chat, ada, NOT_FOUND)
        await server.wait_for_messages(ada_chat["id"], count=2, timeout=30)
        up = next(b for b in buttons(answer) if b["text"] == "👍")
        server.user_presses(answer, ada, up["callback_data"])
        await server.wait_for_calls("answerCallbackQuery", 1)
        server.user_sends(ada_chat, ada, "/subscribe 08:00 daily")
        await server.wait_for_messages(ada_chat["id"], count=3, timeout=30)
        server.user_sends(eva_chat, eva, GM_EN)
        await server.wait_for_messages(eva_chat["id"], count=1, timeout=30)
        await logged(app, 3)
        server.user_sends(ada_chat, ada, "/forgetme")
        *_, done = await server.wait_for_messages(ada_chat["id"], count=4, timeout=30)
        server.user_sends(ada_chat, ada, "/forgetme")
        *_, again = await server.wait_for_messages(ada_chat["id"], count=5, timeout=30)
    with sqlite3.connect(settings.bot_state_path) as con:
        def count(sql: str, *args: Any) -> int:
            return int(con.execute(sql, args).fetchone()[0])

        ada_left = sum(count(f"SELECT count(*) FROM {t} WHERE user_id=?", ada["id"])
                       for t in ("questions", "feedback", "pages"))
        ada_digest = count("SELECT count(*) FROM digest_subscriptions WHERE chat_id=?", ada["id"])
        eva_questions = count("SELECT count(*) FROM questions WHERE user_id=?", eva["id"])
    text = done["text"]
    assert text.startswith("Done: I deleted what I kept about you.")
    assert "questions: 2" in text and "votes: 1" in text
    assert "saved answers (for More): 1" in text and "digests and their history: 1" in text
    assert "kept 90 days" in text
    assert again["text"].startswith("I kept nothing about you")
    assert ada_left == 0 and ada_digest == 0
    assert eva_questions == 1  # someone else's rows stay


async def test_forgetme_in_italian(
    fake_bot_api: FakeBotApi, settings_for: Any, bot_embedder: Any
) -> None:
    server = fake_bot_api
    eva = server.user("Eva", language_code="it")
    chat = server.private_chat(eva)
    async with serving(settings_for(question_log_days=0), bot_embedder) as app:
        server.user_sends(chat, eva, GM_EN)
        await server.wait_for_messages(chat["id"], count=1, timeout=30)
        await logged(app, 1)
        server.user_sends(chat, eva, "/forgetme")
        _, done = await server.wait_for_messages(chat["id"], count=2, timeout=30)
    assert done["text"].startswith("Fatto: ho cancellato")
    assert "domande: 1" in done["text"]
    assert "conservate finché non invii di nuovo /forgetme" in done["text"]


# -- live sources -----------------------------------------------------------------------------


async def test_source_reads_are_counted_per_source(
    fake_bot_api: FakeBotApi, bot_embedder: Any, tmp_path: Path
) -> None:
    from tests.support.feedserver import FeedServer, Route, rss, story

    feeds = FeedServer().start()
    port = free_port()
    try:
        feeds.routes["/wire.xml"] = Route(rss("Gazzetta di Prova", [story(0)]), etag='"v1"')
        feeds.routes["/broken.xml"] = Route(status=500)
        settings = bot_settings(
            tmp_path / "data", fake_bot_api, tmp_path, metrics_port=port,
            sources={"wire": {"path": feeds.url("/wire.xml"), "every": "1s"},
                     "broken": {"path": feeds.url("/broken.xml"), "every": "0.3s"}},
            fetch_timeout=2.0,
        )
        async with serving(settings, bot_embedder) as app, \
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            services = services_of(app)
            assert services.live is not None
            live = services.live.indexer
            feeds.routes["/wire.xml"] = Route(rss("Gazzetta di Prova", [story(1), story(0)]),
                                              etag='"v2"')
            await live.wait_for(
                lambda h: any(r.name == "wire" and r.report and r.report.added for r in h)
                and sum(r.name == "broken" for r in h) >= 2, timeout=30)
            failed_before = sum(r.name == "broken" and not r.ok for r in live.history)
            text = (await http.get("/metrics")).text
            failed_after = sum(r.name == "broken" and not r.ok for r in live.history)
            wire_ok = {r.at for r in live.history if r.name == "wire" and r.ok}
    finally:
        feeds.stop()
    assert sample(text, "newsbot_source_articles_total", {"source": "wire"}) == 1
    # the time of one of its successful reads (the last one before the scrape)
    assert sample(text, "newsbot_source_last_success_timestamp_seconds",
                  {"source": "wire"}) in wire_ok
    assert sample(text, "newsbot_source_last_success_timestamp_seconds",
                  {"source": "broken"}) is None
    failures = sample(text, "newsbot_source_failures_total", {"source": "broken"}) or 0
    assert 2 <= failed_before <= failures <= failed_after
