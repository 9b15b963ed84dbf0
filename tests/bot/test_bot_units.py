"""Small, fast checks of the bot's parts that need no server: limits, state, texts, redaction."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from telegram import Bot, Message

from bot import texts
from bot.delivery_failures import DeliveryFailure, describe_error, failures_html, notice_html
from bot.handlers import addressed_question, command_argument
from bot.logs import redact, register_secret
from bot.ratelimit import UserRateLimiter
from bot.state import BotState, Page, QuestionLog, new_page_id, percentile
from bot.texts import sources, strings
from tests.support.fakebotapi import parse_html, visible_length

SECRET_TOKEN = "555555:UNIT-secret-abcdefghijklmnopqrstuvwxyz"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_user_rate_limit_sliding_window_tells_once() -> None:
    clock = Clock()
    limiter = UserRateLimiter(2, clock=clock)
    assert limiter.check(1).allowed and limiter.check(1).allowed
    refused = limiter.check(1)
    assert not refused.allowed and refused.notify and refused.retry_in == pytest.approx(60)
    again = limiter.check(1)
    assert not again.allowed and not again.notify  # told once per window
    assert limiter.check(2).allowed  # other users are not affected
    clock.now += 30
    assert not limiter.check(1).allowed
    clock.now += 30.01
    assert limiter.check(1).allowed
    assert UserRateLimiter(0).check(1).allowed  # 0 = unlimited


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([5.0], 95) == 5.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0 and percentile(values, 95) == 95.0


async def test_state_pages_feedback_and_stats(tmp_path: Path) -> None:
    state = await BotState.open(tmp_path / "bot.sqlite3", ZoneInfo("Europe/Rome"))
    try:
        page = Page(new_page_id(), 1, 2, "it", "domanda", 0, 3, ["a::1", "b::2"])
        assert len(f"f:{page.id}:+".encode()) <= 64
        await state.save_page(page)
        loaded = await state.page(page.id)
        assert loaded is not None and loaded.hit_ids == ["a::1", "b::2"]
        assert loaded.next_offset == 3
        assert await state.claim_next_page(page.id)
        assert not await state.claim_next_page(page.id)
        await state.release_page(page.id)
        assert await state.claim_next_page(page.id)
        await state.record_feedback(page, 7, 1)
        await state.record_feedback(page, 7, -1)  # a change of mind replaces the vote
        await state.record_feedback(page, 8, 1)
        assert sorted(await state.feedback(page.id)) == [(7, -1), (8, 1)]
        for ms in (10.0, 20.0, 30.0, 400.0):
            await state.log_question(QuestionLog(7, 1, "private", "message", "it", "q", 3, ms))
        await state.log_question(QuestionLog(7, None, "sender", "inline", "it", "q", 3, 5.0))
        stats = await state.stats()
        assert stats["questions_today"] == 5
        assert (stats["up"], stats["down"]) == (1, 1)
        assert stats["p50_ms"] == 20.0 and stats["p95_ms"] == 400.0
        assert await state.page("missing") is None
    finally:
        await state.close()


def test_texts_escape_values_and_follow_the_users_language() -> None:
    assert texts.user_lang("it") == texts.user_lang("it-IT") == "it"
    assert texts.user_lang("en-US") == texts.user_lang(None) == texts.user_lang("de") == "en"
    html_text = texts.t("reindex_unknown", "en", name="<b>&x", sources=texts.Html("<i>ok</i>"))
    assert "&lt;b&gt;&amp;x" in html_text and "<i>ok</i>" in html_text
    overview = {"languages": {"en": 3, "it": 2}, "top_sources": {},
                "first_published": datetime(2008, 12, 12, tzinfo=UTC),
                "last_published": datetime(2024, 5, 8, tzinfo=UTC)}
    for lang in ("en", "it"):
        start = texts.start_html(lang, {"articles": 5, "chunks": 9}, overview, "my_bot")
        parse_html(start)
        parse_html(texts.help_html(lang, "my_bot"))
    it = texts.start_html("it", {"articles": 5, "chunks": 9}, overview, "my_bot")
    assert "pubblicati dal 12 dicembre 2008 all'8 maggio 2024" in it
    assert "inglese e italiano" in it
    assert texts.duration(75) == "1:15" and texts.duration(None) == "--:--"
    for lang in ("en", "it"):
        for key in texts.STRINGS["en"]:
            assert key in texts.STRINGS[lang], (lang, key)
    for lang in ("en", "it"):  # the live sources' table adds to the rest, replacing nothing
        assert not set(strings.STRINGS[lang]) & set(sources.STRINGS[lang])
        assert set(sources.STRINGS[lang]) == set(sources.STRINGS["en"])


def _message(text: str, *, reply_from_bot: bool = False, entities: list | None = None) -> Message:
    data: dict = {
        "message_id": 5, "date": 0, "text": text,
        "chat": {"id": -100, "type": "supergroup", "title": "g"},
        "from": {"id": 9, "is_bot": False, "first_name": "U"},
        "entities": entities or [],
    }
    if reply_from_bot:
        data["reply_to_message"] = {
            "message_id": 4, "date": 0, "chat": data["chat"], "text": "answer",
            "from": {"id": 1, "is_bot": True, "first_name": "B", "username": "news_bot"},
        }
    return Message.de_json(data, Bot("1:x"))


def test_finding_the_question_in_group_messages() -> None:
    ask = _message("/ask@news_bot who is\nthe CEO?",
                   entities=[{"type": "bot_command", "offset": 0, "length": 13}])
    assert command_argument(ask) == "who is\nthe CEO?"
    mention = _message("hey @News_Bot  who won?", entities=[{"type": "mention", "offset": 4,
                                                             "length": 9}])
    assert addressed_question(mention, 1, "news_bot") == "hey who won?"
    other = _message("@other_bot who won?", entities=[{"type": "mention", "offset": 0,
                                                       "length": 10}])
    assert addressed_question(other, 1, "news_bot") is None
    assert addressed_question(_message("and GM?", reply_from_bot=True), 1, "news_bot") == "and GM?"
    assert addressed_question(_message("chatter"), 1, "news_bot") is None
    only = _message("@news_bot", entities=[{"type": "mention", "offset": 0, "length": 9}])
    assert addressed_question(only, 1, "news_bot") == ""


def test_redaction_reaches_every_record(caplog: pytest.LogCaptureFixture) -> None:
    register_secret(SECRET_TOKEN)
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger("some.library")
    log.info("GET http://api/bot%s/getMe", SECRET_TOKEN)
    log.debug("token=%r", {"t": SECRET_TOKEN})
    try:
        raise RuntimeError(f"failed at /bot{SECRET_TOKEN}/sendMessage")
    except RuntimeError:
        log.exception("request failed")
    log.warning("unknown-looking token 1234567:abcdefghijklmnopqrstuvwxyz0123")
    assert len(caplog.records) == 4
    assert SECRET_TOKEN not in caplog.text
    assert "1234567:abcdefghijklmnopqrstuvwxyz0123" not in caplog.text
    for record in caplog.records:
        assert SECRET_TOKEN not in record.getMessage()
        assert record.exc_info is None or SECRET_TOKEN not in str(record.exc_info[1])
    assert "<redacted>" in caplog.records[0].getMessage()
    assert "RuntimeError" in caplog.text  # the traceback survives, without the secret
    assert redact(f"x{SECRET_TOKEN}y") == "x<redacted>y"


def test_failure_notices_are_safe_html_without_secrets_and_short_enough() -> None:
    """Whatever a chat is called and whatever an exception says, the admins' notice and the
    /stats lines parse as Telegram HTML, carry no token and fit in one message."""
    register_secret(SECRET_TOKEN)
    error = RuntimeError(f"POST /bot{SECRET_TOKEN}/sendMessage <b>&</b>\n" + "x" * 5000)
    reason = describe_error(error)
    assert reason.startswith("RuntimeError: POST /bot<redacted>/sendMessage <b>&</b> xxx")
    assert SECRET_TOKEN not in reason and "\n" not in reason and len(reason) <= 300
    assert describe_error(TimeoutError()) == "TimeoutError"
    since = datetime(2025, 12, 2, 7, 0, 30, tzinfo=UTC)
    hostile = DeliveryFailure(
        kind="digest", chat_id=-100123, ref="", chat_title="<script>&" * 40,
        what={"en": "digest <i>" + "topic " * 100, "it": "rassegna & " * 100},
        since=since, last_at=since, attempts=7, reason=reason, reported_at=None,
    )
    tz = ZoneInfo("Europe/Rome")
    notice = notice_html(hostile, tz)
    assert parse_html(notice).text.count("Failed attempts: 7, since 2 December 2025 08:00") == 1
    assert "Tentativi falliti: 7, dal 2 dicembre 2025 08:00" in parse_html(notice).text
    assert SECRET_TOKEN not in notice and visible_length(notice) <= 4096
    for lang in ("en", "it"):
        listed = failures_html([hostile] * 40, lang, tz)
        assert visible_length(listed) < 3200
        lines = parse_html(listed).text.splitlines()
        shown = sum(line.startswith("• ") for line in lines)
        assert 0 < shown < 40
        assert lines[-1] in (f"… and {40 - shown} more", f"… e altre {40 - shown}")
        assert failures_html([], lang, tz) in (
            "failing deliveries: none", "consegne che falliscono: nessuna")
