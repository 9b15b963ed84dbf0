"""The Telegram bot end to end: the real Application from ``build_application`` talking HTTP to
the fake Bot API server, over a small real store (real MiniLM, SQLite, embedded Chroma).

The fake server fails a test at teardown for any call Telegram would reject, so every
message checked here is also valid Telegram HTML within the length limits.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from telegram.ext import Application

from bot.app import build_application
from bot.runner import running
from bot.services import KEY, BotServices
from tests.support.bot import BOT_ADMIN_ID, bot_articles, bot_settings, updates_taken
from tests.support.fakebotapi import FakeBotApi, parse_html, visible_length

pytestmark = pytest.mark.slow

GM_EN = "Who is the new chief executive of General Motors?"
GM_IT = "Chi è il nuovo amministratore delegato di General Motors?"
JSON = dict[str, Any]


@asynccontextmanager
async def serving(settings: Any, embedder: Any) -> AsyncIterator[Application]:
    app = build_application(settings, embedder=embedder)
    async with running(app, settings):
        yield app


def services_of(app: Application) -> BotServices:
    return app.bot_data[KEY]  # type: ignore[no-any-return]


def replies_to(server: FakeBotApi, chat: JSON, message: JSON) -> list[JSON]:
    mid = message["message_id"]
    return [
        m for m in server.sent_messages(chat["id"])
        if (m.get("reply_to_message") or {}).get("message_id") == mid
    ]


def buttons(message: JSON) -> list[JSON]:
    return [b for row in message.get("reply_markup", {}).get("inline_keyboard", []) for b in row]


def article_texts() -> dict[str, str]:
    return {a["title"]: a["text"] for a in bot_articles()}


@pytest.fixture
def settings_for(bot_store: Path, fake_bot_api: FakeBotApi, tmp_path: Path) -> Any:
    def make(**overrides: Any) -> Any:
        return bot_settings(bot_store, fake_bot_api, tmp_path, **overrides)

    return make


# -- private chat ---------------------------------------------------------------------------


async def test_private_question_is_answered_with_a_quote(
    fake_bot_api: FakeBotApi, settings_for: Any, bot_embedder: Any
) -> None:
    server = fake_bot_api
    ada = server.user("Ada", language_code="en")
    chat = server.private_chat(ada)
    async with serving(settings_for(), bot_embedder):
        asked = server.user_sends(chat, ada, GM_EN)["message"]
        (reply,) = await server.wait_for_messages(chat["id"], count=1, timeout=20)
    assert reply["reply_to_message"]["message_id"] == asked["message_id"]
    assert "Mary Barra" in reply["text"]
    assert reply["text"].startswith(("3 passages for:", "2 passages for:", "1 passage for:"))
    # the quote is an exact slice of the article it cites
    quotes = [e for e in reply["entities"] if e["type"] == "blockquote"]
    assert quotes
    units = reply["text"].encode("utf-16-le")
    first = units[2 * quotes[0]["offset"]: 2 * (quotes[0]["offset"] + quotes[0]["length"])]
    quote = first.decode("utf-16-le").strip("… ").strip()
    assert any(quote in text for text in article_texts().values())
    call = server.calls_to("sendMessage", ok=True)[-1]
    assert call.params["parse_mode"] == "HTML"
    assert call.params["link_preview_options"] == {"is_disabled": True}
    labels = [b["text"] for b in buttons(reply)]
    # "More" only while passages that earn their place remain (index/search/padding.py)
    assert labels[-2:] == ["👍", "👎"] and labels[:-2] in ([], ["More ▸"])


async def test_the_default_wiring_encodes_in_a_child_process(
    fake_bot_api: FakeBotApi, settings_for: Any
) -> None:
    """No embedder handed in: the bot starts its own encoder process, answers through it and
    stops it on shutdown."""
    server = fake_bot_api
    ada = server.user("Ada", language_code="en")
    chat = server.private_chat(ada)
    async with serving(settings_for(encoder_process=True), None) as app:
        services = services_of(app)
        child = services.encoder
        assert child is not None and services.index.embedder is child
        proc = child.process
        assert proc is not None and proc.is_alive()
        server.user_sends(chat, ada, GM_EN)
        (reply,) = await server.wait_for_messages(chat["id"], count=1, timeout=60)
    assert "Mary Barra" in reply["text"]
    proc.join(10)
    assert not proc.is_alive()


async def test_italian_user_gets_italian_texts_and_start_describes_the_corpus(
    fake_bot_api: FakeBotApi, settings_for: Any, bot_embedder: Any
) -> None:
    server = fake_bot_api
    eva = server.user("Eva", language_code="it-IT")
    chat = server.private_chat(eva)
    async with serving(settings_for(), bot_embedder):
        server.user_sends(chat, eva, "/start")
        (start,) = await server.wait_for_messages(chat["id"], count=1, timeout=20)
        server.user_sends(chat, eva, GM_IT)
        _, answer = await server.wait_for_messages(chat["id"], count=2, timeout=20)
        server.user_sends(chat, eva, "/help")
        await server.wait_for_messages(chat["id"], count=3, timeout=20)
    n = len(bot_articles())
    assert f"Conosco {n} articoli" in start["text"] and "inglese e italiano" in start["text"]
    assert "pubblicati dal" in start["text"] and "@newsbot_test_bot" in start["text"]
    assert "passaggi per:" in answer["text"] or "passaggio per:" in answer["text"]
    assert "Barra" in answer["text"]
    labels = [b["text"] for b in buttons(answer)]
    assert labels[-2:] == ["👍", "👎"] and labels[:-2] in ([], ["Altri ▸"])
    # the command menus: everyone's in EN and IT, and the admins' longer one
    default = [c["command"] for c in server.get_commands() or []]
    assert default[:3] == ["start", "help", "ask"] and "subscribe" in default
    assert [c["command"] for c in server.get_commands(language_code="it") or []] == default
    admin_scope = {"type": "chat", "chat_id": BOT_ADMIN_ID}
    admin = [c["command"] for c in server.get_commands(admin_scope) or []]
    assert admin[:7] == ["start", "help", "ask", "whoami", "forgetme", "reindex", "stats"]
    assert "subscribe" in admin and "reindex" not in default


# -- groups ---------------------------------------------------------------------------------


async def test_group_answers_ask_mentions_and_replies_and_ignores_chatter(
    fake_bot_api: FakeBotApi, settings_for: Any, bot_embedder: Any
) -> None:
    server = fake_bot_api
    bob = server.user("Bob")
    group = server.supergroup("Newsroom", members=[bob])
    me = server.bot_user["username"]
    async with serving(settings_for(), bot_embedder):
        ask = server.user_sends(group, bob, f"/ask {GM_EN}")["message"]
        (first,) = await server.wait_for_messages(group["id"], count=1, timeout=20)
        ask_at = server.user_sends(group, bob, f"/ask@{me} who voted on the automaker bailout?")
        mention = server.user_sends(group, bob, f"@{me} GM buyouts for workers")["message"]
        reply = server.user_sends(group, bob, "and Chrysler?", reply_to=first)["message"]
        await server.wait_for_messages(group["id"], count=4, timeout=20)
        # chatter: not delivered with privacy mode on; ignored even when delivered
        server.user_sends(group, bob, "lunch anyone?")
        server.set_chat_admins(group, bot_is_admin=True)  # admins get every message
        server.user_sends(group, bob, "General Motors is on the news again")
        server.user_sends(group, bob, "/ask@someother_bot who is the CEO?")
        empty = server.user_sends(group, bob, "/ask")["message"]
        await server.wait_for_messages(group["id"], count=5, timeout=20)
        await updates_taken(server)
    sent = server.sent_messages(group["id"])
    assert len(sent) == 5, server.describe_calls()
    for asked in (ask, ask_at["message"], mention, reply):
        assert len(replies_to(server, group, asked)) == 1
    assert "Barra" in first["text"]
    (usage,) = replies_to(server, group, empty)
    assert "/ask" in usage["text"] and "passages" not in usage["text"]


async def test_a_reply_to_an_answer_continues_it(
    fake_bot_api: FakeBotApi, settings_for: Any, bot_embedder: Any
) -> None:
    """ "e poi?" as a reply pages on; other words as a reply narrow the same question."""
    server = fake_bot_api
    ada = server.user("Ada", language_code="it")
    chat = server.private_chat(ada)
    async with serving(settings_for(), bot_embedder):
        server.user_sends(chat, ada, "General Motors Chrysler automakers")
        (answer,) = await server.wait_for_messages(chat["id"], count=1, timeout=20)
        assert any(b["callback_data"].startswith("m:") for b in buttons(answer))
        more = server.user_sends(chat, ada, "e poi?", reply_to=answer)["message"]
        await server.wait_for_messages(chat["id"], count=2, timeout=20)
        server.user_sends(chat, ada, "ancora", reply_to=answer)
        await server.wait_for_messages(chat["id"], count=3, timeout=20)
        narrowed = server.user_sends(chat, ada, "bailout", reply_to=answer)["message"]
        await server.wait_for_messages(chat["id"], count=4, timeout=20)
        fresh = server.user_sends(chat, ada, "e poi?")["message"]  # not a reply: a question
        await server.wait_for_messages(chat["id"], count=5, timeout=20)
        await server.wait_for(lambda: not any(
            b["callback_data"].startswith("m:") for b in buttons(server.sent_messages(chat["id"])[0])
        ), timeout=10)
    (page2,) = replies_to(server, chat, more)
    assert page2["text"].split("\n")[2].startswith("4.")  # the next passages, numbered on
    assert "e poi" not in page2["text"].split("\n")[0]
    # "ancora" to the same answer: its next page is not sent twice.
    sent = [m["text"] for m in server.sent_messages(chat["id"])]
    assert "I passaggi successivi sono già qui sotto." in sent
    assert sum(t.startswith("Altri passaggi per:") for t in sent) == 1
    (refined,) = replies_to(server, chat, narrowed)
    header = refined["text"].split("\n")[0]
    assert "General Motors" in header and "bailout" in header
    (new,) = replies_to(server, chat, fresh)
    assert "e poi" in new["text"]  # answered (or refused) as a question of its own


# -- buttons --------------------------------------------------------------------------------


async def test_more_pages_on_and_feedback_is_stored(
    fake_bot_api: FakeBotApi, settings_for: Any, bot_embedder: Any, tmp_path: Path
) -> None:
    server = fake_bot_api
    ada = server.user("Ada")
    chat = server.private_chat(ada)
    settings = settings_for()
    async with serving(settings, bot_embedder):
        server.user_sends(chat, ada, "General Motors Chrysler automakers")
        (answer,) = await server.wait_for_messages(chat["id"], count=1, timeout=20)
        more = buttons(answer)[0]["callback_data"]
        assert more.startswith("m:") and len(more.encode()) <= 64
        press = server.user_presses(answer, ada, more)
        _, page2 = await server.wait_for_messages(chat["id"], count=2, timeout=20)
        await server.wait_for(lambda: not any(
            b["text"] == "More ▸" for b in buttons(server.sent_messages(chat["id"])[0])
        ), timeout=10)
        again = server.user_presses(answer, ada, more)  # a stale "More" pages only once
        vote = server.user_presses(page2, ada, buttons(page2)[-2]["callback_data"])
        vote_down = server.user_presses(answer, ada, buttons(answer)[-1]["callback_data"])
        await server.wait_for(lambda: all(
            q["callback_query"]["id"] in server.callback_answers
            for q in (press, again, vote, vote_down)
        ), timeout=10)
    assert page2["reply_to_message"]["message_id"] == answer["message_id"]
    assert page2["text"].startswith("More passages for:")
    assert page2["text"].split("\n")[2].startswith("4.")  # numbering goes on
    assert len(server.sent_messages(chat["id"])) == 2
    assert "already" in server.callback_answers[again["callback_query"]["id"]]["text"]
    assert "Thanks" in server.callback_answers[vote["callback_query"]["id"]]["text"]
    with sqlite3.connect(settings.bot_state_path) as db:
        votes = db.execute("SELECT vote, question, hit_ids FROM feedback ORDER BY vote").fetchall()
        kinds = [r[0] for r in db.execute("SELECT kind FROM questions ORDER BY id")]
    assert [v[0] for v in votes] == [-1, 1]
    assert all(v[1] == "General Motors Chrysler automakers" for v in votes)
    assert all(json.loads(v[2]) for v in votes)
    assert kinds == ["message", "more"]


async def test_more_is_offered_only_while_earned_passages_remain(
    fake_bot_api: FakeBotApi, settings_for: Any, bot_embedder: Any
) -> None:
    """A full page is not enough for "More": a next passage must have earned its place."""
    from index.runtime import open_services

    server = fake_bot_api
    ada = server.user("Ada")
    chat = server.private_chat(ada)
    question = "General Motors Chrysler automakers"
    settings = settings_for()
    services = await open_services(settings, embedder=bot_embedder)
    try:
        everything = await (await services.retriever()).answer(question, k=50)
    finally:
        await services.close()
    earned = len(everything.hits)  # every passage that earns its place, however many asked
    assert 2 <= earned < 50

    async def ask(k: int) -> JSON:
        """The reply's message that carries the buttons (a long reply takes several)."""
        before = len(server.sent_messages(chat["id"]))
        async with serving(settings_for(answer_k=k), bot_embedder):
            server.user_sends(chat, ada, question)
            await server.wait_for(lambda: any(
                buttons(m) for m in server.sent_messages(chat["id"])[before:]), timeout=20)
        return next(m for m in server.sent_messages(chat["id"])[before:] if buttons(m))

    full = await ask(earned)
    assert "More ▸" not in [b["text"] for b in buttons(full)]  # nothing earned is left
    assert [b["text"] for b in buttons(full)] == ["👍", "👎"]
    short = await ask(earned - 1)
    assert [b["text"] for b in buttons(short)][0] == "More ▸"  # one earned passage remains


# -- inline mode ----------------------------------------------------------------------------


async def test_inline_query_returns_sendable_passages(
    fake_bot_api: FakeBotApi, settings_for: Any, bot_embedder: Any
) -> None:
    server = fake_bot_api
    ada = server.user("Ada", language_code="it")
    async with serving(settings_for(inline_results=5), bot_embedder):
        q = server.user_inline_query(ada, "General Motors chief executive")
        empty = server.user_inline_query(ada, "   ")
        ids = {q["inline_query"]["id"], empty["inline_query"]["id"]}
        await server.wait_for(lambda: ids <= set(server.inline_answers), timeout=20)
        next_offset = server.inline_answers[q["inline_query"]["id"]]["next_offset"]
        page2 = server.user_inline_query(
            ada, "General Motors chief executive", offset=next_offset if str(next_offset).isdigit() else "5"
        )
        await server.wait_for(lambda: page2["inline_query"]["id"] in server.inline_answers)
    answer = server.inline_answers[q["inline_query"]["id"]]
    results = answer["results"]
    assert 1 <= len(results) <= 5 and answer["cache_time"] <= 30
    offered = str(answer.get("next_offset") or "")
    assert any("Barra" in r["title"] for r in results)
    for r in results:
        content = r["input_message_content"]
        assert content["parse_mode"] == "HTML"
        assert visible_length(content["message_text"]) <= 4096
        parse_html(content["message_text"])  # strict: raises on invalid markup
        assert "passaggio per:" in content["message_text"]
    assert server.inline_answers[empty["inline_query"]["id"]]["results"] == []
    second = server.inline_answers[page2["inline_query"]["id"]]["results"]
    assert not {r["id"] for r in second} & {r["id"] for r in results}
    # A next page is offered only when a passage beyond this one has earned its place.
    assert not offered.isdigit() or (len(results) == 5 and second)
    assert offered.isdigit() or len(results) < 5 or not second


# -- limits ---------------------------------------------------------------------------------


async def test_rate_limit_answers_politely_once(
    fake_bot_api: FakeBotApi, settings_for: Any, bot_embedder: Any
) -> None:
    server = fake_bot_api
    ada = server.user("Ada")
    chat = server.private_chat(ada)
    async with serving(settings_for(user_rate_limit=2), bot_embedder):
        for i in range(5):
            server.user_sends(chat, ada, f"General Motors question {i}")
        await server.wait_for_messages(chat["id"], count=3, timeout=20)
        await updates_taken(server)
        other = server.user("Bea")
        other_chat = server.private_chat(other)
        server.user_sends(other_chat, other, GM_EN)
        await server.wait_for_messages(other_chat["id"], count=1, timeout=20)
    texts = server.sent_texts(chat["id"])
    assert len(texts) == 3, texts
    polite = [t for t in texts if "wait" in t]
    assert len(polite) == 1 and "s and ask again" in polite[0]


async def test_hostile_articles_render_as_valid_short_html(
    fake_bot_api: FakeBotApi, settings_for: Any, bot_embedder: Any
) -> None:
    server = fake_bot_api
    ada = server.user("Ada")
    chat = server.private_chat(ada)
    async with serving(settings_for(answer_k=5), bot_embedder):
        asked = server.user_sends(chat, ada, "zebra crossings festival striped road markings")
        await server.wait_for_messages(chat["id"], count=1, timeout=20)
        server.user_inline_query(ada, "zebra crossings festival")
        await server.wait_for(lambda: server.inline_answers, timeout=20)
        await updates_taken(server)
    sent = server.sent_messages(chat["id"])
    assert replies_to(server, chat, asked["message"])
    assert any("zebra" in m["text"].lower() for m in sent)
    for call in server.calls_to("sendMessage", ok=True):
        html_text = call.params["text"]
        assert visible_length(html_text) <= 4096
        parsed = parse_html(html_text)
        assert "<script>" not in html_text and "javascript:" not in html_text
        assert all(e.get("url", "").startswith("http") for e in parsed.entities
                   if e["type"] == "text_link")
    (inline,) = server.inline_answers.values()
    for r in inline["results"]:
        parse_html(r["input_message_content"]["message_text"])
    assert server.violations == []


# -- faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "extra"),
    [("429", {"retry_after": 1}), ("5xx", {"status": 502}), ("5xx", {"status": 500}),
     ("slow", {"delay": 1.0}), ("slow", {"delay": 6.0}), ("drop", {})],
)
async def test_every_question_gets_exactly_one_answer_under_faults(
    fake_bot_api: FakeBotApi, settings_for: Any, bot_embedder: Any, kind: str,
    extra: dict[str, Any],
) -> None:
    server = fake_bot_api
    users = [server.user(f"U{i}") for i in range(4)]
    chats = [server.private_chat(u) for u in users]
    async with serving(settings_for(), bot_embedder):
        server.inject_fault("sendMessage", kind, times=2, **extra)
        server.inject_fault("getUpdates", "drop" if kind != "slow" else "5xx", times=1)
        asked = [server.user_sends(c, u, GM_EN)["message"] for u, c in zip(users, chats, strict=True)]
        for c in chats:
            await server.wait_for_messages(c["id"], count=1, timeout=30)
        # still alive and well afterwards
        late = server.user_sends(chats[0], users[0], "GM buyouts")["message"]
        await server.wait_for_messages(chats[0]["id"], count=2, timeout=20)
        await updates_taken(server)
    for c, q in zip(chats, asked, strict=True):
        assert len(replies_to(server, c, q)) == 1, server.describe_calls()
        assert len(server.sent_messages(c["id"])) == (2 if c is chats[0] else 1)
    assert len(replies_to(server, chats[0], late)) == 1
    assert any(c.fault == kind for c in server.calls)


async def test_the_token_never_reaches_the_logs(
    fake_bot_api: FakeBotApi, settings_for: Any, bot_embedder: Any,
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
) -> None:
    server = fake_bot_api
    caplog.set_level(logging.DEBUG)
    # An earlier CLI run in the same process may have quietened httpx (bot/logs.py).
    caplog.set_level(logging.DEBUG, logger="httpx")
    ada = server.user("Ada")
    chat = server.private_chat(ada)
    async with serving(settings_for(), bot_embedder):
        server.inject_fault("sendMessage", "drop", times=1)
        server.inject_fault("sendMessage", "5xx", times=1)
        server.user_sends(chat, ada, GM_EN)
        await server.wait_for_messages(chat["id"], count=1, timeout=20)
        logging.getLogger("test").warning("url was %s", f"{server.base_url}{server.token}/x")
    token = server.token
    assert caplog.records, "nothing was logged at all"
    assert any("HTTP Request" in r.getMessage() for r in caplog.records)  # httpx did log URLs
    for record in caplog.records:
        assert token not in record.getMessage()
        assert token not in str(record.args or "")
        assert token not in (record.exc_text or "")
    assert token not in caplog.text
    out, err = capsys.readouterr()
    assert token not in out and token not in err
    for message in server.sent_texts():
        assert token not in message


# -- admin ----------------------------------------------------------------------------------


async def test_non_admins_are_refused_and_logged(
    fake_bot_api: FakeBotApi, settings_for: Any, bot_embedder: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = fake_bot_api
    mallory = server.user("Mallory", language_code="it")
    chat = server.private_chat(mallory)
    caplog.set_level(logging.INFO)
    async with serving(settings_for(), bot_embedder):
        server.user_sends(chat, mallory, "/reindex all")
        server.user_sends(chat, mallory, "/stats")
        await server.wait_for_messages(chat["id"], count=2, timeout=20)
    assert all("amministratori" in t for t in server.sent_texts(chat["id"]))
    assert server.calls_to("editMessageText") == []
    refused = [r for r in caplog.records if r.getMessage() == "refused admin command"]
    assert {r.kv["command"] for r in refused} == {"reindex", "stats"}  # type: ignore[attr-defined]
    assert all(r.kv["user"] == mallory["id"] for r in refused)  # type: ignore[attr-defined]


async def test_admin_stats(
    fake_bot_api: FakeBotApi, settings_for: Any, bot_embedder: Any
) -> None:
    server = fake_bot_api
    admin = server.user("Root", user_id=BOT_ADMIN_ID)
    chat = server.private_chat(admin)
    async with serving(settings_for(), bot_embedder):
        server.user_sends(chat, admin, GM_EN)
        (answer,) = await server.wait_for_messages(chat["id"], count=1, timeout=20)
        server.user_presses(answer, admin, buttons(answer)[-2]["callback_data"])
        await server.wait_for(lambda: server.callback_answers, timeout=10)
        server.user_sends(chat, admin, "/stats")
        _, stats = await server.wait_for_messages(chat["id"], count=2, timeout=20)
    text = stats["text"]
    assert f"articles {len(bot_articles())}" in text
    assert "questions today: 1" in text and "👍 1 · 👎 0 (100% 👍)" in text
    assert "p50" in text and "ms" in text and "last index run:" in text


async def test_a_failing_answer_is_logged_and_the_user_told_without_details(
    fake_bot_api: FakeBotApi, settings_for: Any, bot_embedder: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = fake_bot_api
    ada = server.user("Ada", language_code="it")
    chat = server.private_chat(ada)
    caplog.set_level(logging.INFO)
    async with serving(settings_for(), bot_embedder) as app:
        retriever = services_of(app).retriever

        async def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("index exploded at /secret/path")

        retriever.answer = broken  # type: ignore[method-assign]
        server.user_sends(chat, ada, GM_IT)
        (apology,) = await server.wait_for_messages(chat["id"], count=1, timeout=20)
        del retriever.answer  # the real method again: the bot keeps working
        server.user_sends(chat, ada, GM_IT)
        await server.wait_for_messages(chat["id"], count=2, timeout=20)
    assert "qualcosa è andato storto" in apology["text"]
    assert "secret" not in apology["text"] and "Traceback" not in apology["text"]
    failed = [r for r in caplog.records if r.getMessage() == "update failed"]
    assert len(failed) == 1 and "index exploded" in (failed[0].exc_text or "")
    assert "Barra" in server.sent_texts(chat["id"])[1]


async def test_whoami_and_help_show_what_each_reader_may_use(
    fake_bot_api: FakeBotApi, settings_for: Any, bot_embedder: Any
) -> None:
    server = fake_bot_api
    ada = server.user("Ada", language_code="it")
    admin = server.user("Admin", language_code="en", user_id=BOT_ADMIN_ID)
    ada_chat, admin_chat = server.private_chat(ada), server.private_chat(admin)
    async with serving(settings_for(), bot_embedder):
        server.user_sends(ada_chat, ada, "/whoami")
        server.user_sends(ada_chat, ada, "/help")
        server.user_sends(admin_chat, admin, "/help")
        whoami, ada_help = await server.wait_for_messages(ada_chat["id"], count=2, timeout=20)
        (admin_help,) = await server.wait_for_messages(admin_chat["id"], count=1, timeout=20)
    assert f"Il tuo id Telegram: {ada['id']}" in whoami["text"]
    assert f"Id di questa chat: {ada_chat['id']}" in whoami["text"]
    assert "Non sei un amministratore" in whoami["text"]
    for cmd in ("/subscribe", "/digest", "/whoami"):
        assert cmd in ada_help["text"] and cmd in admin_help["text"]
    assert "/reindex" not in ada_help["text"]
    assert "/reindex" in admin_help["text"] and "/stats" in admin_help["text"]
